"""FlowCorr: the FlowNet correlation cost volume (kernel size 1).

out[b, k, y, x] = mean_c f1[b, c, y, x] * f2[b, c, y + dy, x + dx], zero where (y + dy, x + dx)
falls outside f2. Displacements are dy, dx in {-r*s, ..., 0, ..., r*s} with s = stride and
r = max_displacement // stride (FlowNet's grid; the same as range(-md, md + 1, s) whenever s
divides md); k enumerates dy (outer) then dx (inner), so D = (2r + 1) ** 2 channels.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import CorrConfig
from msn_core.errors import InputError
from msn_core.models.common import batch_size, check_4d


def _check(f1: Tensor, f2: Tensor, max_displacement: int, stride: int) -> int:
    """Validate the inputs; return the broadcast batch size."""
    check_4d(f1, "flow_corr: f1")
    check_4d(f2, "flow_corr: f2")
    if f1.shape[1:] != f2.shape[1:]:
        raise InputError(
            f"flow_corr: f1 {tuple(f1.shape)} and f2 {tuple(f2.shape)} must have the same channels and size"
        )
    if max_displacement < 0 or stride < 1:
        raise InputError(
            f"flow_corr: need max_displacement >= 0 and stride >= 1, got {max_displacement} and {stride}"
        )
    return batch_size("flow_corr", f1.shape[0], f2.shape[0])


def displacements(max_displacement: int = 4, stride: int = 1) -> list[tuple[int, int]]:
    """(dy, dx) of each output channel, in channel order."""
    r = max_displacement // stride
    steps = [k * stride for k in range(-r, r + 1)]
    return [(dy, dx) for dy in steps for dx in steps]


def flow_corr(f1: Tensor, f2: Tensor, max_displacement: int = 4, stride: int = 1) -> Tensor:
    """Correlation cost volume. f1, f2 (B or 1, C, H, W) -> (B, D, H, W).

    Small maps (MSN's stride-32 maps) take the dense path, one matmul of every position with every
    other and a gather of the wanted displacements; larger ones the banded path, which multiplies
    each row only with the 2r+1 rows it can reach. Whichever needs fewer multiply-adds runs."""
    b = _check(f1, f2, max_displacement, stride)
    r = max_displacement // stride
    h, w = f1.shape[-2:]
    if h * w <= (2 * r + 1) * (w + 2 * r * stride):
        return _corr_dense(f1, f2, b, r, stride)
    return _corr_band(f1, f2, b, r, stride)


def _corr_dense(f1: Tensor, f2: Tensor, b: int, r: int, stride: int) -> Tensor:
    """All-pairs products (B, HW, HW), then the D displacements of each position gathered from them
    (a zero column stands for positions outside the map)."""
    _, c, h, w = f1.shape
    m = torch.matmul(f1.flatten(2).transpose(1, 2), f2.flatten(2))  # (B, HW, HW)
    m = F.pad(m, (0, 1))  # (B, HW, HW+1): column HW is zero
    idx = _dense_index(h, w, r, stride, f1.device)  # (HW, D)
    out = torch.gather(m.expand(b, -1, -1), 2, idx.expand(b, -1, -1))  # (B, HW, D)
    return out.transpose(1, 2).reshape(b, -1, h, w) / c  # (B, D, H, W)


@functools.lru_cache(maxsize=64)
def _dense_index(h: int, w: int, r: int, stride: int, device: torch.device) -> Tensor:
    """(HW, D) flat index of position + displacement, HW where that falls outside the map.
    Made outside inference mode: the cached index is shared by inference and training (an
    inference tensor cannot be saved for backward)."""
    with torch.inference_mode(False):
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        d = torch.tensor(displacements(r * stride, stride))  # (D, 2)
        ty, tx = ys.reshape(-1, 1) + d[:, 0], xs.reshape(-1, 1) + d[:, 1]  # (HW, D)
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        return torch.where(inside, ty * w + tx, h * w).to(device)


def _corr_band(f1: Tensor, f2: Tensor, b: int, r: int, stride: int) -> Tensor:
    """For each dy, one batched matmul correlates every pixel of an f1 row with every pixel of the
    shifted f2 row; the band of wanted displacements is read out with a strided view."""
    k = 2 * r + 1
    p = r * stride
    _, c, h, w = f1.shape
    wp = w + 2 * p
    f2p = F.pad(f2, (p, p, p, p))  # (B2, C, H+2p, W+2p), zeros outside
    a = f1.expand(b, -1, -1, -1).permute(0, 2, 3, 1).reshape(b * h, w, c)  # (B*H, W, C)
    rows = []
    for i in range(k):
        shifted = f2p[:, :, i * stride : i * stride + h, :].expand(b, -1, -1, -1)  # (B, C, H, Wp)
        m = torch.bmm(a, shifted.permute(0, 2, 1, 3).reshape(b * h, c, wp))  # (B*H, W, Wp)
        # band[n, x, j] = m[n, x, x + j*stride]: displacement dx = j*stride - p
        band = m.contiguous().as_strided((b * h, w, k), (w * wp, wp + 1, stride))  # (B*H, W, K)
        rows.append(band.reshape(b, h, w, k))
    out = torch.stack(rows, dim=3)  # (B, H, W, K_dy, K_dx)
    return out.reshape(b, h, w, k * k).permute(0, 3, 1, 2).contiguous() / c  # (B, D, H, W)


def flow_corr_naive(f1: Tensor, f2: Tensor, max_displacement: int = 4, stride: int = 1) -> Tensor:
    """Python-loop reference of ``flow_corr`` (slow; for tests)."""
    b = _check(f1, f2, max_displacement, stride)
    f1 = f1.expand(b, -1, -1, -1)
    f2 = f2.expand(b, -1, -1, -1)
    _, c, h, w = f1.shape
    disp = displacements(max_displacement, stride)
    out = torch.zeros(b, len(disp), h, w, dtype=f1.dtype, device=f1.device)
    for k, (dy, dx) in enumerate(disp):
        for y in range(h):
            for x in range(w):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w:
                    out[:, k, y, x] = (f1[:, :, y, x] * f2[:, :, yy, xx]).sum(1) / c
    return out


class FlowCorr(nn.Module):
    """``flow_corr`` with the displacement range of a CorrConfig."""

    def __init__(self, cfg: CorrConfig | None = None):
        super().__init__()
        self.cfg = cfg or CorrConfig()
        if self.cfg.max_displacement < 0 or self.cfg.stride < 1:
            raise InputError(f"CorrConfig: need max_displacement >= 0 and stride >= 1, got {self.cfg}")

    @property
    def out_channels(self) -> int:
        return (2 * (self.cfg.max_displacement // self.cfg.stride) + 1) ** 2

    def forward(self, f1: Tensor, f2: Tensor) -> Tensor:
        return flow_corr(f1, f2, self.cfg.max_displacement, self.cfg.stride)
