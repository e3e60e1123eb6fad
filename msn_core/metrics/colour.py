"""Colour measures (paper §4.2, following VPN): PSNR and L1 of RGB frames on the 0-255 scale, and
:func:`psnr_of_mse`, the one PSNR formula (the colour quality of guide selection and mining,
``ColorTask.quality``, uses it too)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from msn_core.errors import InputError


def psnr_of_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error: 20*log10(peak / sqrt(mse)); inf when mse is 0."""
    return math.inf if mse == 0 else 20 * math.log10(peak / math.sqrt(mse))


def _rgb_pair(pred_rgb, gt_rgb, what: str) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred_rgb), np.asarray(gt_rgb)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise InputError(
            f"{what}: prediction {pred.shape} and ground truth {gt.shape} must be the same (H, W, 3) RGB size"
        )
    for arr, label in ((pred, "prediction"), (gt, "ground truth")):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InputError(f"{what}: {label} has dtype {arr.dtype}; expected RGB values 0-255")
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255):
            raise InputError(f"{what}: {label} has values outside 0-255; expected RGB on the 0-255 scale")
    return pred.astype(np.float64), gt.astype(np.float64)


def psnr(pred_rgb, gt_rgb) -> float:
    """PSNR in dB of RGB images on the 0-255 scale: 20*log10(255 / RMSE); inf if identical."""
    pred, gt = _rgb_pair(pred_rgb, gt_rgb, "psnr")
    return psnr_of_mse(float(np.mean((pred - gt) ** 2)))


def mean_abs_error(pred_rgb, gt_rgb) -> float:
    """Mean |pred - gt| over pixels and channels, 0-255 scale (the paper's L1)."""
    pred, gt = _rgb_pair(pred_rgb, gt_rgb, "mean_abs_error")
    return float(np.mean(np.abs(pred - gt)))


def evaluate_colour(pred_frames: Iterable, gt_frames: Iterable, first_n: int = 25) -> dict:
    """VPN protocol: PSNR and L1 of frames 1..first_n-1 (frame 0 is the given colour
    frame). Returns the means and per-frame lists: ``{"psnr", "l1", "frames",
    "psnr_per_frame", "l1_per_frame"}``. Frames may be generators (read lazily)."""
    if not isinstance(first_n, int) or first_n < 2:
        raise InputError(f"evaluate_colour: first_n={first_n!r}; expected an integer >= 2")
    gt_it, pred_it = iter(gt_frames), iter(pred_frames)
    frames, psnrs, l1s = [], [], []
    for i in range(first_n):
        gt = next(gt_it, None)
        if gt is None:
            break
        pred = next(pred_it, None)
        if pred is None:
            raise InputError(
                f"evaluate_colour: the prediction has {i} frames but the ground truth has more; "
                f"give a prediction for each of the first {first_n} frames"
            )
        if i == 0:
            continue
        frames.append(i)
        psnrs.append(psnr(pred, gt))
        l1s.append(mean_abs_error(pred, gt))
    if not frames:
        raise InputError("evaluate_colour: fewer than 2 frames; frame 0 is the given one, nothing to score")
    return {
        "psnr": float(np.mean(psnrs)),
        "l1": float(np.mean(l1s)),
        "frames": frames,
        "psnr_per_frame": psnrs,
        "l1_per_frame": l1s,
    }

