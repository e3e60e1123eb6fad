"""First-frame annotation: clicks refined with OpenCV GrabCut, brush layers from
``gr.ImageEditor``, or an uploaded mask, each turned into (H, W) uint8 object ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

import msn_core
from msn_core.errors import InputError
from msn_core.io import davis_palette, resize_labels
from msn_core.limits import Limits as CoreLimits
from msn_core.viz import Click

MAX_OBJECTS = 5
_PALETTE = davis_palette()


def grabcut_object(
    frame: np.ndarray,
    positives: Sequence[tuple[int, int]],
    negatives: Sequence[tuple[int, int]] = (),
    iters: int = 5,
) -> np.ndarray:
    """One object's (H, W) bool mask from clicks: GrabCut seeded with sure foreground
    discs at the positive clicks, probable foreground around them, probable
    background in a box around them, sure background outside and at negative clicks.
    Only the connected parts under a positive click are kept."""
    if not positives:
        return np.zeros(frame.shape[:2], bool)
    h, w = frame.shape[:2]
    side = max(h, w)
    r, near, margin = max(3, round(0.012 * side)), max(6, round(0.12 * side)), max(12, round(0.3 * side))
    seed = np.full((h, w), cv2.GC_BGD, np.uint8)
    pts = np.asarray(positives, int)
    (x0, y0), (x1, y1) = pts.min(0) - margin, pts.max(0) + margin
    seed[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = cv2.GC_PR_BGD
    for x, y in pts:
        cv2.circle(seed, (int(x), int(y)), near, cv2.GC_PR_FGD, -1)
    for x, y in pts:
        cv2.circle(seed, (int(x), int(y)), r, cv2.GC_FGD, -1)
    for x, y in negatives:
        cv2.circle(seed, (int(x), int(y)), r, cv2.GC_BGD, -1)
    if not (seed == cv2.GC_BGD).any():  # GrabCut needs background samples: the image border
        seed[[0, -1], :] = cv2.GC_BGD
        seed[:, [0, -1]] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's per-thread RNG: same clicks, same mask
    cv2.grabCut(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), seed, None, bgd, fgd, iters, cv2.GC_INIT_WITH_MASK)
    fg = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.uint8)
    _, parts = cv2.connectedComponents(fg)
    keep = [parts[y, x] for x, y in pts if 0 <= y < h and 0 <= x < w and parts[y, x] > 0]
    return np.isin(parts, keep) if keep else fg.astype(bool)


def labels_from_clicks(frame: np.ndarray, clicks: Sequence[Click]) -> np.ndarray:
    """Object ids from clicks: each object is cut out with GrabCut (other objects'
    positive clicks count as its negatives); a later object id paints over an earlier one."""
    h, w = frame.shape[:2]
    labels = np.zeros((h, w), np.uint8)
    for obj in sorted({c[2] for c in clicks}):
        pos = [(x, y) for x, y, o, p in clicks if o == obj and p]
        neg = [(x, y) for x, y, o, p in clicks if (o == obj and not p) or (o != obj and p)]
        labels[grabcut_object(frame, pos, neg)] = obj
    return labels


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
