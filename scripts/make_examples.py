"""Regenerate the bundled example clips in ``msn_core/assets/examples/`` from DAVIS.

Each clip: the first 30 frames of a DAVIS-2016 sequence, downscaled to a long side
of 428 px (240x428 for 854x480 input), JPEG quality 85 frames ``00000.jpg ...`` and
DAVIS palette masks ``00000.png ...`` in one folder (itself a DAVIS-like sequence).

    .venv/bin/python scripts/make_examples.py [--data-dir DIR] [--names dog camel kite-surf]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from msn_core.config import default_data_dir
from msn_core.io import (
    atomic_write,
    davis_sequence,
    object_ids,
    read_mask,
    write_mask_png,
)
from msn_core.io.davis import EXAMPLES_DIR

NAMES = ("dog", "camel", "kite-surf")
NUM_FRAMES = 30
MAX_SIDE = 428
JPEG_QUALITY = 85

CREDITS = """# Example clips: credits

The clips in this folder are the first {n} frames of the DAVIS-2016 sequences
{names}, downscaled to {w}x{h}, with their object masks (DAVIS palette PNGs).

DAVIS: F. Perazzi, J. Pont-Tuset, B. McWilliams, L. Van Gool, M. Gross,
A. Sorkine-Hornung, "A Benchmark Dataset and Evaluation Methodology for Video
Object Segmentation", CVPR 2016. https://davischallenge.org

The DAVIS data is released for research use; credit it wherever these frames are
shown or shipped. Regenerate with `scripts/make_examples.py`.
"""


def downscale_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize each object's mask and keep the strongest: smoother than nearest."""
    ids = [0, *object_ids(labels)]
    scores = [
        cv2.resize((labels == i).astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA) for i in ids
    ]
    return np.asarray(ids, np.uint8)[np.argmax(np.stack(scores), axis=0)]


def make_example(data_dir: Path, name: str, out_root: Path) -> tuple[int, tuple[int, int]]:
    """Write one clip; returns (bytes written, (h, w))."""
    source, masks = davis_sequence(data_dir, name, max_side=MAX_SIDE, max_frames=NUM_FRAMES)
    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for index, (frame, mask_path) in enumerate(zip(source, masks, strict=True)):
        with atomic_write(out / f"{index:05d}.jpg") as tmp:
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            )
            assert ok, "JPEG encoding failed"
            tmp.write_bytes(data.tobytes())
        write_mask_png(out / f"{index:05d}.png", downscale_labels(read_mask(mask_path), source.out_size))
    return sum(p.stat().st_size for p in out.iterdir()), source.out_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--names", nargs="+", default=list(NAMES))
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    args = parser.parse_args(argv)
    total, (h, w) = 0, (0, 0)
    for name in args.names:
        size, (h, w) = make_example(args.data_dir, name, args.out)
        total += size
        print(f"{name}: {size / 1e6:.2f} MB")
    (args.out / "CREDITS.md").write_text(
        CREDITS.format(n=NUM_FRAMES, names=", ".join(f"`{n}`" for n in args.names), w=w, h=h)
    )
    print(f"total {total / 1e6:.2f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
