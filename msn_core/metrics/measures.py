"""The DAVIS measures of one frame: region similarity J (the IoU of two masks, the one IoU rule of
msn_core), boundary accuracy F, and the (mean, recall, decay) statistics of a sequence of scores.

They follow the official ``davis2017-evaluation`` code (``davis2017/metrics.py``, ``utils.py``)
step by step, so the numbers agree with it: J is the IoU per frame (an empty union counts 1); F is
the F-measure of 1-pixel boundary maps matched within ``ceil(0.008 * image diagonal)`` pixels (a
disk).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from msn_core.errors import InputError
from msn_core.io import VOID_LABEL

BOUND_TH = 0.008  # boundary tolerance, fraction of the image diagonal


# ------------------------------------------------------------------------------- J


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{name_a} {a.shape} and {name_b} {b.shape} must have the same shape")


def db_eval_iou(annotation, segmentation, void_pixels=None) -> np.ndarray | float:
    """Jaccard index over the last two axes: (..., H, W) masks -> (...) IoU.

    Non-zero = foreground; ``void_pixels`` are removed from both; an empty
    union scores 1. A single (H, W) pair gives a float."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _same_shape(annotation, segmentation, "annotation", "segmentation")
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    inters = segmentation & annotation
    union = segmentation | annotation
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels)
        _same_shape(annotation, void_pixels, "annotation", "void_pixels")
        keep = ~void_pixels.astype(bool)
        inters &= keep
        union &= keep
    inters = inters.sum(axis=(-2, -1))
    union = union.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inters / union
    if np.ndim(j) == 0:
        return 1.0 if union == 0 else float(j)
    j[union == 0] = 1
    return j


def object_masks(labels, object_ids: Sequence[int]) -> np.ndarray:
    """(H, W) object ids -> (K, H, W) bool masks, one per id of ``object_ids`` (void 255 is never one)."""
    ids = np.asarray(list(object_ids), dtype=np.int64)[:, None, None]
    return np.asarray(labels)[None] == ids


def mean_iou(truth, pred, object_ids: Sequence[int], exclude_void: bool = True) -> float:
    """J of one frame averaged over ``object_ids``: (H, W) id maps in; the truth's void pixels
    (255) are left out unless ``exclude_void`` is False."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    _same_shape(truth, pred, "truth", "prediction")
    if not len(object_ids):
        raise InputError("mean_iou: no object ids to score")
    gt, pr = object_masks(truth, object_ids), object_masks(pred, object_ids)
    void = np.broadcast_to(truth == VOID_LABEL, gt.shape) if exclude_void else None
    return float(np.mean(db_eval_iou(gt, pr, void)))


# ------------------------------------------------------------------------------- F


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=BOUND_TH) -> np.ndarray | float:
    """Boundary F-measure per frame: (H, W) -> float, (N, H, W) -> (N,) array.

    ``bound_th`` < 1 is a fraction of the frame diagonal, >= 1 a pixel count."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _same_shape(annotation, segmentation, "annotation", "segmentation")
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels)
        _same_shape(annotation, void_pixels, "annotation", "void_pixels")
    if annotation.ndim not in (2, 3):
        raise InputError(
            f"db_eval_boundary: masks have {annotation.ndim} dimensions; expected (H, W) or (N, H, W)"
        )
    f = _f_measure(segmentation, annotation, void_pixels, bound_th)
    return float(f) if annotation.ndim == 2 else f


def _f_measure(foreground_mask, gt_mask, void_pixels, bound_th) -> np.ndarray:
    """Official ``f_measure`` on (..., H, W) stacks at once (boundaries, disk
    dilation, precision / recall with the empty-boundary rules)."""
    fg = foreground_mask.astype(bool)
    gt = gt_mask.astype(bool)
    if void_pixels is not None:
        keep = ~void_pixels.astype(bool)
        fg, gt = fg & keep, gt & keep
    frame_hw = fg.shape[-2:]
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(frame_hw))
    kernel = _disk(bound_pix)

    fg_boundary = _seg2bmap(fg)
    gt_boundary = _seg2bmap(gt)
    fg_dil = _dilate(fg_boundary, kernel)
    gt_dil = _dilate(gt_boundary, kernel)

    n_fg = fg_boundary.sum(axis=(-2, -1))
    n_gt = gt_boundary.sum(axis=(-2, -1))
    fg_match = (fg_boundary & gt_dil).sum(axis=(-2, -1))
    gt_match = (gt_boundary & fg_dil).sum(axis=(-2, -1))

    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_fg > 0, fg_match / np.maximum(n_fg, 1).astype(float), 1.0)
        recall = np.where(n_gt > 0, gt_match / np.maximum(n_gt, 1).astype(float), 1.0)
        # one boundary empty: precision 1 / recall 0 (no prediction) or 0 / 1 (no truth)
        precision = np.where((n_fg > 0) & (n_gt == 0), 0.0, precision)
        recall = np.where((n_fg == 0) & (n_gt > 0), 0.0, recall)
        denom = precision + recall
        f = np.where(denom == 0, 0.0, 2 * precision * recall / denom)
    return np.asarray(f, dtype=float)


def _seg2bmap(seg, width=None, height=None) -> np.ndarray:
    """1-pixel boundary map of (..., H, W) masks: a pixel is on the boundary when
    it differs from its right, bottom or bottom-right neighbour (last row: right
    only; last column: bottom only; the corner pixel never). Only the same-size
    output of the official code is supported."""
    seg = np.asarray(seg).astype(bool)
    h, w = seg.shape[-2:]
    if (width is not None and width != w) or (height is not None and height != h):
        raise InputError(
            f"_seg2bmap: a {width}x{height} boundary map of a {w}x{h} mask is not supported; "
            "only the mask's own size is"
        )
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[..., :, :-1] = seg[..., :, 1:]
    s[..., :-1, :] = seg[..., 1:, :]
    se[..., :-1, :-1] = seg[..., 1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[..., -1, :] = seg[..., -1, :] ^ e[..., -1, :]
    b[..., :, -1] = seg[..., :, -1] ^ s[..., :, -1]
    b[..., -1, -1] = False
    return b


def _disk(radius) -> np.ndarray:
    """skimage ``morphology.disk``: ``x**2 + y**2 <= r**2`` on ``arange(-r, r + 1)``."""
    grid = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(grid, grid)
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def _dilate(masks: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.dilate`` of every (H, W) slice of a (..., H, W) bool stack."""
    flat = masks.reshape(-1, *masks.shape[-2:]).astype(np.uint8)
    out = np.empty(flat.shape, dtype=bool)
    for i, m in enumerate(flat):
        out[i] = cv2.dilate(m, kernel) > 0
    return out.reshape(masks.shape)



# ------------------------------------------------------------------------ statistics


def db_statistics(per_frame_values) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame scores as the official ``db_statistics``:
    mean = nanmean; recall = fraction of frames > 0.5; decay = mean of the first
    quarter minus mean of the last (4 bins ``round(linspace(1, n, 5)) - 1``, each
    bin including its right edge)."""
    values = np.asarray(per_frame_values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise InputError(f"db_statistics: expected a non-empty 1-D list of scores, got shape {values.shape}")
    n_bins = 4
    # official: .astype(np.uint8), identical for up to 256 frames (it wraps beyond)
    ids = (np.round(np.linspace(1, len(values), n_bins + 1) + 1e-10) - 1).astype(np.int64)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(n_bins)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[-1])
    return float(mean), float(recall), float(decay)

