"""Losses: soft IoU for masks (paper: IoU loss), L1 for colour, BCE for MSN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def iou_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """1 - soft IoU per sample, averaged. logits, target (B, 1, H, W); target in {0, 1}."""
    p = torch.sigmoid(logits).flatten(1)
    g = target.flatten(1)
    inter = (p * g).sum(1)
    union = (p + g - p * g).sum(1)
    return (1.0 - (inter + eps) / (union + eps)).mean()


def mask_loss(logits: Tensor, target: Tensor, bce_weight: float = 0.5) -> Tensor:
    """IoU loss plus a little pixel BCE (sharper boundaries, gradients where the IoU is flat)."""
    return iou_loss(logits, target) + bce_weight * F.binary_cross_entropy_with_logits(logits, target)


def color_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between predicted and true ab (both / AB_SCALE)."""
    return (pred - target).abs().mean()


def msn_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of MSN's guide scores against mined labels {0, 1}."""
    return F.binary_cross_entropy_with_logits(logits, labels.float())
