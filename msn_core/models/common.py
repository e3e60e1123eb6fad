"""Small shared pieces: padding, backward warping, STM's soft aggregation, blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_4d(x: Tensor, name: str, channels: int | None = None) -> None:
    """Raise InputError unless ``x`` is a (B, C, H, W) tensor (with ``channels`` channels if given)."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"{name}: expected a (B, C, H, W) tensor, got {shape}")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"{name}: expected {channels} channels, got shape {tuple(x.shape)}")


def batch_size(name: str, *sizes: int) -> int:
    """The common batch size of tensors that may broadcast a batch of 1; InputError otherwise."""
    sizes_set = set(sizes) - {1}
    if len(sizes_set) > 1:
        raise InputError(f"{name}: batch sizes {list(sizes)} do not broadcast (each must be 1 or the same B)")
    return sizes_set.pop() if sizes_set else 1


def pad_to_multiple(x: Tensor, multiple: int = 32) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Replicate-pad the right/bottom of (B, C, H, W) so H and W are multiples of ``multiple``.

    Returns the padded tensor and the pad (left, right, top, bottom) for ``unpad``."""
    check_4d(x, "pad_to_multiple: x")
    if multiple < 1:
        raise InputError(f"pad_to_multiple: multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise InputError(f"pad_to_multiple: x has an empty spatial size {tuple(x.shape)}")
    pad = (0, (-w) % multiple, 0, (-h) % multiple)
    if pad == (0, 0, 0, 0):
        return x, pad
    return F.pad(x, pad, mode="replicate"), pad  # (B, C, H', W')


def unpad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Undo ``pad_to_multiple``: crop (left, right, top, bottom) from the last two dims."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


def warp(x: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: out(p) = x(p + flow(p)).

    x (B, C, H, W); flow (B or 1, 2, H, W) in pixels (dx, dy); either batch may be 1.
    Bilinear, align_corners=True, border padding."""
    check_4d(x, "warp: x")
    check_4d(flow, "warp: flow", channels=2)
    if flow.shape[-2:] != x.shape[-2:]:
        raise InputError(
            f"warp: flow size {tuple(flow.shape[-2:])} differs from x size {tuple(x.shape[-2:])}"
        )
    b = batch_size("warp", x.shape[0], flow.shape[0])
    h, w = x.shape[-2:]
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0  # (Bf, H, W)
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).expand(b, h, w, 2)  # (B, H, W, 2)
    return F.grid_sample(
        x.expand(b, -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=True
    )


def soft_aggregate(probs: Tensor, eps: float = 1e-7) -> Tensor:
    """STM's soft aggregation of per-object foreground probabilities.

    probs (O, 1, H, W) -> (O+1, H, W) class probabilities summing to 1; index 0 is the
    background prod(1 - p), index o+1 is object o (order kept). Renormalised in logit space."""
    check_4d(probs, "soft_aggregate: probs", channels=1)
    p = probs[:, 0]  # (O, H, W)
    bg = torch.prod(1.0 - p, dim=0, keepdim=True)  # (1, H, W)
    full = torch.cat([bg, p], dim=0).clamp(eps, 1.0 - eps)  # (O+1, H, W)
    return torch.softmax(torch.log(full / (1.0 - full)), dim=0)


def imagenet_normalize(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> ImageNet mean/std normalised."""
    check_4d(image, "image", channels=3)
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image - mean) / std


def num_groups(channels: int, max_groups: int = 8) -> int:
    """Largest group count <= max_groups dividing ``channels`` (for GroupNorm)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class ConvGNReLU(nn.Sequential):
    """conv (k x k, stride) -> GroupNorm -> ReLU. GroupNorm keeps every sample independent
    of the others in its batch (candidates and objects are batched together)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.GroupNorm(num_groups(c_out), c_out),
            nn.ReLU(inplace=True),
        )


class ResBlock(nn.Module):
    """Two 3x3 conv-GN layers with a (1x1-projected if needed) skip, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int | None = None):
        super().__init__()
        c_out = c_out or c_in
        self.body = nn.Sequential(
            ConvGNReLU(c_in, c_out),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.GroupNorm(num_groups(c_out), c_out),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.skip(x))


def resize_to(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` (no-op when equal)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
