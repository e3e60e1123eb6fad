"""The guide-dependence measures of tests/test_guide_dependence.py, printed as IoU values, for a candidate
network and its MSN (files tpn_mask.safetensors and msn_tpn.safetensors, or stm.safetensors and
msn_stm.safetensors, in a folder, not pinned):

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/guide_probe.py runs/cand9 [MAX_SIDE] [--selector S] [--propagator stm]

MAX_SIDE: the processing long side (default or 0: the network's own). --selector: the selector of every
measure but the last (default msn), e.g. msn-near0.1.
"""

import argparse

import numpy as np
import torch

import msn_core
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import read_sequence
from msn_core.io import example_sequence, read_mask
from msn_core.training.scenes import build_scene

FRAMES = 11  # frames 0..10, as the tests score frame 10


def clip(name: str):
    source, masks = example_sequence(name, max_frames=FRAMES)
    return list(source), [read_mask(p) for p in masks]


def iou(a, b) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


FILES = {"tpn": ("tpn_mask", "msn_tpn"), "stm": ("stm", "msn_stm")}
ARGS = argparse.Namespace(max_side=0, selector="msn", propagator="tpn")


def last(folder: str, frames, first, selector: str | None = None):
    model, msn = FILES[ARGS.propagator]
    weights = {"model": f"{folder}/{model}.safetensors", "msn": f"{folder}/{msn}.safetensors"}
    selector, side = selector or ARGS.selector, ARGS.max_side or None
    pipe = msn_core.load(ARGS.propagator, selector=selector, weights=weights, max_side=side)
    return list(pipe.propagate(frames, first))[-1].labels


def main(folder: str) -> None:
    torch.set_num_threads(1)
    frames, masks = clip("camel")
    patch = np.zeros(masks[0].shape, np.uint8)
    patch[10:55, 10:110] = 1
    print("empty patch, IoU with the camel (<= 0.2):", round(iou(last(folder, frames, patch) > 0, masks[-1] > 0), 3))
    scene = build_scene("second", (frames, masks), clip("dog"), seed=0)
    for case, other in (("host", "guest"), ("guest", "host")):
        truth = scene.truth(case)
        out = last(folder, scene.frames, truth[0]) > 0
        print(f"mark the {case}: IoU with it {iou(out, truth[-1] > 0):.3f} (>= 0.6), "
              f"with the {other} {iou(out, scene.truth(other)[-1] > 0):.3f} (<= 0.1)")  # fmt: skip
    truth = scene.truth("both")
    out = last(folder, scene.frames, truth[0])
    for oid, o in ((1, 2), (2, 1)):
        print(f"two ids, id {oid}: own {iou(out == oid, truth[-1] == oid):.3f} (>= 0.6), "
              f"other {iou(out == oid, truth[-1] == o):.3f} (<= 0.1)")  # fmt: skip
    full, gts = read_sequence(default_data_dir(), "camel", FRAMES + 1)
    box = np.zeros(gts[0].shape, np.uint8)
    box[20:120, 20:200] = 1
    out = last(folder, full, box, "previous")
    print("a box on the 480p camel's background, selector previous, IoU with the camel (<= 0.2):",
          round(iou(out > 0, gts[-1] > 0), 3))  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("max_side", nargs="?", type=int, default=0)
    p.add_argument("--selector", default="msn")
    p.add_argument("--propagator", choices=sorted(FILES), default="tpn")
    ARGS = p.parse_args()
    main(ARGS.folder)
