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
    args = p.parse_args()
    sequences = [s for s in args.sequences.split(",") if s]
    if len(sequences) < 2:
        p.error("--sequences needs at least two sequences (each clip borrows the next one's object)")
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
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
                img_dir = out / "JPEGImages" / "480p" / seq
                ann_dir = out / "Annotations" / "480p" / seq
                img_dir.mkdir(parents=True, exist_ok=True)
                ann_dir.mkdir(parents=True, exist_ok=True)
                for t, (frame, truth) in enumerate(zip(scene.frames, scene.truth(mark))):
                    Image.fromarray(frame).save(img_dir / f"{t:05d}.jpg", quality=95)
                    write_mask_png(ann_dir / f"{t:05d}.png", truth)
                names[f"{kind}-{mark}"].append(seq)
                print(f"wrote {seq} ({len(scene.frames)} frames)")
    for group, seqs in names.items():
        (out / f"{group}.txt").write_text(",".join(seqs) + "\n")


if __name__ == "__main__":
    main()
