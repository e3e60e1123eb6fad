"""How much does the choice of guide matter on the validation clips, and how well does MSN rank?

Runs MSN's own propagation (its picks make the labels in the memory pool, as in a real run), audited:
at every frame it also propagates from *every* candidate in the pool and measures each result against
the ground truth (``Pipeline.propagate(..., audit=True)``; mean IoU over objects for masks). From those one-step
qualities it reports, per sequence and overall:

- the spread of quality across the candidates (best minus median, best minus worst): how much there
  is for any selector to win at a frame;
- the quality of the candidate each rule would pick at that frame (MSN's argmax, the first frame,
  the previous frame, gap 5, a random candidate = the mean, and the best);
- how well MSN's scores rank the candidates (Spearman correlation with the quality, per frame), and
  how well recency does (the candidate's frame index against its quality: > 0 when newer is better).

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/candidate_spread.py --propagator tpn --out results/candidate_spread_tpn
    # writes results/candidate_spread_tpn.md and .json (add --records for every frame's qualities and scores)

The candidates' labels are MSN's own, so the "first frame" and "gap 5" columns are one-step picks on
MSN's trajectory, not full runs of those selectors (evaluation.md has those).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from msn_core.config import default_data_dir
from msn_core.evaluation import adapted_pipeline, load_pipeline, read_sequence
from msn_core.memory.selectors import SelectionContext, make_selector
from msn_core.metrics import rank_correlation
from msn_core.training.data import VAL_SEQUENCES

RULES = ("msn", "first", "previous", "gap5", "random (mean)", "best")


def record(r) -> dict:
    """One audited frame result as a JSON record."""
    cands = list(r.candidates)
    return {"t": r.index, "candidates": cands, "quality": [r.quality[c] for c in cands],
            "msn": [r.scores[c] for c in cands]}


def picks(frame: dict) -> dict[str, float]:
    """The one-step quality each rule gets at one frame: the selectors' own picks, given the
    recorded MSN scores for "msn"."""
    c, q = frame["candidates"], frame["quality"]
    by = dict(zip(c, q))
    ctx = SelectionContext(t=frame["t"], candidates=list(c), msn_scores=lambda _: np.asarray(frame["msn"]))
    out = {rule: by[make_selector(rule).select(ctx).guides[0]] for rule in ("msn", "first", "previous", "gap5")}
    return {**out, "random (mean)": float(np.mean(q)), "best": max(q)}


def summarise(frames: list[dict]) -> dict:
    rows = [picks(f) for f in frames]
    out = {r: 100 * float(np.mean([row[r] for row in rows])) for r in RULES}
    q = [np.array(f["quality"]) for f in frames]
    out["best - median"] = 100 * float(np.mean([x.max() - np.median(x) for x in q]))
    out["best - worst"] = 100 * float(np.mean([x.max() - x.min() for x in q]))
    out["frames where every candidate is within 1 point of the best (%)"] = 100 * float(
        np.mean([(x.max() - x.min()) < 0.01 for x in q])
    )
    rho = [rank_correlation(f["msn"], f["quality"]) for f in frames]
    out["MSN rank correlation (Spearman, mean over frames)"] = float(np.nanmean(rho))
    recency = [rank_correlation(f["candidates"], f["quality"]) for f in frames]
    out["recency rank correlation (Spearman, mean over frames)"] = float(np.nanmean(recency))
    out["frames"] = len(frames)
    return out


SHOWN = (
    *RULES,
    "best - median",
    "best - worst",
    "MSN rank correlation (Spearman, mean over frames)",
    "recency rank correlation (Spearman, mean over frames)",
)


def markdown(result: dict) -> str:
    """One table: a row per sequence and one for all frames together."""
    heads = ["sequence", *(k.split(" (")[0] if "rank" in k else k for k in SHOWN), "frames"]
    rows = [*result["per_sequence"].items(), ("all frames", result["summary"])]
    lines = [
        f"# One-step guide quality on the validation clips: {result['propagator'].upper()}, max side {result['max_side']}"
        + (f", adapted ({result['adapt_steps']} steps)" if result.get("adapt_steps") else ""),
        "",
        "Made by `HF_HUB_OFFLINE=1 .venv/bin/python " + result["command"] + "` (shipped weights). At every frame of",
        "MSN's own run, every candidate in the memory pool is propagated and scored against the ground truth",
        "(mean IoU over objects, in percent). Columns 2-7: the mean quality of the candidate each rule picks at",
        "that frame (random = the mean over candidates); spread: best minus median / worst candidate; MSN rank",
        "correlation: Spearman's rho between MSN's scores and the candidates' qualities, mean over frames",
        "(0 = no better than chance at ordering them); recency rank correlation: the same for the candidates'",
        "frame indices (> 0 when newer guides are better).",
        "",
        "| " + " | ".join(heads) + " |",
        "|---|" + "---:|" * (len(heads) - 1),
    ]
    for name, row in rows:
        cells = [f"{row[k]:.2f}" for k in SHOWN] + [str(row["frames"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(result: dict, stem: str, records: bool) -> None:
    data = result if records else {k: v for k, v in result.items() if k != "frames"}
    Path(stem + ".json").write_text(json.dumps(data, indent=1))
    Path(stem + ".md").write_text(markdown(result))
    print(f"wrote {stem}.json and {stem}.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--propagator", choices=("tpn", "stm", "tpn+stm"), default="tpn")
    ap.add_argument("--sequences", default=",".join(VAL_SEQUENCES))
    ap.add_argument("--max-side", type=int, default=384)
    ap.add_argument("--adapt-steps", type=int, default=0, help="adapt the network to each clip's annotated frame first")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="path stem: writes STEM.json (the summaries) and STEM.md (a table)")
    ap.add_argument("--records", action="store_true", help="keep every frame's qualities and scores in STEM.json")
    ap.add_argument("--render", default=None, help="only rewrite --out from this JSON (one made with --records or not)")
    args = ap.parse_args()
    if args.render:
        result = json.loads(Path(args.render).read_text())
        if "frames" in result:  # recompute the summaries from the records
            result["per_sequence"] = {n: summarise(fr) for n, fr in result["frames"].items()}
            result["summary"] = summarise([f for fr in result["frames"].values() for f in fr])
        write(result, args.out or args.render.removesuffix(".json"), args.records)
        return
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or default_data_dir()
    pipe = load_pipeline(args.propagator, "mask", "auto", args.max_side)
    per_seq, records = {}, {}
    for name in args.sequences.split(","):
        t0 = time.perf_counter()
        frames, gts = read_sequence(data_dir, name, None)
        run, _ = adapted_pipeline(pipe, frames[0], gts[0], args.adapt_steps, print)
        results = run.propagate(frames, gts[0], selector="msn", ground_truth=gts, audit=True)
        records[name] = [record(r) for r in results if r.candidates]
        pipe.backbone.clear()
        per_seq[name] = summarise(records[name])
        print(f"{name} ({time.perf_counter() - t0:.0f} s): " + ", ".join(f"{k} {v:.2f}" for k, v in per_seq[name].items()), flush=True)
    overall = summarise([f for fr in records.values() for f in fr])
    print("all: " + ", ".join(f"{k} {v:.2f}" for k, v in overall.items()))
    if args.out:
        write({
            "propagator": args.propagator, "max_side": args.max_side, "adapt_steps": args.adapt_steps,
            "summary": overall, "per_sequence": per_seq, "frames": records,
            "command": f"experiments/candidate_spread.py --propagator {args.propagator} --max-side {args.max_side}"
            + (f" --adapt-steps {args.adapt_steps}" if args.adapt_steps else ""),
        }, args.out, args.records)


if __name__ == "__main__":
    main()
