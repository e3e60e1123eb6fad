"""Stage 2: MSN on samples mined with the frozen propagator (paper §3.3), BCE loss.

What is mined and by which net is one :class:`MiningConfig`; the frozen nets are in ``frozen``,
the mining cache and MSN's batches in ``samples``. Mined samples (targets, candidates, qualities,
labels) are cached as JSON next to the features, named by everything that changes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from msn_core.config import BackboneConfig, MSNConfig
from msn_core.errors import InputError
from msn_core.hub import save_weights, sha256_file
from msn_core.models.backbone import build_backbone
from msn_core.models.selection import MSN
from msn_core.training.data import TRAIN_MAX_SIDE, SequenceData, cached_features, sequence_view
from msn_core.training.frozen import PROPAGATORS, WARP, load_msn, mining_propagator, weights_tag
from msn_core.training.losses import msn_loss
from msn_core.training.mining import MSNPicker
from msn_core.training.samples import PairSet, first_frame_features, guide_masks, mine
from msn_core.training.stage1 import load_training_sequences, weight_config
from msn_core.training.trainer import TrainConfig, setup_distributed, train_loop
from msn_core.training.world import MINING_SEEDS, synthetic_clip, world_sequences

__all__ = ["MSN_NAMES", "PROPAGATORS", "MiningConfig", "train_msn"]

MSN_NAMES = {"tpn-mask": "msn-tpn", "tpn-color": "msn-tpn-color", "stm": "msn-stm"}


@dataclass(frozen=True)
class MiningConfig:
    """What stage 2 mines, and with which frozen net (the ``msn train msn`` mining flags).

    propagator_weights: the frozen net's weights file (None: the bundled or Hub weights); several
        files "A,B": cross-fitted mining, each sequence mined by a net not trained on it; "warp":
        the flow-warped annotation instead of a net.
    views: the plays of every sequence mined (``data.VIEWS``: forward, reverse, from the middle
        forwards / backwards), each with its own first frame as the annotated frame.
    synthetic, synthetic_length: clips per training sequence made from one of its frames moved along
        a random camera path (``world.synthetic_clip``), mined like the real ones.
    world, world_length: clips of the synthetic world (seeds from ``MINING_SEEDS`` on, which stage 1
        never draws), their marked objects as one; with one trained net (not cross-fitted) only they
        are mined, as the real clips it learnt are too good to teach MSN which guides fail.
    target_step, max_candidates: every N-th frame a target; candidate guides per target.
    corrections: the i-th clip is mined after i mod (corrections + 1) simulated corrections (its
        worst frame annotated with the truth, the run made again), its pools holding those frames
        flagged; MSN is then built with ``MSNConfig.annotated_head`` to read the flag.
    relative: the range-based labelling fallback of ``mining.label_samples``.
    guide_msn: an MSN weights file whose picks make the mined runs (``mining.MSNPicker``), so the
        candidates carry the labels a run with that MSN gives them, not a previous-frame run's.
    """

    propagator_weights: str | Path | None = None
    views: tuple[str, ...] = ("forward",)
    synthetic: int = 0
    synthetic_length: int = 40
    world: int = 0
    world_length: int = 24
    target_step: int = 2
    max_candidates: int = 24
    relative: bool = False
    corrections: int = 0
    guide_msn: str | Path | None = None

    @property
    def paths(self) -> list[str]:
        """The weights files given (empty: the bundled ones; ``["warp"]``: no network)."""
        w = self.propagator_weights
        return [p for p in str(w).split(",") if p] if w else []

    @property
    def held_out_only(self) -> bool:
        """One trained net and world clips: only the clips stage 1 never drew are mined."""
        paths = self.paths
        return self.world > 0 and len(paths) == 1 and paths[0] != WARP

    def tag(self) -> str:
        """How the samples were mined, as the cache name and the weights file record it."""
        paths = self.paths
        out = WARP if paths == [WARP] else "crossfit" if len(paths) > 1 else "trained"
        if tuple(self.views) != ("forward",):
            out += "-" + "+".join(self.views)
        if self.synthetic:
            out += f"-synth{self.synthetic}x{self.synthetic_length}"
        if self.world:
            out += f"-world{self.world}x{self.world_length}" + ("only" if self.held_out_only else "")
        if self.corrections:
            out += f"-corr{self.corrections}"
        if self.guide_msn:
            out += "-onmsn" + sha256_file(self.guide_msn)[:8]
        return out


def mined_plays(
    seqs: list[SequenceData], feats: list[dict[int, Tensor]], mining: MiningConfig, cache_dir, backbone, kind: str
) -> tuple[list[SequenceData], list[dict[int, Tensor]]]:
    """The plays to mine, with their cached features: the views of every real sequence (none with
    ``held_out_only``), the synthetic clips of each, then the world's clips. ``kind``: rgb or gray."""
    viewed = [] if mining.held_out_only else [sequence_view(s, f, v) for v in mining.views for s, f in zip(seqs, feats)]
    n = mining.synthetic
    for k in range(n):  # frames spread over each sequence, path k seeded by k (the mined samples
        for s in seqs:  # are cached by name, so the clips must not depend on the run's seed)
            clip = synthetic_clip(s, (len(s) - 1) * k // n, mining.synthetic_length, k)
            viewed.append((clip, cached_features(cache_dir, clip, backbone, kind)))
    for clip in world_sequences(seqs, mining.world, mining.world_length, first=MINING_SEEDS, union=True):
        viewed.append((clip, cached_features(cache_dir, clip, backbone, kind)))
    return [s for s, _ in viewed], [f for _, f in viewed]


def mined_samples(
    propagator_kind: str,
    data_dir: str | Path,
    cache_dir: str | Path,
    sequences: tuple[str, ...] | list[str],
    mining: MiningConfig,
    msn_cfg: MSNConfig,
    backbone,
    max_side: int = TRAIN_MAX_SIDE,
    max_frames: int | None = None,
    log=None,
) -> tuple[list[SequenceData], PairSet]:
    """The mined plays and MSN's samples of them (mined with the frozen ``propagator_kind`` net as
    ``mining`` says, or read back from ``cache_dir``)."""
    seqs = load_training_sequences(data_dir, sequences, max_side, max_frames)
    kind = "gray" if propagator_kind == "tpn-color" else "rgb"
    feats = [cached_features(cache_dir, s, backbone, kind) for s in seqs]
    seqs, feats = mined_plays(seqs, feats, mining, cache_dir, backbone, kind)
    rank, _ = setup_distributed()
    tag = "-".join(sorted(sequences)) if len(sequences) < 4 else f"{len(sequences)}seq"
    if rank != 0:  # rank 0 mines and writes the cache; the others wait and read it
        torch.distributed.barrier()
    propagator = mining_propagator(propagator_kind, backbone.channels, mining.paths, [s.name for s in seqs])
    f_a = [first_frame_features(backbone, s, propagator_kind) for s in seqs]
    cache = Path(cache_dir) / (
        f"mined_{propagator_kind}_{mining.tag()}_{tag}_{max_frames or 'all'}_s{mining.target_step}"
        f"{weights_tag(propagator_kind, mining.paths)}.json"
    )
    pickers = None
    if mining.guide_msn:
        guide = load_msn(mining.guide_msn, backbone.channels)
        pickers = [MSNPicker(guide, f[32], a, mining.max_candidates) for f, a in zip(feats, f_a)]
    masks_path = cache.with_name(cache.stem.replace("mined_", "guidemasks_", 1) + ".safetensors")
    targets = mine(
        propagator_kind, seqs, feats, propagator, cache, mining.target_step, mining.max_candidates, log,
        mining.corrections, pickers, masks_path if msn_cfg.label_aware else None, msn_cfg.feature_stride,
    )
    if rank == 0 and torch.distributed.is_initialized():
        torch.distributed.barrier()
    masks = None
    if msn_cfg.label_aware:  # the candidates' own labels, kept by the mining (or its runs made again)
        masks = guide_masks(
            seqs, feats, propagator, masks_path, mining.corrections, msn_cfg.feature_stride, log, pickers
        )
    pairs = PairSet(targets, [f[32] for f in feats], f_a, relative=mining.relative, masks=masks)
    return seqs, pairs


def train_msn(
    propagator_kind: str,
    data_dir: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    cache_dir: str | Path,
    sequences: tuple[str, ...] | list[str],
    mining: MiningConfig | None = None,
    msn_cfg: MSNConfig | None = None,
    backbone_cfg: BackboneConfig | None = None,
    max_side: int = TRAIN_MAX_SIDE,
    max_frames: int | None = None,
    ckpt_path: str | Path | None = None,
    log=None,
) -> dict:
    """Mine the training ``sequences`` (read at ``max_side``, at most ``max_frames`` each) with the
    frozen ``propagator_kind`` net as ``mining`` says, then train MSN with BCE on balanced
    positives and negatives; writes ``out`` on rank 0. Returns the training summary."""

    mining = mining or MiningConfig()
    backbone_cfg = backbone_cfg or BackboneConfig()
    msn_cfg = msn_cfg or MSNConfig(annotated_head=mining.corrections > 0)
    if msn_cfg.label_aware and propagator_kind == "tpn-color":  # before any mining
        raise InputError("a label-aware MSN reads object masks; colour propagation has none")
    backbone = build_backbone(backbone_cfg)
    seqs, pairs = mined_samples(
        propagator_kind, data_dir, cache_dir, sequences, mining, msn_cfg, backbone, max_side, max_frames, log
    )
    rank, _ = setup_distributed()
    mined_by = mining.tag()
    torch.manual_seed(cfg.seed)
    msn = MSN(msn_cfg, backbone.channels[msn_cfg.feature_stride])

    def loss_fn(model: nn.Module, rng: np.random.Generator) -> Tensor:
        f_p, f_a_b, f_t, annotated, labels, m_p = pairs.sample(cfg.batch, rng)
        return msn_loss(model(f_p, f_a_b, f_t, annotated, m_p), labels)

    summary = train_loop(msn, loss_fn, cfg, ckpt_path, desc=MSN_NAMES[propagator_kind], log=log)
    summary["positives"], summary["negatives"] = len(pairs.pos), len(pairs.neg)
    if log is not None:
        log(f"{len(pairs.pos)} positives / {len(pairs.neg)} negatives from {len(seqs)} sequence views")
    if rank == 0:
        training = {
            **dataclasses.asdict(cfg),
            "propagator": propagator_kind,
            "mined_with": mined_by,
            "mining_weights": [Path(p).name for p in mining.paths],
            "relative_fallback": mining.relative,
            # the candidates' labels: the frozen net's own run, its guides picked by the previous frame or an MSN
            "guide_run": Path(mining.guide_msn).name if mining.guide_msn else "previous frame",
            "views": list(mining.views),
            "synthetic_clips": mining.synthetic,
            "synthetic_length": mining.synthetic_length,
            "world_clips": mining.world,
            "world_length": mining.world_length,
            "loss": "bce",
            "sequences": list(sequences),
            "max_side": max_side,
            "target_step": mining.target_step,
            "max_candidates": mining.max_candidates,
            "corrections": mining.corrections,
            "positives": len(pairs.pos),
            "negatives": len(pairs.neg),
            "final_loss": float(np.mean(summary["losses"][-50:])),
        }
        name = MSN_NAMES[propagator_kind]
        summary["sha256"] = save_weights(
            msn.state_dict(), out, weight_config("msn", msn_cfg, backbone_cfg, training), name=name
        )
    return summary
