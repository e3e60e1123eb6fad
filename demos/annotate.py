"""First-frame annotation: clicks and boxes cut out by the click-to-mask net (``msn_core.clicks``), brush
layers from ``gr.ImageEditor``, or an uploaded mask, each turned into (H, W) uint8 object ids."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

import msn_core
from msn_core.annotations import Box, box_from_corners, is_box
from msn_core.clicks import ClickSegmenter, load_clicker
from msn_core.errors import InputError
from msn_core.io import davis_palette, resize_labels
from msn_core.limits import Limits as CoreLimits
from msn_core.viz import Click

MAX_OBJECTS = 5
CLICK_MODES = ["positive", "negative", "box"]  # what a click on the frame does (the Click radio)
CLICK_MODES_HELP = "box: click two opposite corners around the object; then refine it with clicks"
_CLICKER: ClickSegmenter | None = None
_CLICKER_LOCK = threading.Lock()
_PALETTE = davis_palette()


def clicker() -> ClickSegmenter:
    """The shipped click-to-mask net, loaded once per process and shared by every session."""
    global _CLICKER
    with _CLICKER_LOCK:
        if _CLICKER is None:
            _CLICKER = load_clicker()
        return _CLICKER


def labels_from_clicks(frame: np.ndarray, clicks: Sequence[Click | Box]) -> np.ndarray:
    """Object ids from clicks, in the order they were made (``msn_core.clicks``: each click
    refines its object's mask; other objects' positive clicks count as its negatives)."""
    return clicker().labels(frame, clicks)


def check_click(x: float, y: float, obj: int, size: tuple[int, int]) -> tuple[int, int, int]:
    h, w = size
    if x is None or y is None or not (0 <= x < w and 0 <= y < h):
        raise InputError(f"click ({x}, {y}) is outside the {w}×{h} first frame")
    try:
        obj = int(obj)
    except (TypeError, ValueError):
        raise InputError(f"object {obj!r}: choose an object between 1 and {MAX_OBJECTS}") from None
    if not 1 <= obj <= MAX_OBJECTS:
        raise InputError(f"object {obj}: choose an object between 1 and {MAX_OBJECTS}")
    return int(x), int(y), obj


def add_point(clicks: list, corner: tuple[int, int] | None, x: int, y: int, obj: int, mode) -> tuple[list, tuple | None]:
    """A click at (x, y) in ``mode`` (one of CLICK_MODES, or a bool: positive or not): a positive or
    negative click is appended; in box mode the first click is a corner, the second adds the box
    between them. Returns (clicks, the corner waiting for its opposite or None)."""
    mode = ("positive" if mode else "negative") if isinstance(mode, bool) else str(mode).lower()
    if mode.startswith("box"):
        if corner is None:
            return clicks, (x, y)
        if abs(corner[0] - x) < 2 or abs(corner[1] - y) < 2:
            raise InputError(f"the box from {corner} to ({x}, {y}) is too thin: click two opposite corners")
        return [*clicks, box_from_corners(corner, (x, y), obj)], None
    return [*clicks, (x, y, obj, mode.startswith("pos"))], None


def waiting_corner(corner: tuple[int, int]) -> str:
    """The note shown while a box has its first corner only."""
    return f"Box: first corner at {corner}; click the opposite corner."


def count_marks(clicks: Sequence[Click | Box]) -> str:
    """'2 clicks', '1 box and 1 click'."""
    boxes = sum(is_box(c) for c in clicks)
    n = len(clicks) - boxes
    parts = ([f"{boxes} box" + ("es" if boxes != 1 else "")] if boxes else []) + (
        [f"{n} click" + ("s" if n != 1 else "")] if n or not boxes else []
    )
    return " and ".join(parts)


def labels_from_layers(layers: Sequence[np.ndarray] | None, size: tuple[int, int]) -> np.ndarray:
    """Brush layers of ``gr.ImageEditor`` (RGBA) -> object ids: a painted pixel
    (alpha > 50 %) gets the object whose palette colour is nearest to its colour."""
    h, w = size
    labels = np.zeros((h, w), np.uint8)
    refs = _PALETTE[1 : MAX_OBJECTS + 1].astype(np.int32)  # (K, 3)
    for layer in layers or []:
        arr = np.asarray(layer)
        if arr.ndim != 3 or arr.shape[2] != 4:
            continue  # a layer without alpha holds no strokes we can tell apart
        if arr.shape[:2] != (h, w):
            arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_NEAREST)
        painted = arr[..., 3] > 127
        if not painted.any():
            continue
        rgb = arr[..., :3][painted].astype(np.int32)
        nearest = ((rgb[:, None, :] - refs[None]) ** 2).sum(-1).argmin(1) + 1
        labels[painted] = nearest.astype(np.uint8)
    return labels


def labels_from_file(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """An uploaded mask PNG read as object ids and brought to the working size."""
    labels = msn_core.read_mask(path)
    h, w = size
    mh, mw = labels.shape
    if abs(mw / mh - w / h) > 0.02 * (w / h):
        raise InputError(
            f"the mask '{Path(path).name}' is {mw}×{mh} but the video is {w}×{h} (another aspect ratio); "
            "give a mask of the first frame"
        )
    labels = resize_labels(labels, size)
    ids = msn_core.io.object_ids(labels)
    if not ids:
        raise InputError(f"the mask '{Path(path).name}' has no object: mark objects with non-zero values")
    CoreLimits.from_env().check_objects(len(ids), f"the mask '{Path(path).name}'")
    return labels
