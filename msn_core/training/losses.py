"""Losses: soft IoU for masks (paper: IoU loss), L1 for colour, BCE for MSN (and a listwise variant)."""

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


def msn_listwise_loss(logits: Tensor, qualities: Tensor, groups: Tensor, tau: float = 0.05) -> Tensor:
    """Cross-entropy between MSN's softmax over each target's candidates and a soft target that
    puts its weight on the best ones: p_i ~ exp((q_i - q_max) / (tau * q_max)) per target.
    logits, qualities (N,) and groups (N,) int: which target each candidate belongs to (0..G-1).
    A target whose candidates barely differ gets a near-uniform target, i.e. little say."""
    n_groups = int(groups.max().item()) + 1
    q = qualities.float()
    qmax = torch.full((n_groups,), -torch.inf, dtype=q.dtype).scatter_reduce(0, groups, q, "amax")
    scale = (tau * qmax.abs()).clamp_min(1e-3)[groups]
    target = _group_log_softmax((q - qmax[groups]) / scale, groups, n_groups).exp()
    log_p = _group_log_softmax(logits.float(), groups, n_groups)
    return -(target * log_p).sum() / n_groups


def _group_log_softmax(x: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    top = torch.full((n_groups,), -torch.inf, dtype=x.dtype).scatter_reduce(0, groups, x.detach(), "amax")
    z = x - top[groups]
    norm = torch.zeros(n_groups, dtype=x.dtype).index_add(0, groups, z.exp()).log()
    return z - norm[groups]
