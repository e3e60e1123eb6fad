"""How much does training matter? The validation protocol of results/evaluation.md (every frame of
each validation sequence at max side 384; ``--max-frames 40``: the first 40 only, round 1's protocol), with the shipped TPN weights and with the untrained TPN (whose
zero-initialised correction makes it a plain optical-flow warp of the guide's mask).

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/untrained_baseline.py [--max-frames N] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

import msn_core
from msn_core.metrics import evaluate_sequence

VALIDATION = ("camel", "dog", "kite-surf", "horsejump-high", "soapbox")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-frames", type=int, default=None, help="first N frames of each sequence (default: all)")
    ap.add_argument("--data-dir", default=None, help="DAVIS root (default: $MSN_DATA_DIR or ../shared/data/davis2016)")
    args = ap.parse_args()
    n, data_dir = args.max_frames, args.data_dir or msn_core.default_data_dir()
    clips = {}
    for seq in VALIDATION:
        src, masks = msn_core.davis_sequence(data_dir, seq)
        clips[seq] = (list(itertools.islice(src, n)), [msn_core.read_mask(p) for p in masks[:n]])
    for weights, name in (("auto", "trained TPN"), (None, "untrained TPN (flow warp)")):
        pipe = msn_core.load("tpn", weights=weights)
        for sel in ("previous", "first"):
            jf = [evaluate_sequence(truth, [r.labels for r in pipe.propagate(frames, truth[0], selector=sel)]).JF_mean
                  for frames, truth in clips.values()]
            print(f"{name:26s} {sel:9s} J&F {100 * np.mean(jf):.1f}  per sequence {np.round(100 * np.array(jf), 1)}")


if __name__ == "__main__":
    main()
