"""Test-time flip and online adaptation on one sequence (results/evaluation.md, "Test-time flip").

Adapts the bundled network(s) to the sequence's annotated frame twice, once on the frame alone (what
``adapt`` does for a pipeline without ``test_flip``) and once on the frame and its mirror image (what
it does for a pipeline with ``test_flip``), and scores the previous-frame selector at max side 854 with
and without the flip. Usage (about 10 minutes of one CPU core for TPN):

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/flip_adaptation_probe.py tpn kite-surf [--data-dir DIR]

What it printed for ``tpn kite-surf``, and what that led to: results/evaluation.md, "Test-time flip".
"""

import argparse
import dataclasses

import torch

from msn_core.config import default_data_dir
from msn_core.evaluation import adapted_pipeline, load_pipeline, read_sequence, timed_run
from msn_core.metrics import evaluate_sequence


def main(prop: str, seq: str, data_dir=None) -> None:
    torch.set_num_threads(1)
    frames, gts = read_sequence(data_dir or default_data_dir(), seq, None)
    pipe = load_pipeline(prop, "mask", "auto", 854)

    def score(run, tag: str) -> None:
        res, spf = timed_run(run, frames, gts[0], "previous")
        s = evaluate_sequence(gts, [r.labels for r in res], name=seq)
        print(f"{prop} {seq} {tag}: J&F {100 * s.JF_mean:.2f} ({spf:.2f} s/frame)", flush=True)

    def flip(p, on: bool):
        return p.with_parts(cfg=dataclasses.replace(p.cfg, test_flip=on))

    plain, _ = adapted_pipeline(pipe, frames[0], gts[0], 300, print)  # pipe has no flip: frame alone
    score(plain, "plain-adapt noflip")
    score(flip(plain, True), "plain-adapt flip")
    mirrored, _ = adapted_pipeline(flip(pipe, True), frames[0], gts[0], 300, print)  # frame and mirror
    score(mirrored, "mirror-adapt flip")
    score(flip(mirrored, False), "mirror-adapt noflip")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("propagator", nargs="?", default="tpn", choices=("tpn", "stm", "tpn+stm"))
    ap.add_argument("sequence", nargs="?", default="kite-surf")
    ap.add_argument("--data-dir", default=None, help="DAVIS root (default: $MSN_DATA_DIR or ../shared/data/davis2016)")
    args = ap.parse_args()
    main(args.propagator, args.sequence, args.data_dir)
