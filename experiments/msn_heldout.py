"""How well does MSN pick on mined targets of clips it did not learn from, and how does that change with
the number of training steps? The mined world clips of a stage-2 work folder (``msn train msn``'s cache,
every set of ``--guide-msn``) are split by clip: MSN learns from the first ones (the same PairSet,
loss and optimiser as ``train_msn``) and is scored on the last ``--held-out`` clips of each set, one step
ahead: the mean quality (IoU) of the candidate it scores best, against the previous frame's and the best
candidate's, and the share of (positive, negative) pairs it orders right. No validation clip is read.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/msn_heldout.py --propagator tpn-mask \\
        --work-dir runs/msnw480dag --world 100 --world-length 48 --guide-msn runs/r19/msn_tpn_la.safetensors \\
        --label-aware --steps 200,400,800,1600
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from msn_core.config import BackboneConfig, MSNConfig, default_data_dir
from msn_core.models.backbone import build_backbone
from msn_core.models.selection import MSN
from msn_core.training.data import TRAIN_SEQUENCES
from msn_core.training.losses import msn_loss
from msn_core.training.mining import NEGATIVE, POSITIVE, label_samples
from msn_core.training.samples import PairSet
from msn_core.training.stage2 import MiningConfig, mined_samples
from msn_core.training.trainer import TrainConfig, train_loop


@torch.inference_mode()
def score(msn: MSN, pairs: PairSet, targets, relative: bool) -> dict[str, float]:
    picked, previous, best, right, total = [], [], [], 0, 0
    for m in targets:
        q = np.asarray(m.qualities)
        f32 = pairs.f32[m.seq]
        flags = torch.tensor([float(c in m.annotated) for c in m.candidates])
        m_p = None if pairs.masks is None else pairs.masks[m.seq][m.candidates]
        s = msn(f32[m.candidates].float(), pairs.f_a[m.seq], f32[m.t : m.t + 1].float(), flags, m_p).numpy()
        picked.append(q[int(s.argmax())])
        previous.append(q[m.candidates.index(m.t - 1)] if m.t - 1 in m.candidates else q[-1])
        best.append(q.max())
        lab = label_samples(q, relative=relative)
        pos, neg = s[lab == POSITIVE], s[lab == NEGATIVE]
        right += int((pos[:, None] > neg[None, :]).sum())
        total += pos.size * neg.size
    return {
        "msn": float(np.mean(picked)),
        "previous": float(np.mean(previous)),
        "best": float(np.mean(best)),
        "pairs_right": right / max(total, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--propagator", default="tpn-mask", choices=["tpn-mask", "stm"])
    p.add_argument("--propagator-weights", default=None, help="the frozen net (default: the bundled one)")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--world", type=int, default=100)
    p.add_argument("--world-length", type=int, default=48)
    p.add_argument("--max-side", type=int, default=480)
    p.add_argument("--target-step", type=int, default=3)
    p.add_argument("--corrections", type=int, default=2)
    p.add_argument("--guide-msn", default=None)
    p.add_argument("--label-aware", action="store_true")
    p.add_argument("--held-out", type=int, default=20, help="the last N world clips of each set are scored")
    p.add_argument("--steps", default="200,400,800,1600")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    weights = args.propagator_weights or f"msn_core/weights/{args.propagator.replace('-', '_')}.safetensors"
    mining = MiningConfig(
        propagator_weights=weights, world=args.world, world_length=args.world_length,
        target_step=args.target_step, corrections=args.corrections, guide_msn=args.guide_msn,
    )  # fmt: skip
    msn_cfg = MSNConfig(annotated_head=args.corrections > 0, label_aware=args.label_aware)
    backbone = build_backbone(BackboneConfig())
    seqs, pairs = mined_samples(
        args.propagator, default_data_dir(), args.work_dir, TRAIN_SEQUENCES, mining, msn_cfg, backbone, args.max_side
    )
    n = len(seqs)
    held = [m for m in pairs.targets if m.seq % n >= n - args.held_out]
    learn = [m for m in pairs.targets if m.seq % n < n - args.held_out]
    train = PairSet(learn, pairs.f32, pairs.f_a, relative=mining.relative, masks=pairs.masks)
    print(f"{len(learn)} targets learnt from ({len(train.pos)} pos / {len(train.neg)} neg), {len(held)} scored")
    print(f"command: {' '.join(sys.argv)}")
    for steps in (int(s) for s in args.steps.split(",")):
        cfg = TrainConfig(steps=steps, batch=args.batch, lr=args.lr, seed=args.seed, progress=False)
        torch.manual_seed(cfg.seed)
        msn = MSN(msn_cfg, backbone.channels[msn_cfg.feature_stride])

        def loss_fn(model, rng):
            f_p, f_a, f_t, annotated, labels, m_p = train.sample(args.batch, rng)
            return msn_loss(model(f_p, f_a, f_t, annotated, m_p), labels)

        out = train_loop(msn, loss_fn, cfg, None, local=True)
        res = score(msn.eval(), pairs, held, mining.relative)
        print(
            f"steps {steps:5d}: loss {np.mean(out['losses'][-50:]):.3f}  held-out pick IoU msn {res['msn']:.4f}"
            f"  previous {res['previous']:.4f}  best {res['best']:.4f}  pairs ordered right {res['pairs_right']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
