"""Does STM-1 gain from reading a later annotated frame as memory before the pass reaches it?

Frame 0 and the middle frame annotated, one forward pass. In the product a frame before the middle
one reads only frame 0 (the annotated frames the pass has reached) besides its guide. Here the middle
frame's key and value are made first (one step of the loop on that frame alone) and every frame before
it reads them too, as the permanent memory of interactive tools holds every frame the user marked.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/annotations_ahead.py [--weights-dir DIR] [--selector msn]

prints J&F per validation clip for frame 0 alone, frame 0 and the middle frame as the product runs
them, and the same with the middle frame read ahead.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from msn_core.config import default_data_dir
from msn_core.evaluation.runs import load_pipeline, read_sequence, weights_in
from msn_core.memory.pool import MemoryPool
from msn_core.metrics import evaluate_sequence
from msn_core.propagators import STMPropagator
from msn_core.training.data import VAL_SEQUENCES


def run(pipe, frames, annotations, selector) -> list[np.ndarray]:
    out = {r.index: r.labels for r in pipe.propagate(frames, annotations, selector=selector, direction="forward")}
    return [out[i] for i in range(len(frames))]


def entry_of(pipe, frame, labels):
    """The memory entry the loop makes of an annotated frame (its STM key and value)."""
    made, add = [], MemoryPool.add
    MemoryPool.add = lambda self, entry: made.append(entry) or add(self, entry)
    try:
        list(pipe.propagate([frame], {0: labels}, selector="previous"))
    finally:
        MemoryPool.add = add
    return made[0]


def run_ahead(pipe, frames, gts, mid, selector) -> list[np.ndarray]:
    ahead = dataclasses.replace(entry_of(pipe, frames[mid], gts[mid]), index=mid, annotated=True)
    predict = STMPropagator.predict

    def reading_ahead(self, target, guide, refs):
        return predict(self, target, guide, list(refs) + [ahead] * (target.index < mid))

    STMPropagator.predict = reading_ahead
    try:
        return run(pipe, frames, {0: gts[0], mid: gts[mid]}, selector)
    finally:
        STMPropagator.predict = predict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--weights-dir", default=None, help="folder with stm.safetensors and msn_stm.safetensors (default: bundled)")
    p.add_argument("--selector", default="msn")
    p.add_argument("--max-side", type=int, default=384)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline("stm", "mask", weights_in(args.weights_dir, "stm", "mask"), args.max_side)
    rows = []
    for name in VAL_SEQUENCES:
        frames, gts = read_sequence(args.data_dir or default_data_dir(), name, None)
        mid = len(frames) // 2
        plays = {
            "frame 0": run(pipe, frames, {0: gts[0]}, args.selector),
            "frame 0 + middle": run(pipe, frames, {0: gts[0], mid: gts[mid]}, args.selector),
            "frame 0 + middle read ahead": run_ahead(pipe, frames, gts, mid, args.selector),
        }
        row = {k: 100 * evaluate_sequence(gts, preds).JF_mean for k, preds in plays.items()}
        rows.append(row)
        print(name + ": " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
        pipe.backbone.clear()
    print("mean: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.1f}" for k in rows[0]))


if __name__ == "__main__":
    main()
