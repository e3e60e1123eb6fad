"""DAVIS region similarity J and boundary accuracy F, PSNR and L1 for colours, and the audit of
a selector's guides.

One module per job; every public name is importable from here (``from msn_core.metrics import X``):

    measures.py  one frame: J (the IoU rule), F, and the (mean, recall, decay) statistics
    report.py    sequences and a DAVIS results folder scored as the official code does (EvalReport)
    colour.py    PSNR and L1 of colour frames (the VPN protocol) and the PSNR formula
    audit.py     how good the guides of an audited run were (selection_audit, rank_correlation)

J, F and their statistics follow the official ``davis2017-evaluation`` code step by step, so the
numbers agree with it. Label arrays are ``uint8`` (H, W) object ids: 0 background, 1..K objects,
255 void.
"""

from __future__ import annotations

from msn_core.metrics.audit import rank_correlation, selection_audit
from msn_core.metrics.colour import evaluate_colour, mean_abs_error, psnr, psnr_of_mse
from msn_core.metrics.measures import (
    BOUND_TH,
    VOID_LABEL,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    mean_iou,
    object_masks,
)
from msn_core.metrics.report import EvalReport, SequenceScore, evaluate_davis, evaluate_sequence

__all__ = [
    "BOUND_TH",
    "VOID_LABEL",
    "EvalReport",
    "SequenceScore",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "evaluate_colour",
    "evaluate_davis",
    "evaluate_sequence",
    "mean_abs_error",
    "mean_iou",
    "object_masks",
    "psnr",
    "psnr_of_mse",
    "rank_correlation",
    "selection_audit",
]
