"""Evaluation on the validation sequences: J, F, J&F and seconds per frame for every selector, and
colour PSNR / L1 on the first 25 frames.

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

from msn_core.errors import InputError

MASK_SELECTORS = (
    "previous",
    "first",
    "gap1",
    "gap5",
    "gap10",
    "gap20",
    "similarity",
    "similarity-masked",
    "msn",
    "previous-top3",
    "msn-top3",
    "previous-top5",
    "msn-top5",
    "oracle",
)
COLOR_SELECTORS = ("previous", "msn")
MASK_METRICS = ("J", "F", "J&F", "seconds_per_frame")
COLOUR_METRICS = ("psnr", "l1", "seconds_per_frame")


def _summary(per_seq: dict[str, dict[str, dict]], metrics: tuple[str, ...]) -> dict:
    """Each selector's metrics as means over its sequences (``per_seq[selector][sequence]``)."""
    return {
        sel: {k: float(np.mean([row[k] for row in rows.values()])) for k in metrics} for sel, rows in per_seq.items()
    }


SPREAD_KEYS = ("chosen", "best", "random")  # selection_audit's qualities, reported as IoU %


def _spread_summary(spreads: dict[str, dict]) -> dict:
    """The candidate spread's qualities as means over sequences."""
    return {k: float(np.mean([s[k] for s in spreads.values()])) for k in SPREAD_KEYS}


HEURISTICS = ("previous", "first", "gap1", "gap5", "gap10", "gap20", "similarity", "similarity-masked")


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


def load_pipeline(propagator: str, task: str, weights, max_side: int, test_flip: bool = False):
    """A pipeline for evaluation: ``weights`` as :func:`msn_core.load` takes them, processing at
    ``max_side`` (``test_flip``: with test-time flip), its backbone wrapped in a
    :class:`CachingBackbone` (shared by selector runs)."""

    from msn_core.config import PipelineConfig
    from msn_core.pipeline import load

    cfg = PipelineConfig(propagator=propagator, task=task, max_side=max_side, test_flip=test_flip)  # type: ignore[arg-type]
    pipe = load(propagator, task, "previous", weights=weights, config=cfg)
    return pipe.with_parts(backbone=CachingBackbone(pipe.backbone))  # the flip's backbone passes are cached too


def read_sequence(data_dir, name: str, max_frames: int | None):
    """A DAVIS sequence at full size: its frames and its ground-truth id maps (one per frame)."""
    from msn_core.io import davis_sequence, read_mask

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
    from msn_core.adaptation import AdaptConfig, adapt

    run = adapt(pipe, frame, first, AdaptConfig(steps=steps))
    info = run.weights_info["adapted"]
    log(f"adapted in {info['seconds']:.0f} s (loss {info['loss_first']:.3f} -> {info['loss_last']:.3f})")
    return run, info["seconds"]


def timed_run(pipe, frames, first, selector: str, ground_truth=None) -> tuple[list, float]:
    """One selector's run; MSN is only attached for selectors that use it (fair timings)."""
    from msn_core.memory.selectors import make_selector

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
    max_side: int = 384,
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
    from msn_core.metrics import evaluate_sequence, selection_audit

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
    table = _summary(per_seq, MASK_METRICS)
    out = {"propagator": propagator, "summary": table, "per_sequence": per_seq, "weights": pipe.weights_info}
    if spread:
        out["spread"] = spreads
        out["spread_summary"] = _spread_summary(spreads)
    return {**out, "adapt_seconds": adapt_seconds} if adapt_steps > 0 else out


def evaluate_colour_selectors(
    data_dir,
    sequences: list[str],
    selectors: list[str] | tuple[str, ...] = COLOR_SELECTORS,
    weights="auto",
    max_side: int = 384,
    first_n: int = 25,
    log=print,
    adapt_steps: int = 0,
    test_flip: bool = False,
) -> dict:
    """Colour propagation (TPN) PSNR / L1 on the first ``first_n`` frames per selector."""
    from msn_core.metrics import evaluate_colour

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
    return {"summary": _summary(per_seq, COLOUR_METRICS), "per_sequence": per_seq, "weights": pipe.weights_info}


def markdown(results: dict, command: str) -> str:
    """Markdown tables of an evaluation (``results`` as written to evaluation.json)."""
    lines = ["# Evaluation on the validation sequences", ""]
    lines += [
        f"Sequences: {', '.join(results['sequences'])} (trained on the other 10 DAVIS-2016 sequences).",
        "",
    ]
    lines += [
        "Made by (from the repository root; `msn` is `python -m msn_core.cli`):",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    if results.get("adapt_steps"):
        lines += [
            f"Each sequence is run by a network adapted to its annotated frame ({results['adapt_steps']} steps, "
            "`msn_core.adaptation`); s/frame leaves out the adaptation, whose seconds are listed per sequence.",
            "",
        ]
    if results.get("test_flip"):
        lines += ["Test-time flip: every guide is read as given and mirrored left-right, the two averaged.", ""]
    for prop, res in results.get("masks", {}).items():
        table = res["summary"]
        best_h = max(HEURISTICS, key=lambda s: table[s]["J&F"] if s in table else -1)
        lines += [f"## {prop.upper()} (masks, max side {results['max_side']})", ""]
        lines += ["| selector | J | F | J&F | s/frame |", "|---|---:|---:|---:|---:|"]
        for sel, row in table.items():
            mark = " (best heuristic)" if sel == best_h else ""
            lines.append(
                f"| {sel}{mark} | {row['J']:.1f} | {row['F']:.1f} | {row['J&F']:.1f} | {row['seconds_per_frame']:.3f} |"
            )
        lines.append("")
        seqs = list(next(iter(res["per_sequence"].values())))
        lines += [
            "J&F per sequence:",
            "",
            "| selector | " + " | ".join(seqs) + " |",
            "|---|" + "---:|" * len(seqs),
        ]
        for sel, rows in res["per_sequence"].items():
            lines.append(f"| {sel} | " + " | ".join(f"{rows[s]['J&F']:.1f}" for s in seqs) + " |")
        if "adapt_seconds" in res:
            lines.append("| adaptation (s) | " + " | ".join(f"{res['adapt_seconds'][s]:.0f}" for s in seqs) + " |")
        lines.append("")
        gaps = gap_lines(res["per_sequence"])
        if "spread_summary" in res:
            s = res["spread_summary"]
            gaps.append(
                f"One-step candidate spread (every candidate of MSN's run scored against the truth, mean IoU %): "
                f"best {s['best']:.1f}, random {s['random']:.1f} (best - random {s['best'] - s['random']:.1f}), "
                f"MSN's pick {s['chosen']:.1f}"
            )
        lines += [f"- {g}" for g in gaps] + ([""] if gaps else [])
    if "color" in results:
        table = results["color"]["summary"]
        lines += [f"## TPN colour propagation (first {results['color_frames']} frames)", ""]
        lines += ["| selector | PSNR (dB) | L1 | s/frame |", "|---|---:|---:|---:|"]
        for sel, row in table.items():
            lines.append(f"| {sel} | {row['psnr']:.2f} | {row['l1']:.2f} | {row['seconds_per_frame']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def gap_lines(per_seq: dict) -> list[str]:
    """MSN (and the oracle) against the best heuristic, with a bootstrap interval over sequences: one
    line each, where the evaluation ran them, a heuristic and more than one sequence."""
    from msn_core.training.significance import describe, gap_to_best

    heur = [h for h in HEURISTICS if h in per_seq]
    if not heur or len(next(iter(per_seq.values()))) < 2:
        return []
    return [describe(gap_to_best(per_seq, sel, heur)) for sel in ("msn", "oracle") if sel in per_seq]


def write_results(results: dict, out_dir: str | Path, command: str) -> tuple[Path, Path]:
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "command": command}
    js = out / "evaluation.json"
    js.write_text(json.dumps(results, indent=1, default=str))
    md = out / "evaluation.md"
    md.write_text(markdown(results, command))
    return js, md


def merge_results(parts: list[dict]) -> dict:
    """One evaluation from several made on disjoint sequences (say, split across processes):
    the per-sequence rows are joined and the summaries recomputed as means over sequences.
    The parts must agree on max side, adaptation steps, colour frames, propagators and selectors."""
    if len(parts) < 2:
        raise InputError(f"merging needs at least two evaluations, got {len(parts)}")
    first = parts[0]
    shared = ("max_side", "color_frames", "adapt_steps", "test_flip")
    for key in shared:
        values = {p.get(key) for p in parts}
        if len(values) > 1:
            raise InputError(f"cannot merge evaluations made with different {key}: {sorted(values, key=str)}")
    seqs: list[str] = []
    for p in parts:
        clash = set(seqs) & set(p["sequences"])
        if clash:
            raise InputError(f"cannot merge: sequence(s) {', '.join(sorted(clash))} evaluated twice")
        seqs += p["sequences"]
    out = {k: first[k] for k in shared if k in first}
    out["sequences"], out["masks"] = seqs, {}
    kinds = {(tuple(p.get("masks", {})), "color" in p) for p in parts}
    if len(kinds) > 1:
        raise InputError("cannot merge evaluations of different propagators")
    metrics = {"masks": MASK_METRICS, "color": COLOUR_METRICS}
    blocks = [("masks", prop, [p["masks"][prop] for p in parts]) for prop in first.get("masks", {})]
    if "color" in first:
        blocks.append(("color", None, [p["color"] for p in parts]))
    for kind, prop, res in blocks:
        selectors = [list(r["per_sequence"]) for r in res]
        if any(s != selectors[0] for s in selectors):
            raise InputError(f"cannot merge: the evaluations ran different selectors ({selectors})")
        per_seq = {sel: {name: row for r in res for name, row in r["per_sequence"][sel].items()} for sel in selectors[0]}
        merged = dict(res[0])
        merged["per_sequence"] = per_seq
        merged["summary"] = _summary(per_seq, metrics[kind])
        if any("adapt_seconds" in r for r in res):
            merged["adapt_seconds"] = {n: s for r in res for n, s in r.get("adapt_seconds", {}).items()}
        if any("spread" in r for r in res):
            spreads = {n: s for r in res for n, s in r.get("spread", {}).items()}
            merged["spread"] = spreads
            merged["spread_summary"] = _spread_summary(spreads)
        if kind == "color":
            out["color"] = merged
        else:
            out["masks"][prop] = merged
    return out
