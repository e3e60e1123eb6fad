"""Optical flow on real DAVIS frames (the bundled clips' without DAVIS) and on a synthetic shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from davis_data import DAVIS_SIZE, frame_path
from PIL import Image

from msn_core.config import FlowConfig
from msn_core.errors import InputError
from msn_core.flow import compute_flow, flow_from_gray, flow_to_tensor, prepare_gray
from msn_core.models.common import warp


def _frame(seq: str, idx: int) -> np.ndarray:
    """A DAVIS frame at 854x480; without DAVIS the bundled clip's 428x240 frame brought to that size."""
    path: Path = frame_path(seq, idx)
    if not path.exists():
        pytest.skip(f"DAVIS frame {path} not available")
    img = Image.open(path).convert("RGB")
    h, w = DAVIS_SIZE
    return np.asarray(img if img.size == (w, h) else img.resize((w, h), Image.BICUBIC))


def _warp_np(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    return warp(x, flow_to_tensor(flow))[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_warping_real_frames_reduces_error(method: str) -> None:
    target, guide = _frame("dog", 10), _frame("dog", 12)
    flow = compute_flow(target, guide, FlowConfig(method=method))
    assert flow.shape == (480, 854, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    before = np.abs(guide.astype(np.float32) - target).mean()
    after = np.abs(_warp_np(guide, flow) - target).mean()
    assert after < 0.75 * before, (before, after)


def _shifted_pair(dx: int, dy: int, size: tuple[int, int] = (320, 400)) -> tuple[np.ndarray, np.ndarray]:
    """target crop and guide with guide(p + (dx, dy)) = target(p)."""
    big = _frame("camel", 0)
    h, w = size
    y0, x0 = 60, 200
    target = big[y0 : y0 + h, x0 : x0 + w]
    guide = big[y0 - dy : y0 - dy + h, x0 - dx : x0 - dx + w]
    return np.ascontiguousarray(target), np.ascontiguousarray(guide)


@pytest.mark.parametrize("max_side", [480, 200])
def test_synthetic_shift(max_side: int) -> None:
    target, guide = _shifted_pair(5, -3)
    flow = compute_flow(target, guide, FlowConfig(max_side=max_side))
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    med = np.median(inner, axis=0)
    assert abs(med[0] - 5) < 1.0 and abs(med[1] + 3) < 1.0, med


def test_grey_input_and_cached_grey_path() -> None:
    target, guide = _shifted_pair(5, -3)
    gt, gg = target.mean(axis=2).astype(np.uint8), guide.mean(axis=2).astype(np.uint8)
    flow = compute_flow(gt, gg)
    assert flow.shape == (320, 400, 2) and flow.dtype == np.float32
    assert abs(np.median(flow[..., 0]) - 5) < 1.0
    # cached greys at a smaller size, flow returned at the requested size with rescaled vectors
    a, b = prepare_gray(target, 200), prepare_gray(guide, 200)
    assert a.dtype == np.uint8 and max(a.shape) == 200
    flow2 = flow_from_gray(a, b, (320, 400))
    assert flow2.shape == (320, 400, 2)
    assert abs(np.median(flow2[..., 0]) - 5) < 1.0 and abs(np.median(flow2[..., 1]) + 3) < 1.0


def test_flow_to_tensor_and_errors() -> None:
    t = flow_to_tensor(np.zeros((4, 6, 2), np.float32))
    assert t.shape == (1, 2, 4, 6) and t.dtype == torch.float32
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InputError, match="uint8"):
        compute_flow(img.astype(np.float32), img)
    with pytest.raises(InputError, match="sizes differ"):
        compute_flow(img, np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(InputError, match="method"):
        compute_flow(img, img, FlowConfig(method="nope"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"\(H, W, 2\)"):
        flow_to_tensor(np.zeros((4, 6), np.float32))
