"""Augmentations of a training pair's guide: warps and colour jitter of the frame, drifted masks
and washed-out colour, as an imperfect propagation hands them on."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor


def affine(img: Tensor, lab: Tensor, task: str, strong: bool) -> tuple[Tensor, Tensor]:
    """The same random affine warp of a (3, H, W) uint8 frame and its label (torchvision v2)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    deg, tr, sc = (12, 0.08, (0.85, 1.15)) if strong else (5, 0.04, (0.93, 1.07))
    aug = v2.RandomAffine(degrees=deg, translate=(tr, tr), scale=sc, shear=4)
    if task == "mask":
        img2, lab2 = aug(tv_tensors.Image(img), tv_tensors.Mask(lab.to(torch.uint8)))
        return img2.as_subclass(Tensor), lab2.as_subclass(Tensor).float()
    both = torch.cat([img.float() / 255.0, lab], 0)  # ab warped bilinearly with the frame
    out = aug(tv_tensors.Image(both)).as_subclass(Tensor)
    return (out[:3] * 255.0).round().clamp(0, 255).to(torch.uint8), out[3:]


def jitter(img: Tensor) -> Tensor:
    from torchvision.transforms import v2

    return v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03)(img)


def perturb_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A drifted version of a {0, 1} mask: eroded, dilated, shifted or with blotches."""
    m = mask.astype(np.uint8)
    kind = int(rng.integers(4))
    if kind in (0, 1):
        r = int(rng.integers(2, 9))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        m = cv2.erode(m, kernel) if kind == 0 else cv2.dilate(m, kernel)
    elif kind == 2:
        dy, dx = (int(v) for v in rng.integers(-8, 9, size=2))
        m = np.roll(m, (dy, dx), axis=(0, 1))
    else:
        h, w = m.shape
        for _ in range(int(rng.integers(1, 4))):
            cy, cx, r = int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(6, 24))
            cv2.circle(m, (cx, cy), r, int(rng.integers(2)), -1)
    return m.astype(np.float32)


def blur_ab(ab: Tensor, rng: np.random.Generator) -> Tensor:
    """Washed-out colour, as a drifting colour propagation produces."""
    k = 2 * int(rng.integers(2, 8)) + 1
    arr = cv2.GaussianBlur(ab.numpy().transpose(1, 2, 0), (k, k), 0)
    return torch.from_numpy(arr.transpose(2, 0, 1) * float(rng.uniform(0.6, 1.0))).contiguous()
