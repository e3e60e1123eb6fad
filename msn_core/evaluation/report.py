"""An evaluation's results as tables: the selectors and metrics it reports, summaries as means over
sequences, the Markdown written next to evaluation.json, and the merge of evaluations made on
disjoint sequences. Plain data in, plain data out (no networks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from msn_core.errors import InputError
from msn_core.evaluation.significance import describe, gap_to_best

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


def summary(per_seq: dict[str, dict[str, dict]], metrics: tuple[str, ...]) -> dict:
    """Each selector's metrics as means over its sequences (``per_seq[selector][sequence]``)."""
    return {
        sel: {k: float(np.mean([row[k] for row in rows.values()])) for k in metrics} for sel, rows in per_seq.items()
    }


SPREAD_KEYS = ("chosen", "best", "random")  # selection_audit's qualities, reported as IoU %


def spread_summary(spreads: dict[str, dict]) -> dict:
    """The candidate spread's qualities as means over sequences."""
    return {k: float(np.mean([s[k] for s in spreads.values()])) for k in SPREAD_KEYS}


HEURISTICS = ("previous", "first", "gap1", "gap5", "gap10", "gap20", "similarity", "similarity-masked")


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
        lines += [f"## {prop.upper()} (masks, max side {res.get('max_side', results['max_side'])})", ""]
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
    heur = [h for h in HEURISTICS if h in per_seq]
    if not heur or len(next(iter(per_seq.values()))) < 2:
        return []
    return [describe(gap_to_best(per_seq, sel, heur)) for sel in ("msn", "oracle") if sel in per_seq]


def write_results(results: dict, out_dir: str | Path, command: str) -> tuple[Path, Path]:
    """evaluation.json and evaluation.md of ``results`` in ``out_dir``, with the ``command`` that made them."""
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
        sides = {r.get("max_side") for r in res}
        if len(sides) > 1:
            raise InputError(f"cannot merge evaluations made with different max_side: {sorted(sides, key=str)}")
        merged = dict(res[0])
        merged["per_sequence"] = per_seq
        merged["summary"] = summary(per_seq, metrics[kind])
        if any("adapt_seconds" in r for r in res):
            merged["adapt_seconds"] = {n: s for r in res for n, s in r.get("adapt_seconds", {}).items()}
        if any("spread" in r for r in res):
            spreads = {n: s for r in res for n, s in r.get("spread", {}).items()}
            merged["spread"] = spreads
            merged["spread_summary"] = spread_summary(spreads)
        if kind == "color":
            out["color"] = merged
        else:
            out["masks"][prop] = merged
    return out
