"""How to turn a box into a mask: variants compared on frames of the TRAINING sequences (the choice
is made there; benchmarks/clicks.py --box reports the chosen one on the validation clips).

A simulated user draws the object's bounding box with a margin of ``--margin`` of its size on each
side. Variants:

- grabcut: OpenCV GrabCut initialised with the rectangle (5 iterations);
- centre: ClickNet, one positive click at the box centre, the result clipped to the box;
- prior: ClickNet, the filled box as the mask so far and a positive click at the box centre, clipped;
- prior-neg: as prior, plus negative clicks just outside the four corners.

    python experiments/box_variants.py [--frames 0,25,50]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from msn_core.clicks import inside, load_clicker, user_box
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import read_sequence
from msn_core.training.data import TRAIN_SEQUENCES


def variants(seg):
    def grabcut(frame, box):
        x0, y0, x1, y1, _ = box
        mask = np.zeros(frame.shape[:2], np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), mask, (x0, y0, x1 - x0 + 1, y1 - y0 + 1), bgd, fgd, 5,
                    cv2.GC_INIT_WITH_RECT)  # fmt: skip
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)

    def centre(frame, box):
        x0, y0, x1, y1, _ = box
        return inside(seg.object_mask(frame, [((x0 + x1) // 2, (y0 + y1) // 2)]), box)

    def prior(frame, box, neg=False):
        x0, y0, x1, y1, _ = box
        rect = np.zeros(frame.shape[:2], bool)
        rect[y0 : y1 + 1, x0 : x1 + 1] = True
        h, w = rect.shape
        negs = []
        if neg:
            d = 6
            negs = [(max(0, x0 - d), max(0, y0 - d)), (min(w - 1, x1 + d), max(0, y0 - d)),
                    (max(0, x0 - d), min(h - 1, y1 + d)), (min(w - 1, x1 + d), min(h - 1, y1 + d))]  # fmt: skip
        return inside(seg.object_mask(frame, [((x0 + x1) // 2, (y0 + y1) // 2)], negs, rect), box)

    return {"grabcut": grabcut, "centre": centre, "prior": prior, "prior-neg": lambda f, b: prior(f, b, True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", default="0,25,50")
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--sequences", default=",".join(TRAIN_SEQUENCES))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seg = load_clicker()
    tools = variants(seg)
    ious = {k: [] for k in tools}
    secs = {k: [] for k in tools}
    want = [int(v) for v in args.frames.split(",")]
    for name in args.sequences.split(","):
        frames, gts = read_sequence(default_data_dir(), name, max(want) + 1)
        for t in want:
            if t >= len(frames) or not (gts[t] > 0).any():
                continue
            truth = gts[t] > 0
            box = user_box(truth, args.margin)
            row = []
            for k, tool in tools.items():
                t0 = time.perf_counter()
                pred = tool(frames[t], box)
                secs[k].append(time.perf_counter() - t0)
                ious[k].append(float((pred & truth).sum() / max(1, (pred | truth).sum())))
                row.append(f"{k} {ious[k][-1]:.2f}")
            print(f"{name} {t}: " + "  ".join(row), flush=True)
    print(f"\nmean IoU over {len(ious['grabcut'])} frames (margin {args.margin}):")
    for k in tools:
        print(f"  {k:10s} {np.mean(ious[k]):.3f}   median s {np.median(secs[k]):.2f}")


if __name__ == "__main__":
    main()
