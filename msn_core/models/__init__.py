"""Stateless networks: backbone F, FlowCorr, MSN, TPN and STM-1. Per-video state lives elsewhere."""

from __future__ import annotations

from msn_core.models.backbone import Backbone, build_backbone
from msn_core.models.common import imagenet_normalize, pad_to_multiple, soft_aggregate, unpad, warp
from msn_core.models.correlation import FlowCorr, flow_corr, flow_corr_naive
from msn_core.models.selection import MSN
from msn_core.models.stm import STM
from msn_core.models.tpn import TPN

__all__ = [
    "MSN",
    "STM",
    "TPN",
    "Backbone",
    "FlowCorr",
    "build_backbone",
    "flow_corr",
    "flow_corr_naive",
    "imagenet_normalize",
    "pad_to_multiple",
    "soft_aggregate",
    "unpad",
    "warp",
]
