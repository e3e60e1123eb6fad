"""Clips where selection matters, built from the validation sequences only, written in the DAVIS
layout so that ``msn evaluate --data-dir OUT`` scores every selector on them.

    .venv/bin/python benchmarks/built_clips.py --out runs/built
    msn evaluate --data-dir runs/built --sequences $(cat runs/built/second-guest.txt) --out-dir results/built/second-guest

For each validation sequence (the host) the next one in the list gives the guest object, cut out
frame after frame (msn_core.training.scenes). Sequences written, one folder each:

- ``<host>+<guest>-second-guest``: the guest walks across; only the guest is marked;
- ``<host>+<guest>-second-both``: the same clip, host and guest marked as ids 1 and 2;
- ``<host>+<guest>-occlusion-host``: the guest sweeps in front of the host, which alone is marked
  (its ground truth excludes the guest).

Each group's sequence names are also listed in OUT/<group>.txt (comma-separated).

``--world N`` writes, instead, N clips of the synthetic world (``msn_core.training.world``) made of
the training sequences at their own size, from seed ``WORLD_EVAL_FIRST`` on, which no training draws
(stage 1 from 0, stage-2 mining from ``MINING_SEEDS``, the click net's checks from 50 000):
``world-<seed>``, their marked objects as ids, listed in OUT/world.txt. They are for choosing settings
on clips no network learnt, beside the ones built from the training sequences:

    .venv/bin/python benchmarks/built_clips.py --world 30 --out runs/world_eval
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import msn_core
from msn_core.config import default_data_dir
from msn_core.io import write_mask_png
from msn_core.training.scenes import build_scene

from _common import SEQUENCES

GROUPS = (("second", "guest"), ("second", "both"), ("occlusion", "host"))
WORLD_EVAL_FIRST = 200_000  # held-out world clips: no training draws seeds from here on


def write_clip(out: Path, seq: str, frames, masks) -> None:
    """One sequence in the DAVIS layout: JPEG frames and indexed PNG masks."""
    img_dir, ann_dir = out / "JPEGImages" / "480p" / seq, out / "Annotations" / "480p" / seq
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    for t, (frame, truth) in enumerate(zip(frames, masks)):
        Image.fromarray(frame).save(img_dir / f"{t:05d}.jpg", quality=95)
        write_mask_png(ann_dir / f"{t:05d}.png", truth)
    print(f"wrote {seq} ({len(frames)} frames)")


def write_world(data_dir: Path, out: Path, n: int, length: int) -> None:
    """``n`` held-out world clips of ``length`` frames (module docstring), and OUT/world.txt."""
    from msn_core.training.data import TRAIN_SEQUENCES
    from msn_core.training.stage1 import load_training_sequences
    from msn_core.training.world import world_sequences

    real = load_training_sequences(data_dir, TRAIN_SEQUENCES, None, None)
    names = []
    for i, seq in enumerate(world_sequences(real, n, length, first=WORLD_EVAL_FIRST)):
        h, w = seq.proc
        name = f"world-{WORLD_EVAL_FIRST + i}"
        write_clip(out, name, [np.ascontiguousarray(f[:h, :w]) for f in seq.frames], seq.masks[:, :h, :w])
        names.append(name)
    (out / "world.txt").write_text(",".join(names) + "\n")


def read(data_dir, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    source, masks = msn_core.davis_sequence(data_dir, name)
    return list(source), [msn_core.read_mask(p) for p in masks]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="DAVIS root (default: $MSN_DATA_DIR or ../shared/data/davis2016)")
    p.add_argument("--out", required=True, help="folder to write (DAVIS layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--sequences",
        default=",".join(SEQUENCES),
        help="comma-separated hosts, each lending its object to the one before it (default: the validation "
        "sequences; training sequences give clips to choose settings on)",
    )
    p.add_argument("--world", type=int, default=0, help="instead: N held-out synthetic-world clips (see above)")
    p.add_argument("--world-length", type=int, default=48, help="frames per world clip")
    args = p.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if args.world:
        write_world(data_dir, Path(args.out), args.world, args.world_length)
        return
    sequences = [s for s in args.sequences.split(",") if s]
    if len(sequences) < 2:
        p.error("--sequences needs at least two sequences (each clip borrows the next one's object)")
    out = Path(args.out)
    clips = {name: read(data_dir, name) for name in sequences}
    names: dict[str, list[str]] = {f"{k}-{m}": [] for k, m in GROUPS}
    for i, host in enumerate(sequences):
        guest = sequences[(i + 1) % len(sequences)]
        for kind in ("second", "occlusion"):
            scene = build_scene(kind, clips[host], clips[guest], seed=args.seed + i)
            for k, mark in GROUPS:
                if k != kind:
                    continue
                seq = f"{host}+{guest}-{kind}-{mark}"
                write_clip(out, seq, scene.frames, scene.truth(mark))
                names[f"{kind}-{mark}"].append(seq)
    for group, seqs in names.items():
        (out / f"{group}.txt").write_text(",".join(seqs) + "\n")


if __name__ == "__main__":
    main()
