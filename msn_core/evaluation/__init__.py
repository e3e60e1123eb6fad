"""Evaluation on the validation sequences (``msn evaluate``): every selector through the one
propagation loop (``runs``), the results as tables and Markdown and the merge of evaluations made
on disjoint sequences (``report``), and how sure a gap between two selectors is (``significance``).

It runs the public pipeline (``msn_core.load``, ``msn_core.adapt``) as a user would, so it sits
above them and beside ``training``, from which it imports nothing. ``report`` and ``significance``
read plain results and load no network; ``runs`` (torch, the pipeline) loads on first use of its
names here."""

from __future__ import annotations

import importlib

_LAZY = {
    **dict.fromkeys(
        ("COLOR_SELECTORS", "COLOUR_METRICS", "HEURISTICS", "MASK_METRICS", "MASK_SELECTORS", "gap_lines",
         "markdown", "merge_results", "write_results"),
        "msn_core.evaluation.report",
    ),  # fmt: skip
    **dict.fromkeys(
        ("CachingBackbone", "adapted_pipeline", "evaluate_colour_selectors", "evaluate_masks", "load_pipeline",
         "read_sequence", "timed_run", "weights_in"),
        "msn_core.evaluation.runs",
    ),  # fmt: skip
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'msn_core.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
