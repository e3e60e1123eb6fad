"""RGB <-> CIE Lab for colour propagation (OpenCV's float conversion: L in [0, 100],
a and b roughly in [-128, 127]). The networks see ab / AB_SCALE, in about [-1, 1]."""

from __future__ import annotations

import cv2
import numpy as np

AB_SCALE = 110.0


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (H, W, 3) Lab."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) Lab -> uint8 (H, W, 3) RGB (clipped)."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def to_gray_rgb(rgb: np.ndarray) -> np.ndarray:
    """Drop the colour: the Lab lightness as a grey RGB image (what a colouriser sees)."""
    lab = rgb_to_lab(rgb)
    lab[..., 1:] = 0.0
    return lab_to_rgb(lab)


def combine_l_ab(l_channel: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """L (H, W) float32 in [0, 100] and ab (H, W, 2) in Lab units -> uint8 RGB."""
    return lab_to_rgb(np.concatenate([l_channel[..., None], ab], axis=-1))
