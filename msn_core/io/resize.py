"""Resizing frames and label maps to a processing size and back."""

from __future__ import annotations

import cv2
import numpy as np

from msn_core.errors import InputError


def _even(value: float, upper: int) -> int:
    """Nearest even integer to ``value``, at most ``upper`` rounded down to even, at least 2."""
    return max(2, min(2 * round(value / 2), upper - upper % 2))


def check_max_side(max_side: int | None) -> None:
    """Raise :class:`InputError` unless ``max_side`` is None or an integer >= 2."""
    if max_side is None:
        return
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 2:
        raise InputError(f"max_side must be an integer >= 2 or None, got {max_side!r}")


def fit_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(H, W) -> (h, w) with the long side <= ``max_side``, aspect kept, both even,
    never larger than the original (``max_side=None``: only rounded down to even)."""
    h, w = int(size[0]), int(size[1])
    if h < 2 or w < 2:
        raise InputError(f"frame size {w}x{h} is too small; frames must be at least 2x2 pixels")
    if max_side is None:
        return _even(h, h), _even(w, w)
    check_max_side(max_side)
    scale = min(1.0, max_side / max(h, w))
    limit = int(max_side)
    return _even(h * scale, min(h, limit)), _even(w * scale, min(w, limit))


def _check_hw(hw, what: str) -> tuple[int, int]:
    if len(hw) != 2 or min(int(v) for v in hw) < 1:
        raise InputError(f"{what}: target size must be (H, W) with positive values, got {hw!r}")
    return int(hw[0]), int(hw[1])


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) image to ``size`` = (h, w): INTER_AREA when shrinking,
    bilinear when enlarging. Returns ``frame`` itself when the size already fits."""
    h, w = _check_hw(size, "resize_frame")
    if frame.shape[:2] == (h, w):
        return frame
    shrink = h <= frame.shape[0] and w <= frame.shape[1]
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) id map to ``size`` = (h, w) by nearest neighbour (ids stay ids)."""
    h, w = _check_hw(size, "resize_labels")
    labels = np.asarray(labels)
    if labels.shape[:2] == (h, w):
        return labels
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


def restore_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bring an id map computed at the processing size back to the original (H, W)."""
    return resize_labels(labels, size)
