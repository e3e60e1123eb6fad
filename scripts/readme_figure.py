"""Make the picture at the top of README.md: a bundled example clip, its annotated first frame and
three later frames with the masks the shipped TPN + MSN propagated, each captioned with the memory
frame MSN chose as its guide.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/readme_figure.py [--example camel] [--out docs/propagation.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

import msn_core
from msn_core.viz import overlay, side_by_side

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="camel", help="bundled example clip (msn_core.list_examples())")
    ap.add_argument("--frames", default="0,9,19,29", help="frames to show (the first is the annotated one)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "propagation.jpg"))
    args = ap.parse_args()
    show = [int(i) for i in args.frames.split(",")]
    frames, masks = msn_core.example_sequence(args.example)
    pipe = msn_core.load("tpn", selector="msn")
    panels, titles = [], []
    for r in pipe.propagate(frames, masks[0], max_frames=max(show) + 1):
        if r.index in show:
            panels.append(overlay(r.frame, r.labels))
            titles.append("frame 0: the annotation" if r.guide is None else f"frame {r.index}: guide {r.guide}")
    image = side_by_side(panels, titles)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out, quality=85)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
