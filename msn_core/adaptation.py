"""Online adaptation: fine-tune a pipeline's propagation network on the annotated frame of one
video before propagating through it (as OSVOS and Lucid Data Dreaming do).

The annotated frame and its label are moved along a few smooth random camera paths
(``training.world.synthetic_clip``: shift, zoom, rotation, brightness drift), and the network is
trained for a few hundred steps on guide/target pairs from those clips with the stage-1 loss and
augmentation. It then knows this object's look, which the ten training videos could not teach it.
What it gains on the validation sequences, and the seconds it costs per video on a CPU, are in
results/evaluation.md ('With online adaptation').

The pipeline given is left as it is (it may be shared, as in the demo): :func:`adapt` returns a
new :class:`~msn_core.pipeline.Pipeline` with an adapted copy of the network and the same
backbone, MSN and selector.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from msn_core.config import AdaptConfig
from msn_core.errors import InputError
from msn_core.geometry import FrameGeometry
from msn_core.pipeline import Pipeline
from msn_core.propagation import check_frame
from msn_core.propagators import MEMBERS, join_networks, member_networks
from msn_core.tasks import MaskTask
from msn_core.training.adapt import adapt_network, clip_features, frame_clips
from msn_core.training.data import SequenceData

__all__ = ["AdaptConfig", "adapt", "annotation_clips"]


def annotation_clips(
    frame: np.ndarray,
    labels: np.ndarray | None,
    object_ids: list[int],
    max_side: int | None,
    cfg: AdaptConfig,
    mirrored: bool = False,
) -> list[SequenceData]:
    """Synthetic clips of the annotated frame at the processing size, each following one object
    (mask task: ``labels`` an (H, W) id map) or the colours (``labels`` None). ``mirrored``: as
    many again of the frame mirrored left-right, as a test-time flip shows it to the network."""
    geometry = FrameGeometry(frame.shape[:2], max_side)
    rgb = geometry.fit(frame)  # (Hp, Wp, 3) uint8, as the loop sees it
    small = geometry.fit_labels(labels) if labels is not None else None
    clips = frame_clips(rgb, small, object_ids, geometry.proc, cfg)
    if mirrored:
        flip = lambda a: np.ascontiguousarray(a[:, ::-1])  # noqa: E731
        more = frame_clips(flip(rgb), flip(small) if small is not None else None, object_ids, geometry.proc, cfg)
        clips += [dataclasses.replace(c, name=c.name + "-mirrored") for c in more]
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
    the settings, the seconds taken and the loss before and after. A pipeline with test-time flip
    (``cfg.test_flip``) is adapted on the frame mirrored too, since it reads every frame mirrored."""
    cfg = cfg or AdaptConfig()
    check_frame(frame, 0, None)
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
    clips = annotation_clips(frame, first_mask, object_ids, pipe.cfg.max_side, cfg, mirrored=pipe.cfg.test_flip)
    members = MEMBERS[pipe.cfg.propagator]
    nets = member_networks(pipe.cfg.propagator, pipe.model)
    feats = clip_features(pipe.backbone, clips, task, pipe.device)  # once, for every network adapted
    tuned, infos = [], []
    for i, (name, net) in enumerate(zip(members, nets)):  # an ensemble's networks one after the other
        kind = {"stm": "stm", "tpn": "tpn-mask" if task == "mask" else "tpn-color"}[name]
        step_cb = None if on_step is None else _offset_steps(on_step, i * cfg.steps, len(nets) * cfg.steps)
        net, info = adapt_network(net, kind, pipe.backbone, clips, cfg, pipe.device, step_cb, progress, feats)
        tuned.append(net.to(pipe.device, pipe.dtype))
        infos.append(info)
    model, info = join_networks(pipe.cfg.propagator, tuned), infos[0]
    if len(tuned) > 1:
        info = {
            **infos[0],
            "loss_first": float(np.mean([i["loss_first"] for i in infos])),
            "loss_last": float(np.mean([i["loss_last"] for i in infos])),
            "members": dict(zip(members, infos)),
        }
    info["seconds"] = round(time.perf_counter() - t0, 2)
    return pipe.with_parts(model=model, weights_info={**pipe.weights_info, "adapted": info})


def _offset_steps(on_step: Callable[[int, int, float], None], offset: int, total: int):
    """``on_step`` counting over all of an ensemble's adaptation steps."""
    return lambda step, steps, loss: on_step(offset + step, total, loss)
