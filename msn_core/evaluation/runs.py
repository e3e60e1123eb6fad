"""Evaluation runs on the validation sequences: J, F, J&F and seconds per frame for every selector,
and colour PSNR / L1 on the first 25 frames.

Every selector runs through the one propagation loop (``Pipeline.propagate``). The frozen
backbone's output depends only on the frame, so it is computed once per frame and reused by the
following selectors; each run's seconds per frame adds back the measured backbone time of the
frames it was spared, so the timings are those of a standalone run.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from msn_core.adaptation import adapt
from msn_core.config import AdaptConfig, PipelineConfig
from msn_core.errors import InputError
from msn_core.evaluation.report import (
    COLOR_SELECTORS,
    COLOUR_METRICS,
    MASK_METRICS,
    MASK_SELECTORS,
    SPREAD_KEYS,
    spread_summary,
    summary,
)
from msn_core.io import davis_sequence, read_mask
from msn_core.memory.selectors import make_selector
from msn_core.metrics import evaluate_colour, evaluate_sequence, selection_audit
from msn_core.pipeline import load


class CachingBackbone(nn.Module):
    """Wraps a frozen backbone; remembers its output per input image (by content digest)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.inner = backbone
        self.channels = backbone.channels
        self.cache: dict[str, dict] = {}
        self.hits = 0
        self.miss_seconds: list[float] = []

    def forward(self, image: torch.Tensor) -> dict:
        key = hashlib.blake2b(image.detach().cpu().numpy().tobytes(), digest_size=16).hexdigest()
        if key in self.cache:
            self.hits += 1
            return self.cache[key]
        t0 = time.perf_counter()
        out = self.inner(image)
        self.miss_seconds.append(time.perf_counter() - t0)
        self.cache[key] = out
        return out

    def clear(self) -> None:
        self.cache.clear()

    @property
    def seconds_per_call(self) -> float:
        return float(np.median(self.miss_seconds)) if self.miss_seconds else 0.0


def weights_in(folder, propagator: str, task: str):
    """The ``weights`` argument of :func:`msn_core.load` for the files of ``propagator`` and its MSN
    in ``folder``, named as the bundled ones are (None: ``"auto"``, the bundled or Hub weights)."""
    if folder is None:
        return "auto"
    from msn_core.hub import WEIGHTS
    from msn_core.pipeline import WEIGHT_NAMES

    model, msn = WEIGHT_NAMES[(propagator, task)]
    models = [Path(folder) / WEIGHTS[m].filename for m in model.split("+")]
    return {"model": models[0] if len(models) == 1 else models, "msn": Path(folder) / WEIGHTS[msn].filename}


def load_pipeline(propagator: str, task: str, weights, max_side: int | str = "auto", test_flip: bool = False):
    """A pipeline for evaluation: ``weights`` as :func:`msn_core.load` takes them, processing at
    ``max_side`` ("auto": the network's own, ``config.default_max_side``; ``test_flip``: with
    test-time flip), its backbone wrapped in a
    :class:`CachingBackbone` (shared by selector runs)."""
    cfg = PipelineConfig(propagator=propagator, task=task, max_side=max_side, test_flip=test_flip)  # type: ignore[arg-type]
    pipe = load(propagator, task, "previous", weights=weights, config=cfg)
    return pipe.with_parts(backbone=CachingBackbone(pipe.backbone))  # the flip's backbone passes are cached too


def read_sequence(data_dir, name: str, max_frames: int | None):
    """A DAVIS sequence at full size: its frames and its ground-truth id maps (one per frame)."""
    source, masks = davis_sequence(data_dir, name, max_frames=max_frames)
    frames = list(source)
    gts = [read_mask(p) for p in masks]
    if len(gts) != len(frames):
        raise InputError(f"sequence '{name}': {len(frames)} frames but {len(gts)} masks")
    return frames, gts


def adapted_pipeline(pipe, frame, first, steps: int, log) -> tuple:
    """The pipeline to run one sequence with: ``pipe`` itself, or (``steps`` > 0) a copy adapted
    to the sequence's annotated frame; and the seconds the adaptation took."""
    if steps <= 0:
        return pipe, 0.0
    run = adapt(pipe, frame, first, AdaptConfig(steps=steps))
    info = run.weights_info["adapted"]
    log(f"adapted in {info['seconds']:.0f} s (loss {info['loss_first']:.3f} -> {info['loss_last']:.3f})")
    return run, info["seconds"]


def timed_run(pipe, frames, first, selector: str, ground_truth=None) -> tuple[list, float]:
    """One selector's run; MSN is only attached for selectors that use it (fair timings)."""
    bb: CachingBackbone = pipe.backbone
    hits0 = bb.hits
    msn = pipe.msn
    pipe.msn = msn if make_selector(selector).needs_msn else None
    try:
        results = list(pipe.propagate(frames, first, selector=selector, ground_truth=ground_truth))
    finally:
        pipe.msn = msn
    spared = (bb.hits - hits0) * bb.seconds_per_call
    seconds = sum(r.seconds for r in results[1:]) + spared
    return results, seconds / max(len(results) - 1, 1)


def evaluate_masks(
    propagator: str,
    data_dir,
    sequences: list[str],
    selectors: list[str] | tuple[str, ...] = MASK_SELECTORS,
    weights="auto",
    max_side: int | str = "auto",
    max_frames: int | None = None,
    log=print,
    adapt_steps: int = 0,
    test_flip: bool = False,
    spread: bool = False,
) -> dict:
    """J, F, J&F (means over sequences, 0-100) and seconds per frame of every selector
    (``adapt_steps`` > 0: each sequence run by a network adapted to its annotated frame; the
    adaptation's seconds are reported per sequence, not in the per-frame times).
    ``spread``: one more, audited MSN run per sequence scores every candidate guide one step
    ahead (``metrics.selection_audit``: the best, a random and MSN's pick, in mean IoU %), in
    ``spread`` per sequence and summed up in ``spread_summary``."""
    pipe = load_pipeline(propagator, "mask", weights, max_side, test_flip)
    per_seq: dict[str, dict[str, dict]] = {s: {} for s in selectors}
    adapt_seconds: dict[str, float] = {}
    spreads: dict[str, dict] = {}
    for name in sequences:
        frames, gts = read_sequence(data_dir, name, max_frames)
        run, adapt_seconds[name] = adapted_pipeline(pipe, frames[0], gts[0], adapt_steps, log)
        for sel in selectors:
            gt_arg = gts if sel.startswith("oracle") else None
            results, spf = timed_run(run, frames, gts[0], sel, gt_arg)
            score = evaluate_sequence(gts, [r.labels for r in results], name=name)
            per_seq[sel][name] = {
                "J": 100 * score.J_mean,
                "F": 100 * score.F_mean,
                "J&F": 100 * score.JF_mean,
                "seconds_per_frame": spf,
                "guides": [r.guide for r in results],
            }
            log(f"{propagator} {name} {sel}: J&F {100 * score.JF_mean:.1f} ({spf:.3f} s/frame)")
        if spread:
            audited = run.propagate(frames, gts[0], selector="msn", ground_truth=gts, audit=True)
            audit = selection_audit(list(audited))
            spreads[name] = {k: 100 * v if k in SPREAD_KEYS else v for k, v in audit.items()}
            log(f"{propagator} {name} spread: best {spreads[name]['best']:.1f}, random {spreads[name]['random']:.1f}")
        pipe.backbone.clear()
    table = summary(per_seq, MASK_METRICS)
    out = {"propagator": propagator, "max_side": pipe.cfg.max_side, "summary": table, "per_sequence": per_seq}
    out["weights"] = pipe.weights_info
    if spread:
        out["spread"] = spreads
        out["spread_summary"] = spread_summary(spreads)
    return {**out, "adapt_seconds": adapt_seconds} if adapt_steps > 0 else out


def evaluate_colour_selectors(
    data_dir,
    sequences: list[str],
    selectors: list[str] | tuple[str, ...] = COLOR_SELECTORS,
    weights="auto",
    max_side: int | str = "auto",
    first_n: int = 25,
    log=print,
    adapt_steps: int = 0,
    test_flip: bool = False,
) -> dict:
    """Colour propagation (TPN) PSNR / L1 on the first ``first_n`` frames per selector."""
    pipe = load_pipeline("tpn", "color", weights, max_side, test_flip)
    per_seq: dict[str, dict[str, dict]] = {s: {} for s in selectors}
    for name in sequences:
        frames, _ = read_sequence(data_dir, name, first_n)
        run, _ = adapted_pipeline(pipe, frames[0], None, adapt_steps, log)
        for sel in selectors:
            results, spf = timed_run(run, frames, None, sel)
            score = evaluate_colour([r.colors for r in results], frames, first_n)
            per_seq[sel][name] = {"psnr": score["psnr"], "l1": score["l1"], "seconds_per_frame": spf}
            log(f"colour {name} {sel}: PSNR {score['psnr']:.2f} L1 {score['l1']:.2f}")
        pipe.backbone.clear()
    table = summary(per_seq, COLOUR_METRICS)
    return {"max_side": pipe.cfg.max_side, "summary": table, "per_sequence": per_seq, "weights": pipe.weights_info}
