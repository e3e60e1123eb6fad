"""Does STM-1 gain from reading a later annotated frame as memory before the pass reaches it?

Frame 0 and the middle frame annotated. The loop reads every annotated frame as memory from a
pass's first frame on, also those it reaches later (as the permanent memory of interactive tools
holds every frame the user marked). Here the same runs are also made with each frame reading only
the annotated frames its pass has reached (the loop's rule before), forward, and with each frame
taken from the nearer of the two annotated frames (a forward and a backward pass merged, as
``benchmarks/corrections.py --both`` merges them).

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/annotations_ahead.py [--weights-dir DIR] [--selector msn] [--sequences A,B]

prints J&F per clip (default: the validation clips) and the mean.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import numpy as np
import torch

from msn_core.config import default_data_dir
from msn_core.evaluation.runs import load_pipeline, read_sequence, weights_in
from msn_core.metrics import evaluate_sequence
from msn_core.propagators import STMPropagator
from msn_core.training.data import VAL_SEQUENCES


@contextmanager
def reached_only():
    """STM-1 reads only the annotated frames its pass has reached (positions up to the target's)."""
    predict = STMPropagator.predict
    STMPropagator.predict = lambda self, target, guide, refs: predict(
        self, target, guide, [r for r in refs if r.index <= target.index]
    )
    try:
        yield
    finally:
        STMPropagator.predict = predict


def run(pipe, frames, annotations, selector, direction="forward") -> dict[int, np.ndarray]:
    return {r.index: r.labels for r in pipe.propagate(frames, annotations, selector=selector, direction=direction)}


def nearer(forward: dict, backward: dict, mid: int) -> dict[int, np.ndarray]:
    """Frames 0..mid from the nearer of frame 0 (the forward run) and the middle frame (the backward
    one), later frames from the forward run."""
    return {i: backward[i] if i <= mid and mid - i < i else forward[i] for i in forward}


def plays(pipe, frames, gts, selector) -> dict[str, dict[int, np.ndarray]]:
    mid = len(frames) // 2
    two = {0: gts[0], mid: gts[mid]}
    out = {"frame 0": run(pipe, frames, {0: gts[0]}, selector)}
    with reached_only():
        fwd = run(pipe, frames, two, selector)
        out["frame 0 + middle, reached only"] = fwd
        out["nearer, reached only"] = nearer(fwd, run(pipe, frames, two, selector, "backward"), mid)
    fwd = run(pipe, frames, two, selector)
    out["frame 0 + middle, read ahead"] = fwd
    out["nearer, read ahead"] = nearer(fwd, run(pipe, frames, two, selector, "backward"), mid)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--weights-dir", default=None, help="folder with stm.safetensors and msn_stm.safetensors (default: bundled)")
    p.add_argument("--selector", default="msn")
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sequences", default=",".join(VAL_SEQUENCES), help="comma-separated (default: the validation ones)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline("stm", "mask", weights_in(args.weights_dir, "stm", "mask"), args.max_side)
    rows = []
    for name in args.sequences.split(","):
        frames, gts = read_sequence(args.data_dir or default_data_dir(), name, None)
        made = plays(pipe, frames, gts, args.selector)
        row = {k: 100 * evaluate_sequence(gts, [v[i] for i in range(len(frames))]).JF_mean for k, v in made.items()}
        rows.append(row)
        print(name + ": " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
        pipe.backbone.clear()
    print("mean: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.2f}" for k in rows[0]))


if __name__ == "__main__":
    main()
