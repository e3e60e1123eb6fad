"""MSN against the best heuristic selector (and the oracle's headroom) in every evaluation kept in
results/, with intervals from a bootstrap over the validation sequences (msn_core.evaluation.significance).

    .venv/bin/python experiments/selector_gaps.py                 # writes results/selector_gaps.md
    .venv/bin/python experiments/selector_gaps.py --out -         # prints it

Reads only the JSON tables that ``msn evaluate`` wrote; runs no network.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from msn_core.evaluation import HEURISTICS
from msn_core.evaluation.significance import gap_to_best

RESULTS = Path(__file__).resolve().parents[1] / "results"  # the evaluation tables it reads

# (file under results/, what the run was), in the order of the tables in results/summary.md
RUNS = [
    ("evaluation.json", "shipped weights, 384"),
    ("flip/evaluation_384_tpn.json", "test-time flip, 384"),
    ("flip/evaluation_384_stm.json", "test-time flip, 384"),
    ("ensemble_384.json", "shipped weights, 384"),
    ("adapted/evaluation_tpn.json", "adapted 300 steps, 384"),
    ("adapted/evaluation_stm.json", "adapted 300 steps, 384"),
    ("adapted/evaluation_854_tpn.json", "adapted 300 steps, 854"),
    ("adapted/evaluation_854_stm.json", "adapted 300 steps, 854"),
    ("adapted/evaluation_854_ens.json", "adapted 300 steps, 854"),
    ("flip/evaluation_854_ens.json", "adapted 300 steps, 854, test-time flip"),
]
COLOUR_RUNS = [
    ("evaluation.json", "shipped weights, 384"),
    ("adapted/evaluation_color.json", "adapted 300 steps, 384"),
]


def _fmt(g: dict) -> list[str]:
    lo, hi = g["ci95"]
    return [
        f"{g['gap']:+.2f}",
        f"{lo:+.2f} to {hi:+.2f}",
        f"{100 * g['p_ahead']:.0f} %",
        f"{g['wins']} / {g['ties']} / {g['losses']}",
        f"{g['loo_gap']:+.2f}",
    ]


def mask_rows(resamples: int) -> list[str]:
    rows = []
    for rel, what in RUNS:
        data = json.loads((RESULTS / rel).read_text())
        for prop, res in data["masks"].items():
            per_seq = res["per_sequence"]
            heur = [h for h in HEURISTICS if h in per_seq]
            g = gap_to_best(per_seq, "msn", heur, resamples=resamples)
            head = f"| {prop} | {what} | {len(heur)} | {g['best_rival']} "
            if "oracle" in per_seq:
                o = gap_to_best(per_seq, "oracle", heur, resamples=resamples)
                headroom = f"{o['gap']:+.2f}"
            else:
                headroom = "not run"
            rows.append(head + "| " + " | ".join(_fmt(g)) + f" | {headroom} | `{rel}` |")
    return rows


def colour_rows(resamples: int) -> list[str]:
    rows = []
    for rel, what in COLOUR_RUNS:
        per_seq = json.loads((RESULTS / rel).read_text())["color"]["per_sequence"]
        for metric, higher in (("psnr", True), ("l1", False)):
            g = gap_to_best(per_seq, "msn", ["previous"], metric=metric, resamples=resamples, higher_is_better=higher)
            rows.append(f"| {metric.upper()} | {what} | " + " | ".join(_fmt(g)[:4]) + f" | `{rel}` |")
    return rows


def report(resamples: int) -> str:
    lines = [
        "# MSN against the best heuristic, with intervals",
        "",
        "Made by `.venv/bin/python experiments/selector_gaps.py` from the evaluation tables in `results/`",
        f"(bootstrap: {resamples} resamples of the 5 validation sequences, seed 0).",
        "",
        "For each evaluation: MSN's J&F minus that of the best heuristic selector (previous, first, gap K,",
        "similarity, masked similarity; as many as the run has), positive when MSN is ahead. The interval",
        "resamples whole sequences and re-picks the best heuristic in each resample, so the winner's curse of",
        "choosing the best of several heuristics on the same five clips is inside it. The leave-one-out gap",
        "scores each sequence against the heuristic that was best on the other four, the choice a user",
        "could make without seeing the clip. Oracle headroom: what picking each frame's best guide with the",
        "ground truth gains over the best heuristic, the most any selector could win.",
        "",
        "## Masks (J&F)",
        "",
        "| propagator | run | heuristics | best heuristic | MSN gap | 95 % interval | MSN ahead | "
        "sequences won / tied / lost | leave-one-out gap | oracle headroom | table |",
        "|---|---|---:|---|---:|---|---:|---|---:|---:|---|",
        *mask_rows(resamples),
        "",
        "## Colour (MSN against the previous frame, first 25 frames)",
        "",
        "| metric | run | MSN gain | 95 % interval | MSN ahead | sequences won / tied / lost | table |",
        "|---|---|---:|---|---:|---|---|",
        *colour_rows(resamples),
        "",
        "L1 is signed so that a positive gain means MSN's L1 is lower.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(RESULTS / "selector_gaps.md"), help="file to write, or - for stdout")
    ap.add_argument("--resamples", type=int, default=20000)
    args = ap.parse_args()
    text = report(args.resamples)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
