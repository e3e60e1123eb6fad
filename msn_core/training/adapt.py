"""Online adaptation of a stage-1 network to one annotated frame (the network-level step).

The annotated frame and its label are moved along a few smooth random camera paths
(``world.synthetic_clip``: shift, zoom, rotation, brightness drift), and a copy of the network is
trained for a few hundred steps on guide/target pairs from those clips with the stage-1 loss and
augmentation (settings: ``config.AdaptConfig``). ``msn_core.adaptation.adapt`` runs it for a
pipeline before a video is propagated.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch

from msn_core.config import AdaptConfig
from msn_core.training.data import PairSampler, SequenceData, compute_features
from msn_core.training.stage1 import STMTrainer, make_loss_fn
from msn_core.training.trainer import TrainConfig, train_loop
from msn_core.training.world import synthetic_clip

TRAIN_CROP = (192, 320)  # the stage-1 crop; smaller frames are cropped to their own size


def frame_clips(
    rgb: np.ndarray, small: np.ndarray | None, object_ids: list[int], proc: tuple[int, int], cfg: AdaptConfig
) -> list[SequenceData]:
    """Synthetic clips of one annotated frame at the padded processing size, each following one
    object: rgb (Hp, Wp, 3) uint8, small (Hp, Wp) object ids (mask task) or None (colour)."""
    targets = object_ids or [0]
    clips = []
    for i in range(max(cfg.clips, len(targets))):
        obj = targets[i % len(targets)]
        mask = (small == obj).astype(np.uint8) if small is not None else np.zeros(rgb.shape[:2], np.uint8)
        seq = SequenceData(name=f"annotation{obj}", frames=rgb[None], masks=mask[None], proc=proc)
        clips.append(synthetic_clip(seq, 0, cfg.clip_length, seed=cfg.seed * 1000 + i))
    return clips


def clip_features(backbone: torch.nn.Module, clips: list[SequenceData], task: str, device="cpu") -> list[dict]:
    """The backbone features of each clip's frames (grey frames for colour), computed once."""
    dtype = next(backbone.parameters()).dtype
    return [
        compute_features(backbone, c.gray if task == "color" else c.frames, device=device, dtype=dtype)
        for c in clips
    ]


def adapt_network(
    net: torch.nn.Module,
    kind: str,
    backbone: torch.nn.Module,
    clips: list[SequenceData],
    cfg: AdaptConfig,
    device="cpu",
    on_step: Callable[[int, int, float], None] | None = None,
    progress: bool = False,
    feats: list[dict] | None = None,
) -> tuple[torch.nn.Module, dict]:
    """A copy of the stage-1 network ``net`` (``kind`` tpn-mask, tpn-color or stm) fine-tuned on
    ``clips`` of one annotated frame (``frame_clips``) with the stage-1 loss, in eval mode,
    float32 on ``device``; and a record of the run (settings, seconds, loss before and after).
    ``net`` itself is left as it is. This is the step that ``msn_core.adapt`` runs for each network
    of a pipeline. ``feats``: the clips' backbone features (``clip_features``), when several
    networks are adapted on the same clips (None: computed here)."""

    t0 = time.perf_counter()
    task = "color" if kind == "tpn-color" else "mask"
    feats = feats if feats is not None else clip_features(backbone, clips, task, device)
    hp, wp = clips[0].frames.shape[1:3]
    sampler = PairSampler(
        clips,
        feats,
        task=task,
        crop=(min(TRAIN_CROP[0], hp), min(TRAIN_CROP[1], wp)),
        max_gap=4,
        single_frame_p=0.3,
        with_flow=kind != "stm",
        ref_first_p=1.0,  # the reference is the annotated frame, as in the run that follows
    )
    tuned = copy.deepcopy(net).to(device, torch.float32)
    for p in tuned.parameters():
        p.requires_grad_(True)
    model = STMTrainer(tuned) if kind == "stm" else tuned
    train_cfg = TrainConfig(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, progress=progress)
    with torch.inference_mode(False), torch.enable_grad():
        summary = train_loop(
            model,
            make_loss_fn(kind, sampler, cfg.batch, device),
            train_cfg,
            desc="adapt",
            on_step=on_step,
            local=True,  # one video's adaptation, never spread over DDP ranks
        )
    tuned.eval()
    for p in tuned.parameters():
        p.requires_grad_(False)
    losses = summary["losses"]
    n = min(20, len(losses))
    info = {
        **asdict(cfg),
        "seconds": round(time.perf_counter() - t0, 2),
        "loss_first": float(np.mean(losses[:n])),
        "loss_last": float(np.mean(losses[-n:])),
    }
    return tuned, info
