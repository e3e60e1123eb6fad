"""Frame geometry: the size the networks see a video's frames at, and the padding that makes it a
multiple of the backbone's largest stride. The propagation loop, training data and online
adaptation all fit frames and masks through :class:`FrameGeometry`, so they see the same pixels."""

from __future__ import annotations

import numpy as np

from msn_core.io import fit_size, resize_frame, resize_labels

PAD = 32  # the backbone's largest stride: padded sides are multiples of it


def processing_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """The (h, w) the networks see frames of ``size`` at, before padding (``max_side`` None: as they are)."""
    return fit_size(size, max_side) if max_side else (int(size[0]), int(size[1]))


class FrameGeometry:
    """Frames of ``size`` (H, W) at the processing size for ``max_side`` (``proc``), padded at the
    bottom and right to ``padded`` (edge pixels for frames, zeros for labels)."""

    def __init__(self, size: tuple[int, int], max_side: int | None):
        self.size = (int(size[0]), int(size[1]))  # original (H, W)
        self.proc = processing_size(self.size, max_side)  # processing (h, w) before padding
        h, w = self.proc
        self.padded = (h + (-h) % PAD, w + (-w) % PAD)

    def fit(self, rgb: np.ndarray) -> np.ndarray:
        """An original (or processing-size) frame -> the padded uint8 RGB the networks read."""
        return self.pad(resize_frame(rgb, self.proc), mode="edge")  # resize_frame keeps a frame at that size

    def fit_labels(self, labels: np.ndarray) -> np.ndarray:
        """An (H, W) id map at the original size -> the padded id map at the processing size."""
        small = resize_labels(labels, self.proc) if self.proc != self.size else labels
        return self.pad(small, mode="constant")

    def pad(self, arr: np.ndarray, mode: str) -> np.ndarray:
        h, w = arr.shape[:2]
        widths = [(0, self.padded[0] - h), (0, self.padded[1] - w)] + [(0, 0)] * (arr.ndim - 2)
        return np.pad(arr, widths, mode=mode)
