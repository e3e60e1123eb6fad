"""Would a stronger backbone tell the marked object apart better? A training-free probe of the frozen
features alone: each frame's labels are read off its nearest memory pixels (the first frame with its
annotation and the last ``--recent`` frames with their own soft labels; top-``--topk`` cosine
affinities at stride 8, softmax at ``--temperature``), the label-propagation measure self-supervised
features are scored by on DAVIS. No network is trained, so a difference between backbones is a
difference between their features. Run on clips built from the TRAINING sequences and on held-out
synthetic-world clips (no validation clip):

    .venv/bin/python experiments/backbone_matching.py --backbones lite0,lite2 \\
        --data-dir runs/built_train --sequences $(cat runs/built_train/second-guest.txt)

"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import msn_core.models.backbone as bb
from msn_core.config import BackboneConfig
from msn_core.evaluation.runs import read_sequence
from msn_core.geometry import FrameGeometry
from msn_core.metrics.report import evaluate_sequence


def backbone(variant: str) -> bb.Backbone:
    return bb.build_backbone(BackboneConfig(name=f"efficientnet_{variant}"))


@torch.inference_mode()
def propagate(net, frames, first: np.ndarray, side: int, stride: int, recent: int, topk: int, temp: float):
    geometry = FrameGeometry(frames[0].shape[:2], side)
    h, w = geometry.proc
    ids = [i for i in np.unique(first) if i]
    feats = []
    for f in frames:
        x = torch.from_numpy(np.ascontiguousarray(geometry.fit(f).transpose(2, 0, 1)))[None].float() / 255.0
        feats.append(F.normalize(net(x)[stride][0], dim=0))  # (C, hs, ws)
    hs, ws = feats[0].shape[-2:]
    lab0 = geometry.fit_labels(first)
    onehot = np.stack([lab0 == i for i in [0, *ids]]).astype(np.float32)
    lab = F.adaptive_avg_pool2d(torch.from_numpy(onehot)[None], (hs, ws))[0]  # (K, hs, ws)
    memory = [(feats[0], lab)]
    out = [first]
    for t in range(1, len(frames)):
        mem = [memory[0], *memory[1:][-recent:]]
        keys = torch.cat([m[0].flatten(1) for m in mem], 1)  # (C, M)
        vals = torch.cat([m[1].flatten(1) for m in mem], 1)  # (K, M)
        aff = feats[t].flatten(1).T @ keys  # (N, M)
        top, idx = aff.topk(min(topk, aff.shape[1]), dim=1)
        wgt = torch.softmax(top / temp, dim=1)
        prob = (vals[:, idx] * wgt[None]).sum(-1).reshape(-1, hs, ws)  # (K, hs, ws)
        memory.append((feats[t], prob))
        up = F.interpolate(prob[None], scale_factor=stride, mode="bilinear", align_corners=False)[0][:, :h, :w]
        pred = np.asarray([0, *ids])[up.argmax(0).numpy()].astype(np.uint8)
        out.append(cv2.resize(pred, (first.shape[1], first.shape[0]), interpolation=cv2.INTER_NEAREST))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", default="lite0,lite2")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--sequences", required=True)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--side", type=int, default=480)
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--recent", type=int, default=4)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = args.sequences.split(",")
    for variant in args.backbones.split(","):
        net, scores, t0 = backbone(variant), [], time.perf_counter()
        for name in names:
            frames, gts = read_sequence(args.data_dir, name, args.max_frames)
            pred = propagate(net, frames, gts[0], args.side, args.stride, args.recent, args.topk, args.temperature)
            s = 100 * evaluate_sequence(gts, pred, name=name).JF_mean
            scores.append(s)
            print(f"{variant} {name}: J&F {s:.1f}", flush=True)
        print(f"{variant}: mean J&F {np.mean(scores):.2f} over {len(names)} clips ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
