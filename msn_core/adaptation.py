"""Online adaptation: fine-tune a pipeline's propagation network on the annotated frame of one
video before propagating through it (as OSVOS and Lucid Data Dreaming do).

The annotated frame and its label are moved along a few smooth random camera paths
(``training.data.synthetic_clip``: shift, zoom, rotation, brightness drift), and the network is
trained for a few hundred steps on guide/target pairs from those clips with the stage-1 loss and
augmentation. It then knows this object's look, which the ten training videos could not teach it:
on the validation sequences 300 steps lift TPN's J&F from about 60 to about 72
(results/evaluation.md), at about 90 s of one CPU core per video.

The pipeline given is left as it is (it may be shared, as in the demo): :func:`adapt` returns a
new :class:`~msn_core.pipeline.Pipeline` with an adapted copy of the network and the same
backbone, MSN and selector.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from msn_core.config import MemoryConfig
from msn_core.errors import InputError
from msn_core.pipeline import Pipeline
from msn_core.training.data import PairSampler, SequenceData, compute_features, synthetic_clip

TRAIN_CROP = (192, 320)  # the stage-1 crop; smaller frames are cropped to their own size


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of one adaptation run (the defaults are the measured ones, results/evaluation.md)."""

    steps: int = 300
    lr: float = 1e-4
    batch: int = 8
    clips: int = 4  # synthetic clips made from the annotated frame (at least one per object)
    clip_length: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "clips"):
            if getattr(self, name) < 1:
                raise InputError(f"adaptation {name} must be >= 1, got {getattr(self, name)}")
        if self.clip_length < 2:
            raise InputError(f"adaptation clip_length must be >= 2, got {self.clip_length}")
        if not self.lr > 0:
            raise InputError(f"adaptation lr must be > 0, got {self.lr}")


def annotation_clips(
    frame: np.ndarray,
    labels: np.ndarray | None,
    object_ids: list[int],
    max_side: int | None,
    cfg: AdaptConfig,
) -> list[SequenceData]:
    """Synthetic clips of the annotated frame at the processing size, each following one object
    (mask task: ``labels`` an (H, W) id map) or the colours (``labels`` None)."""
    from msn_core.propagation import VideoState

    state = VideoState(frame.shape[:2], max_side, MemoryConfig(), "cpu", torch.float32)
    rgb = state.to_model(frame)[0]  # (Hp, Wp, 3) uint8, as the loop sees it
    small = state.labels_to_model(labels) if labels is not None else None
    targets = object_ids or [0]
    clips = []
    for i in range(max(cfg.clips, len(targets))):
        obj = targets[i % len(targets)]
        mask = (small == obj).astype(np.uint8) if small is not None else np.zeros(rgb.shape[:2], np.uint8)
        seq = SequenceData(name=f"annotation{obj}", frames=rgb[None], masks=mask[None], proc=state.proc)
        clips.append(synthetic_clip(seq, 0, cfg.clip_length, seed=cfg.seed * 1000 + i))
    return clips


def adapt(
    pipe: Pipeline,
    frame: np.ndarray,
    first_mask: np.ndarray | None = None,
    cfg: AdaptConfig | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    progress: bool = False,
) -> Pipeline:
    """A copy of ``pipe`` whose propagation network is fine-tuned on ``frame`` (uint8 (H, W, 3)
    RGB, the annotated frame: frame 0 of the video) and ``first_mask`` ((H, W) object ids;
    None for colourization, whose label is the frame's own colour).

    ``on_step(step, steps, loss)`` is called after every step (for progress bars in UIs);
    ``progress`` shows a tqdm bar. The returned pipeline's ``weights_info["adapted"]`` records
    the settings, the seconds taken and the loss before and after."""
    from msn_core.propagation import _check_frame
    from msn_core.tasks import MaskTask
    from msn_core.training.stage1 import STMTrainer, make_loss_fn
    from msn_core.training.trainer import TrainConfig, train_loop

    cfg = cfg or AdaptConfig()
    _check_frame(frame, 0, None)
    task = pipe.cfg.task
    if task == "mask":
        if first_mask is None:
            raise InputError("adapting a segmentation pipeline needs the first-frame mask (an (H, W) id map)")
        first_mask = np.asarray(first_mask)
        if first_mask.shape != frame.shape[:2]:
            raise InputError(
                f"the first-frame mask is {first_mask.shape[1]}x{first_mask.shape[0]} but the frame is "
                f"{frame.shape[1]}x{frame.shape[0]}"
            )
        object_ids = MaskTask.from_labels(first_mask).object_ids
    else:
        first_mask, object_ids = None, []
    t0 = time.perf_counter()
    clips = annotation_clips(frame, first_mask, object_ids, pipe.cfg.max_side, cfg)
    kind = {"stm": "stm", "tpn": "tpn-mask" if task == "mask" else "tpn-color"}[pipe.cfg.propagator]
    feats = [_features(pipe, c, task) for c in clips]
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
    net = copy.deepcopy(pipe.model).to(pipe.device, torch.float32)
    model = STMTrainer(net) if kind == "stm" else net
    train_cfg = TrainConfig(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, seed=cfg.seed, progress=progress)
    with torch.inference_mode(False), torch.enable_grad():
        summary = train_loop(
            model,
            make_loss_fn(kind, sampler, cfg.batch, pipe.device),
            train_cfg,
            desc="adapt",
            on_step=on_step,
        )
    net.to(pipe.device, pipe.dtype).eval()
    losses = summary["losses"]
    n = min(20, len(losses))
    info = {
        **asdict(cfg),
        "seconds": round(time.perf_counter() - t0, 2),
        "loss_first": float(np.mean(losses[:n])),
        "loss_last": float(np.mean(losses[-n:])),
    }
    return Pipeline(
        pipe.cfg,
        pipe.backbone,
        net,
        pipe.msn,
        selector=pipe.selector,
        device=pipe.device,
        dtype=pipe.dtype,
        weights_info={**pipe.weights_info, "adapted": info},
    )


def _features(pipe: Pipeline, clip: SequenceData, task: str) -> dict[int, torch.Tensor]:
    """The frozen backbone's maps of a clip's frames (grey frames for colourization), on the CPU
    in float16 like the training cache."""
    images = clip.gray if task == "color" else clip.frames
    return compute_features(pipe.backbone, images, device=pipe.device, dtype=pipe.dtype)
