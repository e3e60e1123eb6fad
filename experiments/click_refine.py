"""Edge-aware refinement of ClickNet's object probability before it is thresholded: a guided filter
(He et al., TPAMI 2013) steered by the frame itself, at the resolution the probability is read at (the
frame, or the zoomed view, never coarser than the frame). ClickNet's logits are at stride 4 of a
384-pixel view, so on an 854x480 frame its boundary is blurred over ~9 pixels.

Variants: ``off`` and ``gR/E`` (grey guide) or ``cR/E`` (colour guide): radius R pixels, eps E.
Chosen on the training sequences' frames or on held-out world clips (never the validation clips):

    python experiments/click_refine.py [--frames 0,25,50] [--variants off,g4/1e-3,c4/1e-3]
    python experiments/click_refine.py --world 40 --world-side 0 --frames 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from click_zoom import compare  # noqa: E402

from msn_core.clicks import load_clicker  # noqa: E402
from msn_core.training.data import TRAIN_SEQUENCES  # noqa: E402


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided(prob: np.ndarray, image: np.ndarray, r: int, eps: float, colour: bool) -> np.ndarray:
    """The guided filter of ``prob`` (H, W) steered by ``image`` (H, W, 3 uint8)."""
    p = prob.astype(np.float32)
    if not colour:
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        mg, mp = _box(g, r), _box(p, r)
        a = (_box(g * p, r) - mg * mp) / (_box(g * g, r) - mg * mg + eps)
        b = mp - a * mg
        return _box(a, r) * g + _box(b, r)
    im = image.astype(np.float32) / 255.0
    mi = np.stack([_box(im[..., c], r) for c in range(3)], -1)
    mp = _box(p, r)
    cov_ip = np.stack([_box(im[..., c] * p, r) for c in range(3)], -1) - mi * mp[..., None]
    sigma = np.empty(p.shape + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            sigma[..., i, j] = sigma[..., j, i] = _box(im[..., i] * im[..., j], r) - mi[..., i] * mi[..., j]
    sigma += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(sigma, cov_ip[..., None])[..., 0]
    b = mp - (a * mi).sum(-1)
    ma = np.stack([_box(a[..., c], r) for c in range(3)], -1)
    return (ma * im).sum(-1) + _box(b, r)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", default="0,25,50")
    p.add_argument("--clicks", type=int, default=5)
    p.add_argument("--variants", default="off,g2/1e-3,g4/1e-3,g8/1e-3,c4/1e-3,c4/1e-2")
    p.add_argument("--sequences", default=",".join(TRAIN_SEQUENCES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights", default="auto")
    p.add_argument("--world", type=int, default=0)
    p.add_argument("--world-side", type=int, default=384)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seg = load_clicker(args.weights)
    prob = seg._prob
    state = {"v": "off"}

    def refined(frame, positives, negatives, current):
        out = prob(frame, positives, negatives, current)
        v = state["v"]
        if v == "off":
            return out
        r, eps = v[1:].split("/")
        return guided(out, frame, int(r), float(eps), v[0] == "c")

    seg._prob = refined
    compare(args, seg, lambda v: state.update(v=v))


if __name__ == "__main__":
    main()
