"""TPN, the Temporal Propagation Network (paper §3.4): propagates the guide's label y_g to x_t.

- appearance branch on (x_t, y_g): the target's backbone features at strides 4, 8, 16, each fused
  with y_g pooled to that stride;
- motion branch on (O_t->g, y_g): a small strided CNN on concat(flow / scale, y_g, warp(y_g, flow));
- both concatenated at stride 16 -> decoder with skips at strides 8 and 4 -> correction at stride 4,
  upsampled to H, W and added to the warped guide label in logit (mask) / atanh (colour) space.
The correction's last conv starts at zero, so a fresh network outputs the flow-warped guide label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import TPNConfig
from msn_core.errors import InputError
from msn_core.models.common import ConvGNReLU, ResBlock, batch_size, check_4d, resize_to, warp

TASK_CHANNELS = {"mask": 1, "color": 2}
FLOW_SCALE = 20.0  # pixels; the motion branch sees flow / FLOW_SCALE
_EPS = 1e-3  # clamp of the warped label before logit / atanh


def _pool_to(y: Tensor, like: Tensor) -> Tensor:
    """Area-average y (B, C, H, W) to the spatial size of ``like``."""
    return F.adaptive_avg_pool2d(y, like.shape[-2:])


class TPN(nn.Module):
    """Temporal Propagation Network for masks (``cfg.task="mask"``) or Lab colour (``"color"``)."""

    def __init__(self, cfg: TPNConfig, backbone_channels: dict[int, int]):
        super().__init__()
        if cfg.task not in TASK_CHANNELS:
            raise InputError(
                f"TPNConfig.task {cfg.task!r} is not known; accepted: {', '.join(TASK_CHANNELS)}"
            )
        missing = {4, 8, 16} - set(backbone_channels)
        if missing:
            raise InputError(f"TPN: backbone_channels lacks strides {sorted(missing)} (needs 4, 8, 16)")
        self.cfg = cfg
        self.out_channels = cy = TASK_CHANNELS[cfg.task]
        w = cfg.width
        c4, c8, c16 = (backbone_channels[s] for s in (4, 8, 16))
        # appearance branch: backbone features + pooled guide label at each stride
        self.app4 = ConvGNReLU(c4 + cy, w)
        self.app8 = ConvGNReLU(c8 + cy, w)
        self.app16 = ConvGNReLU(c16 + cy, 2 * w)
        # motion branch: concat(flow / scale, y_g, warped y_g) at full resolution -> stride 16
        self.mot2 = ConvGNReLU(2 + 2 * cy, w // 2, stride=2)
        self.mot4 = ConvGNReLU(w // 2, w, stride=2)
        self.mot8 = ConvGNReLU(w, w, stride=2)
        self.mot16 = ConvGNReLU(w, 2 * w, stride=2)
        # decoder
        self.fuse16 = ResBlock(4 * w, 2 * w)
        self.dec8 = ResBlock(2 * w + w + w, w)  # up(fuse16) | app8 | mot8
        self.dec4 = ResBlock(w + w + w + cy, w)  # up(dec8) | app4 | mot4 | warped y_g at stride 4
        self.head = nn.Conv2d(w, cy, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _check(self, feats_t: dict[int, Tensor], y_g: Tensor, flow: Tensor) -> int:
        check_4d(y_g, "TPN: y_g", channels=self.out_channels)
        check_4d(flow, "TPN: flow", channels=2)
        f4 = feats_t.get(4)
        if f4 is None or 8 not in feats_t or 16 not in feats_t:
            raise InputError(f"TPN: feats_t needs strides 4, 8, 16, got {sorted(feats_t)}")
        size = (4 * f4.shape[-2], 4 * f4.shape[-1])
        if tuple(y_g.shape[-2:]) != size or tuple(flow.shape[-2:]) != size:
            raise InputError(
                f"TPN: y_g {tuple(y_g.shape)} and flow {tuple(flow.shape)} must be at the processing size "
                f"{size} (4 x the stride-4 feature map)"
            )
        return batch_size("TPN", y_g.shape[0], flow.shape[0], *(f.shape[0] for f in feats_t.values()))

    def forward(self, feats_t: dict[int, Tensor], y_g: Tensor, flow: Tensor) -> Tensor:
        """feats_t {stride: (1 or B, C_s, H/s, W/s)}, y_g (B, Cy, H, W), flow (1 or B, 2, H, W)
        -> mask: (B, 1, H, W) logits; color: (B, 2, H, W) ab/110 in [-1, 1]."""
        b = self._check(feats_t, y_g, flow)
        y_g = y_g.expand(b, -1, -1, -1)
        f4, f8, f16 = (feats_t[s].expand(b, -1, -1, -1) for s in (4, 8, 16))
        y_w = warp(y_g, flow)  # (B, Cy, H, W) guide label moved onto x_t

        a4 = self.app4(torch.cat([f4, _pool_to(y_g, f4)], 1))  # (B, w, H/4, W/4)
        a8 = self.app8(torch.cat([f8, _pool_to(y_g, f8)], 1))  # (B, w, H/8, W/8)
        a16 = self.app16(torch.cat([f16, _pool_to(y_g, f16)], 1))  # (B, 2w, H/16, W/16)

        m = torch.cat([(flow / FLOW_SCALE).expand(b, -1, -1, -1), y_g, y_w], 1)  # (B, 2+2Cy, H, W)
        m4 = self.mot4(self.mot2(m))  # (B, w, H/4, W/4)
        m8 = self.mot8(m4)  # (B, w, H/8, W/8)
        m16 = self.mot16(m8)  # (B, 2w, H/16, W/16)

        x = self.fuse16(torch.cat([a16, m16], 1))  # (B, 2w, H/16, W/16)
        x = self.dec8(torch.cat([resize_to(x, a8.shape[-2:]), a8, m8], 1))  # (B, w, H/8, W/8)
        x = self.dec4(
            torch.cat([resize_to(x, a4.shape[-2:]), a4, m4, _pool_to(y_w, a4)], 1)
        )  # (B, w, H/4, W/4)
        delta = resize_to(self.head(x), y_g.shape[-2:])  # (B, Cy, H, W)

        if self.cfg.task == "mask":
            return torch.logit(y_w.clamp(_EPS, 1.0 - _EPS)) + delta  # (B, 1, H, W) logits
        return torch.tanh(torch.atanh(y_w.clamp(-1.0 + _EPS, 1.0 - _EPS)) + delta)  # (B, 2, H, W)
