"""STM-1 (Oh et al., ICCV 2019) on a shared backbone: space-time memory read from a few memory
frames (the first frame and one guide).

- ``encode_key``: stride-16 features -> key (for query and memory alike) and query value;
  a frame's key does not depend on its mask, so the caller caches it;
- ``encode_value``: one memory frame's features + each object's mask + the union of the other
  objects' masks -> one value map per object;
- ``read``: softmax over all memory positions of key affinity, values averaged accordingly;
- ``decode``: readout + query value, refined with skips at strides 8 and 4 -> per-object logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import STMConfig
from msn_core.errors import InputError
from msn_core.models.common import ConvGNReLU, ResBlock, check_4d, resize_to


def _need(feats: dict[int, Tensor], strides: tuple[int, ...], name: str) -> None:
    missing = [s for s in strides if s not in feats]
    if missing:
        raise InputError(f"STM.{name}: feature dict lacks strides {missing} (has {sorted(feats)})")


class STM(nn.Module):
    """Space-Time Memory network with mask-independent (cacheable) keys."""

    def __init__(self, cfg: STMConfig, backbone_channels: dict[int, int]):
        super().__init__()
        self.cfg = cfg
        ck, cv, w = cfg.key_dim, cfg.value_dim, cfg.width
        c4, c8, c16 = (backbone_channels[s] for s in (4, 8, 16))
        self.key_proj = nn.Conv2d(c16, ck, 3, padding=1)
        self.qval_proj = nn.Conv2d(c16, cv, 3, padding=1)
        # value encoder: masks (own, others) at stride 4 -> stride 16, fused with frame features
        self.val_mask4 = ConvGNReLU(c4 + 2, w)
        self.val_mask8 = ConvGNReLU(w, w, stride=2)
        self.val_mask16 = ConvGNReLU(w, w, stride=2)
        self.val_fuse = ResBlock(c16 + w + 2, cv)
        self.val_out = nn.Conv2d(cv, cv, 3, padding=1)
        # decoder
        self.dec16 = ResBlock(2 * cv, 2 * w)
        self.skip8 = nn.Conv2d(c8, 2 * w, 3, padding=1)
        self.dec8 = ResBlock(2 * w, w)
        self.skip4 = nn.Conv2d(c4, w, 3, padding=1)
        self.dec4 = ResBlock(w, w)
        self.pred = nn.Conv2d(w, 1, 3, padding=1)

    def encode_key(self, feats: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
        """{16: (B, C16, h, w), ...} -> key (B, Ck, h, w), query value (B, Cv, h, w)."""
        _need(feats, (16,), "encode_key")
        f16 = feats[16]
        return self.key_proj(f16), self.qval_proj(f16)

    def encode_value(self, feats: dict[int, Tensor], masks: Tensor) -> Tensor:
        """feats of one memory frame (batch 1), masks (O, 1, H, W) per-object probs -> (O, Cv, h, w)."""
        _need(feats, (4, 16), "encode_value")
        check_4d(masks, "STM.encode_value: masks", channels=1)
        f4, f16 = feats[4], feats[16]
        if f4.shape[0] != 1:
            raise InputError(
                f"STM.encode_value: expects the features of one frame (batch 1), got {f4.shape[0]}"
            )
        o = masks.shape[0]
        others = (masks.sum(0, keepdim=True) - masks).clamp(0.0, 1.0)  # (O, 1, H, W) union of other objects
        mo = torch.cat([masks, others], 1)  # (O, 2, H, W)
        m4 = F.adaptive_avg_pool2d(mo, f4.shape[-2:])  # (O, 2, H/4, W/4)
        x = self.val_mask4(torch.cat([f4.expand(o, -1, -1, -1), m4], 1))  # (O, w, H/4, W/4)
        x = self.val_mask16(self.val_mask8(x))  # (O, w, H/16, W/16)
        x = resize_to(x, f16.shape[-2:])
        m16 = F.adaptive_avg_pool2d(mo, f16.shape[-2:])  # (O, 2, h, w)
        x = self.val_fuse(torch.cat([f16.expand(o, -1, -1, -1), x, m16], 1))  # (O, Cv, h, w)
        return self.val_out(x)  # (O, Cv, h, w)

    def read(self, q_key: Tensor, m_keys: Tensor, m_values: Tensor) -> Tensor:
        """q_key (1, Ck, h, w); m_keys (T, Ck, hm, wm); m_values (O, T, Cv, hm, wm) -> (O, Cv, h, w)."""
        check_4d(q_key, "STM.read: q_key")
        check_4d(m_keys, "STM.read: m_keys", channels=q_key.shape[1])
        if (
            m_values.dim() != 5
            or m_values.shape[1] != m_keys.shape[0]
            or m_values.shape[-2:] != m_keys.shape[-2:]
        ):
            raise InputError(
                f"STM.read: m_values must be (O, T, Cv, hm, wm) matching m_keys {tuple(m_keys.shape)}, "
                f"got {tuple(m_values.shape)}"
            )
        if q_key.shape[0] != 1:
            raise InputError(f"STM.read: q_key must have batch 1, got {q_key.shape[0]}")
        ck, h, w = q_key.shape[1:]
        o, t, cv = m_values.shape[:3]
        mk = m_keys.permute(1, 0, 2, 3).reshape(ck, -1)  # (Ck, T*hm*wm)
        qk = q_key.reshape(ck, h * w)  # (Ck, h*w)
        affinity = torch.softmax(mk.t() @ qk / math.sqrt(ck), dim=0)  # (T*hm*wm, h*w)
        mv = m_values.permute(0, 2, 1, 3, 4).reshape(o, cv, -1)  # (O, Cv, T*hm*wm)
        return (mv @ affinity).reshape(o, cv, h, w)  # (O, Cv, h, w)

    def decode(self, readout: Tensor, q_value: Tensor, feats: dict[int, Tensor]) -> Tensor:
        """readout (O, Cv, h, w), q_value (1, Cv, h, w), feats of the query -> (O, 1, H, W) logits."""
        _need(feats, (4, 8), "decode")
        o = readout.shape[0]
        f4, f8 = feats[4].expand(o, -1, -1, -1), feats[8].expand(o, -1, -1, -1)
        x = self.dec16(torch.cat([readout, q_value.expand(o, -1, -1, -1)], 1))  # (O, 2w, h, w)
        x = self.dec8(resize_to(x, f8.shape[-2:]) + self.skip8(f8))  # (O, w, H/8, W/8)
        x = self.dec4(resize_to(x, f4.shape[-2:]) + self.skip4(f4))  # (O, w, H/4, W/4)
        logits = self.pred(x)  # (O, 1, H/4, W/4)
        return F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)  # (O, 1, H, W)

    def forward(
        self, feats_t: dict[int, Tensor], mem_feats: list[dict[int, Tensor]], mem_masks: list[Tensor]
    ) -> Tensor:
        """Query features (batch 1), T memory frames' features and (O, 1, H, W) masks -> (O, 1, H, W)."""
        if not mem_feats or len(mem_feats) != len(mem_masks):
            raise InputError(
                f"STM: need one mask tensor per memory frame and at least one frame, "
                f"got {len(mem_feats)} frames and {len(mem_masks)} masks"
            )
        if len({m.shape[0] for m in mem_masks}) != 1:
            raise InputError(
                f"STM: every memory frame needs the same objects, got {[m.shape[0] for m in mem_masks]}"
            )
        q_key, q_value = self.encode_key(feats_t)  # (1, Ck, h, w), (1, Cv, h, w)
        m_keys = torch.cat([self.encode_key(f)[0] for f in mem_feats], 0)  # (T, Ck, h, w)
        m_values = torch.stack(
            [self.encode_value(f, m) for f, m in zip(mem_feats, mem_masks)], 1
        )  # (O,T,Cv,h,w)
        return self.decode(self.read(q_key, m_keys, m_values), q_value, feats_t)
