"""Frame 0 and the middle frame annotated: does fusing a forward and a backward pass beat taking each
frame from the nearer annotated frame?

Between two annotated frames a and b, the forward pass (from a, with b in the pool once reached) and
the backward pass (from b) both give every frame t a soft mask. "nearer" takes the pass whose anchor is
nearer (what benchmarks/corrections.py reports); "fused" blends the two passes' probabilities with
weights (b - t) / (b - a) for the forward one and (t - a) / (b - a) for the backward one, as MiVOS
fuses its propagations, and takes the most likely id. Frames after b come from the forward pass.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/fused_passes.py [--weights-dir DIR] [--selector msn]

prints J&F per validation clip for forward, nearer and fused.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import msn_core.propagation as loop
from msn_core.annotations import annotation_task
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import load_pipeline, read_sequence, weights_in
from msn_core.metrics import evaluate_sequence
from msn_core.training.data import VAL_SEQUENCES


def soft_run(pipe, frames, annotations, selector, direction) -> tuple[dict, dict]:
    """({index: id map}, {index: (label tensor at the padded processing size, processing size, size)})."""
    probs, last, output, result = {}, [], loop._output, loop._result
    loop._output = lambda task, label, state, frame, labels: last.append((label.clone(), state.proc, state.size)) or output(task, label, state, frame, labels)

    def keep(run, index, *args):
        probs[index] = last.pop()
        return result(run, index, *args)

    loop._result = keep
    try:
        ids = {r.index: r.labels for r in pipe.propagate(frames, annotations, selector=selector, direction=direction)}
    finally:
        loop._output, loop._result = output, result
    return ids, probs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--propagator", default="stm", choices=["stm", "tpn"])
    p.add_argument("--selector", default="msn")
    p.add_argument("--max-side", type=int, default=384)
    p.add_argument("--sequences", default=",".join(VAL_SEQUENCES))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.propagator, "mask", weights_in(args.weights_dir, args.propagator, "mask"), args.max_side)
    rows = []
    for name in args.sequences.split(","):
        frames, gts = read_sequence(default_data_dir(), name, None)
        n, mid = len(frames), len(frames) // 2
        marks = {0: gts[0], mid: gts[mid]}
        fwd, pf = soft_run(pipe, frames, marks, args.selector, "forward")
        bwd, pb = soft_run(pipe, frames, marks, args.selector, "backward")
        nearer, fused, task = [], [], annotation_task(marks)
        for t in range(n):
            if 0 < t < mid:
                nearer.append(bwd[t] if mid - t < t else fwd[t])
                w = (mid - t) / mid
                (a, proc, size), (b, _, _) = pf[t], pb[t]
                fused.append(task.to_output(w * a + (1 - w) * b, proc, size))
            else:
                nearer.append(fwd[t])
                fused.append(fwd[t])
        row = [100 * evaluate_sequence(gts, [fwd[t] for t in range(n)]).JF_mean]
        row += [100 * evaluate_sequence(gts, nearer).JF_mean, 100 * evaluate_sequence(gts, fused).JF_mean]
        rows.append(row)
        print(f"{name}: forward {row[0]:.1f}  nearer {row[1]:.1f}  fused {row[2]:.1f}", flush=True)
        pipe.backbone.clear()
    m = np.mean(rows, 0)
    print(f"\nmean J&F over {len(rows)} clips: forward {m[0]:.1f}  nearer {m[1]:.1f}  fused {m[2]:.1f}")


if __name__ == "__main__":
    main()
