"""Zooming in on the object after the first click (as RITM's zoom-in): variants compared on frames of
the TRAINING sequences (the choice is made there; benchmarks/clicks.py reports the chosen one on the
validation clips). NoC's simulated user (``clicks.next_click``), ``--clicks`` clicks per frame.

Variants: ``off`` (the whole frame at the net's size every time) and ``E/M``: the box of the mask so
far and the positive clicks, grown E times, at least M times the net's size a side.

    python experiments/click_zoom.py [--frames 0,25,50] [--variants off,1.4/1,1.4/1+] [--weights FILE] [--world N]
    python experiments/click_zoom.py --world 40 --world-side 0 --frames 0 --variants 1.4/1   # held-out world, full size
(``+``: the first click too, on a second look at the zoomed view of its own first mask; ``m``: the
mean of the view's probabilities and its mirror image's)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import msn_core.clicks as clicks
from msn_core.clicks import click_curve, load_clicker
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import read_sequence
from msn_core.training.data import TRAIN_SEQUENCES

WORLD_FIRST = 50_000  # world clips from here on: no click net trained on them (training draws 0..world-1)


def _frames(args, want):
    """(name, frames, masks) of the training sequences, or of held-out world clips (ids
    ``WORLD_FIRST``.., made of the training sequences at the training size)."""
    if not args.world:
        for name in args.sequences.split(","):
            yield (name, *read_sequence(default_data_dir(), name, max(want) + 1))
        return
    from msn_core.training.stage1 import load_training_sequences
    from msn_core.training.world import world_sequences

    real = load_training_sequences(default_data_dir(), TRAIN_SEQUENCES, args.world_side or None, None)
    for seq in world_sequences(real, args.world, first=WORLD_FIRST):
        h, w = seq.proc
        yield seq.name.split("~")[-1], [np.ascontiguousarray(f[:h, :w]) for f in seq.frames], seq.masks[:, :h, :w]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", default="0,25,50")
    p.add_argument("--clicks", type=int, default=8)
    p.add_argument("--variants", default="off,1.4/1,1.4/0.5,2/0.5")
    p.add_argument("--sequences", default=",".join(TRAIN_SEQUENCES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights", default="auto", help="a click weights file (default: the shipped one)")
    p.add_argument("--world", type=int, default=0, help="instead: frame 0 of N synthetic-world clips no click net trained on")
    p.add_argument(
        "--world-side", type=int, default=384, help="the world's clips made of the sequences at this long side (0: their own size)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seg = load_clicker(args.weights)
    plain = type(seg).object_mask

    def object_mask(frame, positives, negatives=(), current=None, box=None):  # "+": the first click looks twice
        if current is None and seg.first_view and positives:
            current = plain(seg, frame, positives, negatives, None, box)
        return plain(seg, frame, positives, negatives, current, box)

    seg.object_mask = object_mask
    prob = seg._prob

    def flipped(frame, positives, negatives, current):  # "m": the mean with the mirrored view's
        a = prob(frame, positives, negatives, current)
        if not seg.flip:
            return a
        w = frame.shape[1]
        mirror = lambda pts: [(w - 1 - x, y) for x, y in pts]  # noqa: E731
        cur = None if current is None else np.ascontiguousarray(np.asarray(current)[:, ::-1])
        b = prob(np.ascontiguousarray(frame[:, ::-1]), mirror(positives), mirror(negatives), cur)
        return 0.5 * (a + b[:, ::-1])

    seg._prob = flipped
    base_zoom = clicks.zoom_box

    def use(v: str) -> None:
        seg.first_view, seg.flip = "+" in v, "m" in v
        if v.rstrip("+m") == "off":
            seg.zoom = None
        else:
            e, m = (float(a) for a in v.rstrip("+m").split("/"))
            seg.zoom = e
            clicks.zoom_box = lambda c, p, ex, ms, m=m: base_zoom(c, p, ex, int(ms * m))

    compare(args, seg, use)


def compare(args, seg, use) -> None:
    """Click curves of every variant of ``args.variants`` on ``args``' frames, ``use(v)`` setting variant
    v up on ``seg``; prints each frame's IoU after 1 / 3 / 5 clicks and the means over the frames."""
    want = [int(v) for v in args.frames.split(",")]
    res = {v: [] for v in args.variants.split(",")}
    secs = {v: [] for v in res}
    for name, frames, gts in _frames(args, want):
        for t in want:
            if t >= len(frames) or not (gts[t] > 0).any():
                continue
            truth, row = (gts[t] == 1) if args.world else gts[t] > 0, []
            for v in res:
                use(v)
                t0 = time.perf_counter()
                res[v].append(click_curve(frames[t], truth, args.clicks, seg.labels))
                secs[v].append((time.perf_counter() - t0) / args.clicks)
                row.append(f"{v} " + "/".join(f"{res[v][-1][k]:.2f}" for k in (0, 2, 4)))
            print(f"{name} {t}: " + "  ".join(row), flush=True)
    print(f"\nmean IoU after 1 / 3 / 5 / {args.clicks} clicks over {len(next(iter(res.values())))} frames:")
    for v, c in res.items():
        a = np.array(c)
        print(f"  {v:10s} " + " / ".join(f"{a[:, k].mean():.3f}" for k in (0, 2, 4, args.clicks - 1)) + f"   s/click {np.mean(secs[v]):.2f}")


if __name__ == "__main__":
    main()
