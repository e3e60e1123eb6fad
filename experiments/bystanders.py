"""A real video with people next to the marked object: does the mask stay on it? DAVIS's soapbox (a
validation sequence: spectators line the road, a man runs beside the cart and pushes it) from its
first-frame mask, no adaptation, each network at its defaults. Per frame: IoU with the truth, and the
share of the predicted pixels that lie far from the marked object (more than ``--far`` px from its true
mask: on a spectator, the road or the houses, not a blurred edge). Writes an overlay of the frames ``--frames``
(predicted mask green, the true outline red), the frame with the most mask far from the object among them.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/bystanders.py [--sequence soapbox] [--propagators stm,tpn]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

import msn_core
from msn_core.config import default_data_dir
from msn_core.evaluation.runs import read_sequence, weights_in


def far_share(pred: np.ndarray, truth: np.ndarray, far: int) -> float:
    """Share of ``pred``'s pixels more than ``far`` px from ``truth`` (0 for an empty prediction)."""
    if not pred.any():
        return 0.0
    dist = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 5)
    return float((pred & (dist > far)).sum() / pred.sum())


def overlay(frame: np.ndarray, pred: np.ndarray, truth: np.ndarray, label: str) -> np.ndarray:
    out = frame.copy()
    out[pred] = (0.5 * out[pred] + 0.5 * np.array([0, 220, 0])).astype(np.uint8)
    contours, _ = cv2.findContours(truth.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 0, 0), 2)
    cv2.putText(out, label, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sequence", default="soapbox")
    p.add_argument("--propagators", default="stm,tpn")
    p.add_argument("--frames", default="30,41,60,90", help="frames shown in the figure")
    p.add_argument("--far", type=int, default=20, help="px from the true mask beyond which a pixel is elsewhere")
    p.add_argument("--out", default="results/bystanders")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights-dir", default=None, help="folder of candidate *.safetensors (default: the shipped ones)")
    p.add_argument("--max-side", type=int, default=None, help="processing long side (default: each network's own)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames, gts = read_sequence(default_data_dir(), args.sequence, None)
    truths = [g > 0 for g in gts]
    shown = [int(v) for v in args.frames.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {}
    for name in args.propagators.split(","):
        pipe = msn_core.load(name, selector="msn", weights=weights_in(args.weights_dir, name, "mask"), max_side=args.max_side)
        preds = [r.labels > 0 for r in pipe.propagate(frames, gts[0])]
        ious = [float((a & b).sum() / max(1, (a | b).sum())) for a, b in zip(preds, truths)]
        far = [far_share(a, b, args.far) for a, b in zip(preds, truths)]
        worst = int(np.argmax(far))
        record[name] = {"iou": ious, "far_share": far}
        print(f"{name}: mean IoU {np.mean(ious[1:]):.3f}; share of the mask more than {args.far} px from the object: "
              f"mean {np.mean(far[1:]):.3f}, worst {far[worst]:.3f} at frame {worst}, "
              f"frames above 5 % {sum(f > 0.05 for f in far)} of {len(far) - 1}")  # fmt: skip
        picked = shown + [worst] * (worst not in shown)  # the worst frame always shown
        tiles = [overlay(frames[t], preds[t], truths[t], f"{name} frame {t}: far {far[t]:.2f}") for t in picked]
        tiles = [cv2.resize(t, (t.shape[1] // 2, t.shape[0] // 2), interpolation=cv2.INTER_AREA) for t in tiles]
        half = (len(tiles) + 1) // 2
        rows = [np.hstack(tiles[:half]), np.hstack(tiles[half:] + [np.zeros_like(tiles[0])] * (2 * half - len(tiles)))]
        cv2.imwrite(str(out / f"{args.sequence}_{name}.png"), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    (out / f"{args.sequence}.json").write_text(json.dumps({"far_px": args.far, **record}))


if __name__ == "__main__":
    main()
