"""How well does MSN pick on mined targets of clips it did not learn from, and how does that change with
the number of training steps? The mined world clips of a stage-2 work folder (``msn train msn``'s cache)
are split by clip: MSN learns from the first ones (the same PairSet,
loss and optimiser as ``train_msn``) and is scored on the last ``--held-out`` clips, one step
ahead: the mean quality (IoU) of the candidate it scores best, against the previous frame's and the best
candidate's, and the share of (positive, negative) pairs it orders right. No validation clip is read.

    HF_HUB_OFFLINE=1 .venv/bin/python experiments/msn_heldout.py --propagator tpn-mask \\
        --work-dir runs/msnw480dag --world 100 --world-length 48 --guide-msn runs/r19/msn_tpn_la.safetensors \\
        --label-aware --steps 200,400,800,1600
"""

from __future__ import annotations

import argparse
import dataclasses
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


def listwise_batch(pairs: PairSet, targets, n: int, rng: np.random.Generator):
    """All candidates of ``n`` random targets: (f_p, f_a, f_t, annotated, m_p, qualities, group)."""
    picked = [targets[i] for i in rng.integers(len(targets), size=n)]
    rows = [(m.seq, m.t, p, 0, p in m.annotated) for m in picked for p in m.candidates]
    group = torch.tensor([k for k, m in enumerate(picked) for _ in m.candidates])
    q = torch.tensor([m.qualities[m.candidates.index(p)] for m in picked for p in m.candidates])
    f_p, f_a, f_t, annotated, _, m_p = pairs.batch(rows, torch.from_numpy(rng.random(len(rows)) < 0.5))
    return f_p, f_a, f_t, annotated, m_p, q, group


def listwise_loss(scores: torch.Tensor, q: torch.Tensor, group: torch.Tensor, tau: float) -> torch.Tensor:
    """Cross-entropy of each target's softmax over its candidates' scores against softmax(q / tau)."""
    out = []
    for g in group.unique():
        sel = group == g
        out.append(-(torch.softmax(q[sel] / tau, 0) * torch.log_softmax(scores[sel], 0)).sum())
    return torch.stack(out).mean()


BUCKETS = (1, 2, 3, 5, 9, 17, 33)  # temporal distance t - p: 1, 2, 3, 4-5, 6-9, 10-17, 18-33, more


def bucket(d: torch.Tensor) -> torch.Tensor:
    return torch.bucketize(d.abs().clamp(min=1), torch.tensor(BUCKETS), right=False)


class TimePrior(torch.nn.Module):
    """MSN's logit plus a learnt bias per temporal-distance bucket (zero at the start)."""

    def __init__(self, msn: MSN):
        super().__init__()
        self.msn, self.cfg = msn, msn.cfg
        self.bias = torch.nn.Parameter(torch.zeros(len(BUCKETS) + 1))

    def forward(self, f_p, f_a, f_t, annotated=None, m_p=None, d=None):
        return self.msn(f_p, f_a, f_t, annotated, m_p) + self.bias[bucket(d)]


def label_stats(f_p: torch.Tensor, m_p: torch.Tensor, f_0: torch.Tensor, m_0: torch.Tensor) -> torch.Tensor:
    """(N, 4) per candidate: cosine of its object prototype (its stride-32 features averaged under its
    label) with the annotated frame's, log of its label's area over the annotation's, whether its
    label is empty, and how soft the label is where it lies."""
    eps = 1e-6
    a_p, a_0 = m_p.sum((1, 2, 3)), m_0.sum((1, 2, 3))
    proto_p = (f_p * m_p).sum((2, 3)) / (a_p[:, None] + eps)
    proto_0 = (f_0 * m_0).sum((2, 3)) / (a_0[:, None] + eps)
    cos = torch.nn.functional.cosine_similarity(proto_p, proto_0.expand_as(proto_p), dim=1)
    unsure = (4 * m_p * (1 - m_p)).sum((1, 2, 3)) / (a_p + eps)  # how soft the label is where it lies
    return torch.stack([cos, torch.log((a_p + 1e-2) / (a_0 + 1e-2)), (a_p < 1e-3).float(), unsure], 1)


class LabelStats(torch.nn.Module):
    """MSN's logit plus a small MLP of ``label_stats`` (its output layer zero at the start)."""

    def __init__(self, msn: MSN):
        super().__init__()
        self.msn, self.cfg = msn, msn.cfg
        self.mlp = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        torch.nn.init.zeros_(self.mlp[2].weight)

    def forward(self, f_p, f_a, f_t, annotated=None, m_p=None, f_0=None, m_0=None):
        return self.msn(f_p, f_a, f_t, annotated, m_p) + self.mlp(label_stats(f_p, m_p, f_0, m_0)).squeeze(1)


def sample_with_distance(pairs: PairSet, batch: int, rng: np.random.Generator):
    """``PairSet.sample``, the rows' temporal distances t - p, and their annotated frame's features and
    label (flipped as the row)."""
    rows, flip = pairs.draw(batch, rng)
    f_0 = torch.stack([pairs.f32[r[0]][0] for r in rows]).float()
    m_0 = torch.stack([pairs.masks[r[0]][0] for r in rows])
    f_0 = torch.where(flip[:, None, None, None], f_0.flip(-1), f_0)
    m_0 = torch.where(flip[:, None, None, None], m_0.flip(-1), m_0)
    return (*pairs.batch(rows, flip), torch.tensor([float(r[1] - r[2]) for r in rows]), f_0, m_0)


class StatScore(torch.nn.Module):
    """No learning: one label statistic as the score (``cos``: the prototype's cosine with the
    annotation's; ``area``: minus how far the label's area is from the annotation's, in log)."""

    def __init__(self, which: str):
        super().__init__()
        self.which = which

    def forward(self, f_p, f_a, f_t, annotated=None, m_p=None, f_0=None, m_0=None):
        st = label_stats(f_p, m_p, f_0, m_0)
        return st[:, 0] if self.which == "cos" else -st[:, 1].abs()


@torch.inference_mode()
def score(msn: MSN, pairs: PairSet, targets, relative: bool) -> dict[str, float]:
    picked, previous, best, right, total = [], [], [], 0, 0
    for m in targets:
        q = np.asarray(m.qualities)
        f32 = pairs.f32[m.seq]
        flags = torch.tensor([float(c in m.annotated) for c in m.candidates])
        m_p = None if pairs.masks is None else pairs.masks[m.seq][m.candidates]
        args = (f32[m.candidates].float(), pairs.f_a[m.seq], f32[m.t : m.t + 1].float(), flags, m_p)
        if isinstance(msn, TimePrior):
            args += (torch.tensor([float(m.t - c) for c in m.candidates]),)
        if isinstance(msn, (LabelStats, StatScore)):
            args += (f32[:1].float(), pairs.masks[m.seq][:1])
        s = msn(*args).numpy()
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
    p.add_argument("--held-out", type=int, default=20, help="the last N world clips are scored")
    p.add_argument("--learn-clips", type=int, default=None, help="learn from the first N clips only (default: all before the held-out ones)")
    p.add_argument("--steps", default="200,400,800,1600")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=None, help="Adam's weight decay (default: TrainConfig's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--loss", default="bce", choices=["bce", "listwise"])
    p.add_argument("--time-prior", action="store_true", help="a learnt bias per temporal distance t - p")
    p.add_argument("--label-stats", action="store_true", help="an MLP of each candidate's label statistics")
    p.add_argument("--stat-baselines", action="store_true", help="also score by one label statistic alone (no learning)")
    p.add_argument("--tau", type=float, default=0.05, help="listwise: the quality temperature")
    p.add_argument("--targets-per-batch", type=int, default=4, help="listwise: targets per step (all candidates each)")
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
    last = n - args.held_out if args.learn_clips is None else min(args.learn_clips, n - args.held_out)
    learn = [m for m in pairs.targets if m.seq % n < last]
    train = PairSet(learn, pairs.f32, pairs.f_a, relative=mining.relative, masks=pairs.masks)
    print(f"{len(learn)} targets learnt from ({len(train.pos)} pos / {len(train.neg)} neg), {len(held)} scored")
    print(f"command: {' '.join(sys.argv)}")
    if args.stat_baselines and pairs.masks is not None:
        for which in ("cos", "area"):
            res = score(StatScore(which), pairs, held, mining.relative)
            print(f"label statistic {which}: held-out pick IoU {res['msn']:.4f}  pairs ordered right {res['pairs_right']:.3f}")
    for steps in (int(s) for s in args.steps.split(",") if int(s) > 0):  # 0: no MSN trained
        cfg = TrainConfig(steps=steps, batch=args.batch, lr=args.lr, seed=args.seed, progress=False)
        if args.weight_decay is not None:
            cfg = dataclasses.replace(cfg, weight_decay=args.weight_decay)
        torch.manual_seed(cfg.seed)
        msn = MSN(msn_cfg, backbone.channels[msn_cfg.feature_stride])
        if args.time_prior:
            msn = TimePrior(msn)
        if args.label_stats:
            msn = LabelStats(msn)

        def loss_fn(model, rng):
            if args.loss == "listwise":
                f_p, f_a, f_t, annotated, m_p, q, group = listwise_batch(pairs, learn, args.targets_per_batch, rng)
                return listwise_loss(model(f_p, f_a, f_t, annotated, m_p), q, group, args.tau)
            if args.time_prior or args.label_stats:
                f_p, f_a, f_t, annotated, labels, m_p, d, f_0, m_0 = sample_with_distance(train, args.batch, rng)
                extra = (d,) if args.time_prior else (f_0, m_0)
                return msn_loss(model(f_p, f_a, f_t, annotated, m_p, *extra), labels)
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
