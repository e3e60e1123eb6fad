"""Stage 1: the propagation networks (TPN for masks, TPN for colour, STM-1) on random frame pairs
with the frozen backbone's features cached per sequence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from msn_core.config import BackboneConfig, STMConfig, TPNConfig, to_dict
from msn_core.errors import InputError
from msn_core.hub import load_into, load_named, save_weights
from msn_core.models.backbone import build_backbone
from msn_core.models.stm import STM
from msn_core.models.tpn import TPN
from msn_core.training.data import TRAIN_MAX_SIDE, PairSampler, SequenceData, cached_features, load_sequence
from msn_core.training.losses import color_loss, mask_loss
from msn_core.training.trainer import TrainConfig, setup_distributed, train_loop
from msn_core.training.world import world_sequences

STAGE1_KINDS = ("tpn-mask", "tpn-color", "stm")
MAX_OBJECTS = {"tpn-mask": 1, "tpn-color": 1, "stm": 3}  # objects per training pair (TPN reads one at a time)


class STMTrainer(nn.Module):
    """STM-1 over a batch of (reference, guide, target) triples in one ``forward`` (for DDP).
    Sample i carries ``n_obj[i]`` objects (channels of y); their logits are stacked."""

    def __init__(self, stm: STM):
        super().__init__()
        self.stm = stm

    def forward(
        self, feats_t, feats_a, feats_g, y_a: Tensor, y_g: Tensor, same: list[bool], n_obj: list[int]
    ) -> Tensor:
        outs = []
        for i, n in enumerate(n_obj):
            mem = [_pick(feats_a, i)] if same[i] else [_pick(feats_a, i), _pick(feats_g, i)]
            ya, yg = y_a[i, :n, None], y_g[i, :n, None]  # (O, 1, H, W)
            masks = [ya] if same[i] else [ya, yg]
            outs.append(self.stm(_pick(feats_t, i), mem, masks))  # (O, 1, H, W)
        return torch.cat(outs)  # (sum of O, 1, H, W)


def object_channels(y: Tensor, n_obj: list[int]) -> Tensor:
    """(B, K, H, W) labels with n_obj[i] objects in sample i -> (sum of n_obj, 1, H, W)."""
    return torch.cat([y[i, :n, None] for i, n in enumerate(n_obj)])


def _pick(feats: dict[int, Tensor], i: int) -> dict[int, Tensor]:
    return {s: v[i : i + 1] for s, v in feats.items()}


def weight_config(kind: str, model_cfg, backbone_cfg: BackboneConfig, training: dict | None = None) -> dict:
    """The config stored in a weights file: enough to rebuild the network (see pipeline.load)."""
    return {
        "kind": kind,
        "config": to_dict(model_cfg),
        "backbone": to_dict(backbone_cfg),
        "training": training or {},
    }


def build_stage1(kind: str, backbone_channels: dict[int, int], width: int = 32) -> nn.Module:
    if kind == "tpn-mask":
        return TPN(TPNConfig(task="mask", width=width), backbone_channels)
    if kind == "tpn-color":
        return TPN(TPNConfig(task="color", width=width), backbone_channels)
    if kind == "stm":
        return STM(STMConfig(width=width), backbone_channels)
    raise InputError(f"unknown stage-1 network {kind!r}; accepted: {', '.join(STAGE1_KINDS)}")


def load_training_sequences(
    data_dir: str | Path, names: tuple[str, ...] | list[str], max_side: int = TRAIN_MAX_SIDE, max_frames=None
) -> list[SequenceData]:
    return [load_sequence(data_dir, n, max_side, max_frames) for n in names]


def with_world(
    seqs: list[SequenceData], world: int, world_share: float
) -> tuple[list[SequenceData], list[float] | None]:
    """The real sequences plus ``world`` clips of the synthetic world made of them, and how often to
    draw each (``world_share`` of the draws go to the world; None: by length, no world)."""
    if not world:
        return seqs, None
    if not 0.0 <= world_share <= 1.0:
        raise InputError(f"world_share must be in 0..1, got {world_share}")
    real = sum(len(s) for s in seqs)
    weights = [(1.0 - world_share) * len(s) / real for s in seqs] + [world_share / world] * world
    return seqs + world_sequences(seqs, world), weights


def make_loss_fn(kind: str, sampler: PairSampler, batch: int, device=None):
    """loss_fn(model, rng) for ``train_loop`` (batches moved to ``device`` if given)."""

    def draw(rng: np.random.Generator):
        b = sampler.sample(batch, rng)
        return b if device is None else b.to(device)

    def tpn_loss(model: nn.Module, rng: np.random.Generator) -> Tensor:
        b = draw(rng)
        out = model(b.feats_t, b.y_g, b.flow)
        return mask_loss(out, b.y_t) if kind == "tpn-mask" else color_loss(out, b.y_t)

    def stm_loss(model: nn.Module, rng: np.random.Generator) -> Tensor:
        b = draw(rng)
        out = model(b.feats_t, b.feats_a, b.feats_g, b.y_a, b.y_g, b.same_as_ref, b.n_obj)
        return mask_loss(out, object_channels(b.y_t, b.n_obj))

    return stm_loss if kind == "stm" else tpn_loss


def train_stage1(
    kind: str,
    data_dir: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    cache_dir: str | Path,
    sequences: tuple[str, ...] | list[str],
    backbone_cfg: BackboneConfig | None = None,
    width: int = 32,
    crop: tuple[int, int] = (192, 320),
    max_side: int = TRAIN_MAX_SIDE,
    max_frames: int | None = None,
    ckpt_path: str | Path | None = None,
    log=None,
    ref_first_p: float = 0.5,
    max_gap: int = 12,
    init: str | Path | None = None,
    world: int = 0,
    world_share: float = 0.7,
) -> dict:
    """Train one stage-1 network and write its safetensors weights to ``out`` (rank 0).
    ``init``: weights of the same kind to start from (fine-tuning, as the paper fine-tunes its
    YouTube-VOS nets on DAVIS); the sequences they were trained on stay listed in the new file.
    ``world``: how many clips of the synthetic world (``training.world``, made of the same
    sequences' frames and masks) join the real sequences; ``world_share`` of the pairs come from them.
    Returns the loop's summary plus ``sha256``."""

    torch.manual_seed(cfg.seed)
    backbone_cfg = backbone_cfg or BackboneConfig()
    backbone = build_backbone(backbone_cfg)
    seqs, weights = with_world(load_training_sequences(data_dir, sequences, max_side, max_frames), world, world_share)
    feat_kind = "gray" if kind == "tpn-color" else "rgb"
    feats = [cached_features(cache_dir, s, backbone, feat_kind) for s in seqs]
    sampler = PairSampler(
        seqs,
        feats,
        task="color" if kind == "tpn-color" else "mask",
        crop=crop,
        with_flow=kind != "stm",
        ref_first_p=ref_first_p,
        max_gap=max_gap,
        max_objects=MAX_OBJECTS[kind],
        weights=weights,
    )
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    net = build_stage1(kind, backbone.channels, width)
    seen = list(sequences)
    if init is not None:
        sd, init_cfg = load_named(kind, init)  # checksum-verified like any weights file
        init_width = int(init_cfg.get("config", {}).get("width", 32))
        if init_width != width:
            raise InputError(
                f"--init {init}: that {kind} has width {init_width}, not {width}; give --width {init_width}"
            )
        load_into(net, sd)
        seen += [s for s in init_cfg.get("training", {}).get("sequences", []) if s not in seen]
    model = STMTrainer(net) if kind == "stm" else net
    summary = train_loop(model, make_loss_fn(kind, sampler, cfg.batch), cfg, ckpt_path, desc=kind, log=log)
    rank, _ = setup_distributed()
    if rank == 0:
        training = {
            **dataclasses.asdict(cfg),
            "sequences": seen,  # every sequence the weights have seen, the init's included
            "crop": list(crop),
            "init": Path(init).name if init is not None else None,
            "ref_first_p": ref_first_p,
            "max_gap": max_gap,
            "max_side": max_side,
            "world": world,
            "world_share": world_share if world else 0.0,
            "final_loss": float(np.mean(summary["losses"][-50:])),
        }
        summary["sha256"] = save_weights(
            net.state_dict(), out, weight_config(kind, net.cfg, backbone_cfg, training), name=kind
        )
    return summary
