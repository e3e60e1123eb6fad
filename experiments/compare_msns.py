"""Several MSN weight files (and any other selectors) on the validation sequences, each sequence's
propagation network adapted once and shared by every run, so that MSN variants are compared on
exactly the same adapted network (``msn evaluate --adapt-steps`` adapts once per invocation).

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/compare_msns.py --propagator tpn --adapt-steps 300 \\
        --selectors first,gap5 bundled MSN_A.safetensors MSN_B.safetensors --out table.json

Each positional argument is an MSN weight file (e.g. one that ``msn train msn`` wrote) or
``bundled``, the shipped MSN; ``bundled-stm`` / ``bundled-tpn`` the shipped MSN of that propagator (an
MSN reads only backbone features, so either can guide either network). Prints J&F per sequence and the
mean for every row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from msn_core.config import default_data_dir
from msn_core.evaluation import adapted_pipeline, load_pipeline, read_sequence, timed_run
from msn_core.metrics import evaluate_sequence
from msn_core.pipeline import load
from msn_core.training.data import VAL_SEQUENCES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("msns", nargs="+", help="MSN weight files for the propagator, 'bundled', or 'bundled-stm' / 'bundled-tpn'")
    ap.add_argument("--propagator", choices=("tpn", "stm"), default="tpn")
    ap.add_argument("--adapt-steps", type=int, default=300)
    ap.add_argument("--selectors", default="first", help="other selectors to run beside (comma-separated)")
    ap.add_argument("--sequences", default=",".join(VAL_SEQUENCES))
    ap.add_argument("--max-side", type=int, default=384)
    ap.add_argument("--data-dir", default=None, help="DAVIS root (default: $MSN_DATA_DIR or ../shared/data/davis2016)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file for the table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or default_data_dir()
    pipe = load_pipeline(args.propagator, "mask", "auto", args.max_side)
    def msn_of(m: str):
        if m == "bundled":
            return pipe.msn
        if m.startswith("bundled-"):  # another propagator's shipped MSN
            return load(m.removeprefix("bundled-"), "mask").msn
        return load(args.propagator, "mask", weights={"msn": m}).msn

    msns = {m: msn_of(m) for m in args.msns}
    rows = [s for s in args.selectors.split(",") if s] + [f"msn:{m}" for m in msns]
    table: dict[str, dict[str, float]] = {r: {} for r in rows}
    for name in args.sequences.split(","):
        frames, gts = read_sequence(data_dir, name, None)
        run, _ = adapted_pipeline(pipe, frames[0], gts[0], args.adapt_steps, print)
        for row in rows:
            sel, _, m = row.partition(":")
            use = run.with_parts(msn=msns[m]) if m else run
            results, _ = timed_run(use, frames, gts[0], sel, gts if sel.startswith("oracle") else None)
            score = evaluate_sequence(gts, [r.labels for r in results], name=name)
            table[row][name] = 100 * score.JF_mean
            print(f"{name} {row}: J&F {table[row][name]:.2f}", flush=True)
    print(f"\n{'row':60s} " + " ".join(f"{s[:10]:>10s}" for s in args.sequences.split(",")) + "       mean")
    for row, per in table.items():
        print(f"{row:60s} " + " ".join(f"{v:10.2f}" for v in per.values()) + f" {np.mean(list(per.values())):10.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "jf": table}, indent=1))


if __name__ == "__main__":
    main()
