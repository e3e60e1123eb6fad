"""Optical flow for TPN's motion branch (OpenCV DIS or Farneback).

The flow goes from the target to the guide: target(p) ~ guide(p + flow(p)), in pixels of the
output size, so ``models.common.warp(guide_label, flow)`` moves the guide's label onto the target.
It is computed on greyscale at most ``max_side`` on the long side (``prepare_gray``, cacheable per
frame), then resized back with the vectors rescaled.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import torch
from torch import Tensor

from msn_core.config import FlowConfig
from msn_core.errors import InputError

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_local = threading.local()  # one cv2.DISOpticalFlow per thread and preset


def _dis(preset: str) -> cv2.DISOpticalFlow:
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    if preset not in cache:
        cache[preset] = cv2.DISOpticalFlow_create(_PRESETS[preset])
    return cache[preset]


def _check_image(img: np.ndarray, name: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        kind = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
        raise InputError(f"{name}: expected a uint8 numpy image, got {kind}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or min(img.shape[:2]) < 1:
        raise InputError(f"{name}: expected shape (H, W, 3) RGB or (H, W) grey, got {img.shape}")


def prepare_gray(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 (H, W, 3) RGB or (H, W) grey -> uint8 grey, downscaled so its long side <= max_side."""
    _check_image(rgb, "prepare_gray: image")
    if max_side < 8:
        raise InputError(f"prepare_gray: max_side must be >= 8, got {max_side}")
    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = max_side / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (width, height)
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray)


def flow_from_gray(
    target_gray: np.ndarray, guide_gray: np.ndarray, out_size: tuple[int, int], cfg: FlowConfig | None = None
) -> np.ndarray:
    """Flow between two ``prepare_gray`` images -> float32 (H, W, 2) at ``out_size`` = (H, W), in
    pixels of that size, such that target(p) ~ guide(p + flow(p))."""
    cfg = cfg or FlowConfig()
    for img, name in ((target_gray, "target_gray"), (guide_gray, "guide_gray")):
        _check_image(img, f"flow_from_gray: {name}")
        if img.ndim != 2:
            raise InputError(
                f"flow_from_gray: {name} must be a (H, W) grey image from prepare_gray, got {img.shape}"
            )
    if target_gray.shape != guide_gray.shape:
        raise InputError(
            f"flow_from_gray: grey sizes differ: target {target_gray.shape}, guide {guide_gray.shape}"
        )
    out_h, out_w = (int(s) for s in out_size)
    if out_h < 1 or out_w < 1:
        raise InputError(f"flow_from_gray: out_size must be positive (H, W), got {out_size}")
    if cfg.method == "dis":
        if cfg.preset not in _PRESETS:
            raise InputError(
                f"FlowConfig.preset {cfg.preset!r} is not known; accepted: {', '.join(_PRESETS)}"
            )
        flow = _dis(cfg.preset).calc(target_gray, guide_gray, None)  # (h, w, 2), target -> guide
    elif cfg.method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(target_gray, guide_gray, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    else:
        raise InputError(f"FlowConfig.method {cfg.method!r} is not known; accepted: dis, farneback")
    h, w = target_gray.shape
    if (h, w) != (out_h, out_w):
        flow = cv2.resize(flow, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= out_w / w
        flow[..., 1] *= out_h / h
    return np.ascontiguousarray(flow, dtype=np.float32)


def compute_flow(target_rgb: np.ndarray, guide_rgb: np.ndarray, cfg: FlowConfig | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB or (H, W) grey images of one size -> float32 (H, W, 2) flow from target to
    guide in pixels: target(p) ~ guide(p + flow(p))."""
    cfg = cfg or FlowConfig()
    _check_image(target_rgb, "compute_flow: target")
    _check_image(guide_rgb, "compute_flow: guide")
    if target_rgb.shape[:2] != guide_rgb.shape[:2]:
        raise InputError(f"compute_flow: sizes differ: target {target_rgb.shape}, guide {guide_rgb.shape}")
    t = prepare_gray(target_rgb, cfg.max_side)
    g = prepare_gray(guide_rgb, cfg.max_side)
    return flow_from_gray(t, g, target_rgb.shape[:2], cfg)


def flow_to_tensor(flow: np.ndarray) -> Tensor:
    """(H, W, 2) flow -> (1, 2, H, W) float32 tensor."""
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        shape = flow.shape if isinstance(flow, np.ndarray) else type(flow).__name__
        raise InputError(f"flow_to_tensor: expected a (H, W, 2) array, got {shape}")
    return (
        torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
        .permute(2, 0, 1)
        .unsqueeze(0)
        .contiguous()
    )
