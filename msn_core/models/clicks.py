"""ClickNet: one object's mask from a user's clicks, read off the frozen backbone's features.

Inputs at the processing size: the backbone's maps (strides 4, 8, 16, 32) and three guidance maps,
positive clicks, negative clicks (discs of ``CLICK_RADIUS`` px) and the object's current mask (all
zeros before the first result, so each click refines the last mask, as in RITM). The guidance
maps go through a small strided CNN; at every stride they are fused with the backbone's features,
and a top-down decoder with skips gives logits at stride 4, upsampled to the frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import ClickConfig
from msn_core.errors import InputError
from msn_core.models.common import ConvGNReLU, ResBlock, resize_to

CLICK_RADIUS = 5  # px at the processing size
GUIDANCE = 3  # positive clicks, negative clicks, current mask


def click_maps(
    size: tuple[int, int], positives, negatives, current: np.ndarray | None = None, radius: int = CLICK_RADIUS
) -> np.ndarray:
    """(3, H, W) float32 guidance for clicks given as (x, y) at that size: discs at the positive
    and at the negative clicks, and the current mask (zeros if None)."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    maps = np.zeros((GUIDANCE, h, w), np.float32)
    for channel, points in ((0, positives), (1, negatives)):
        for x, y in points:
            maps[channel][(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = 1.0
    if current is not None:
        maps[2] = np.asarray(current, np.float32)
    return maps


class ClickNet(nn.Module):
    """Backbone features + guidance maps (B, 3, H, W) -> mask logits (B, 1, H, W)."""

    def __init__(self, cfg: ClickConfig, backbone_channels: dict[int, int]):
        super().__init__()
        missing = {4, 8, 16, 32} - set(backbone_channels)
        if missing:
            raise InputError(f"ClickNet: backbone_channels lacks strides {sorted(missing)} (needs 4, 8, 16, 32)")
        self.cfg = cfg
        w = cfg.width
        self.g2 = ConvGNReLU(GUIDANCE, w // 2, stride=2)
        self.g4 = ConvGNReLU(w // 2, w, stride=2)
        self.g8 = ConvGNReLU(w, w, stride=2)
        self.g16 = ConvGNReLU(w, w, stride=2)
        self.g32 = ConvGNReLU(w, w, stride=2)
        self.f4, self.f8, self.f16, self.f32 = (
            ConvGNReLU(backbone_channels[s] + w, w if s < 16 else 2 * w) for s in (4, 8, 16, 32)
        )
        self.dec16 = ResBlock(4 * w, 2 * w)  # up(f32) | f16
        self.dec8 = ResBlock(3 * w, w)  # up(dec16) | f8
        self.dec4 = ResBlock(2 * w, w)  # up(dec8) | f4
        self.head = nn.Conv2d(w, 1, 3, padding=1)

    def forward(self, feats: dict[int, Tensor], guidance: Tensor) -> Tensor:
        if guidance.dim() != 4 or guidance.shape[1] != GUIDANCE:
            raise InputError(f"ClickNet: guidance must be (B, {GUIDANCE}, H, W), got {tuple(guidance.shape)}")
        g4 = self.g4(self.g2(guidance))
        g8 = self.g8(g4)
        g16 = self.g16(g8)
        g32 = self.g32(g16)
        f4 = self.f4(torch.cat([feats[4], resize_to(g4, feats[4].shape[-2:])], 1))
        f8 = self.f8(torch.cat([feats[8], resize_to(g8, feats[8].shape[-2:])], 1))
        f16 = self.f16(torch.cat([feats[16], resize_to(g16, feats[16].shape[-2:])], 1))
        f32 = self.f32(torch.cat([feats[32], resize_to(g32, feats[32].shape[-2:])], 1))
        x = self.dec16(torch.cat([resize_to(f32, f16.shape[-2:]), f16], 1))
        x = self.dec8(torch.cat([resize_to(x, f8.shape[-2:]), f8], 1))
        x = self.dec4(torch.cat([resize_to(x, f4.shape[-2:]), f4], 1))
        return F.interpolate(self.head(x), size=guidance.shape[-2:], mode="bilinear", align_corners=False)
