"""Pipelines: a backbone, a propagator, an optional MSN and a default selector,
built from one :class:`PipelineConfig`, with weights from the Hub or the package.

    pipe = msn_core.load("tpn", selector="msn")
    for r in pipe.propagate("video.mp4", "first.png"):
        ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from msn_core.annotations import annotation_task, as_annotations
from msn_core.config import (
    BackboneConfig,
    MemoryConfig,
    MSNConfig,
    PipelineConfig,
    STMConfig,
    TPNConfig,
    default_propagator,
    from_dict,
)
from msn_core.errors import InputError, WeightsError
from msn_core.hub import WEIGHT_NAMES, load_into, load_named
from msn_core.io import open_video
from msn_core.io.resize import check_max_side
from msn_core.memory.selectors import Selector, make_selector
from msn_core.models.backbone import build_backbone
from msn_core.models.selection import MSN
from msn_core.models.stm import STM
from msn_core.models.tpn import TPN
from msn_core.propagation import FrameResult, iter_propagate
from msn_core.propagators import MEMBERS, join_networks, make_propagator, member_networks
from msn_core.tasks import ColorTask

log = logging.getLogger(__name__)

# weight names per pipeline part (see msn_core.hub.WEIGHTS)
class Pipeline:
    """A ready-to-run propagation pipeline. Stateless between videos: each call to
    :meth:`propagate` builds its own per-video state."""

    def __init__(
        self,
        cfg: PipelineConfig,
        backbone: torch.nn.Module,
        model: torch.nn.Module,
        msn: MSN | None,
        selector: Selector | str = "msn",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        weights_info: dict | None = None,
    ):
        self.cfg = cfg
        self.backbone, self.model, self.msn = backbone.eval(), model.eval(), msn.eval() if msn is not None else None
        self.selector = make_selector(selector)
        self.device, self.dtype = torch.device(device), dtype
        self.weights_info = weights_info or {}
        self.propagator = make_propagator(
            cfg.propagator, model, cfg.flow, flip_backbone=self.backbone if cfg.test_flip else None
        )

    def with_parts(self, **changes) -> Pipeline:
        """A new pipeline sharing this one's parts but for ``changes`` (any of cfg, backbone,
        model, msn, selector, device, dtype, weights_info), e.g. an adapted model or another MSN."""
        parts = dict(
            cfg=self.cfg, backbone=self.backbone, model=self.model, msn=self.msn, selector=self.selector,
            device=self.device, dtype=self.dtype, weights_info=self.weights_info,
        )  # fmt: skip
        unknown = set(changes) - set(parts)
        if unknown:
            raise InputError(f"with_parts: unknown part(s) {sorted(unknown)}; accepted: {', '.join(parts)}")
        return Pipeline(**{**parts, **changes})

    @property
    def task_name(self) -> str:
        return self.cfg.task

    def propagate(
        self,
        video,
        first_mask=None,
        *,
        selector: Selector | str | None = None,
        ground_truth: Iterable[np.ndarray] | None = None,
        max_frames: int | None = None,
        memory: MemoryConfig | None = None,
        audit: bool = False,
        direction: str | None = None,
        references: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    ) -> Iterator[FrameResult]:
        """Propagate through ``video`` (a path readable by :func:`msn_core.io.open_video`,
        or an iterable of uint8 RGB frames). ``first_mask`` (segmentation) is frame 0's mask, a
        path or an (H, W) array of object ids, or a dict ``{frame index: mask}`` of annotated
        frames (an object may first appear in any of them; each annotated frame's result is its
        annotation, and it stays in the memory pool); colourization propagates frame 0's colours.
        ``direction``: "forward", "backward" or "both" (default: "forward" when frame 0 is
        annotated, else "both"; the order of the results is in :mod:`msn_core.annotations`;
        backward passes keep frames in memory, see :mod:`msn_core.passes`).
        ``audit`` (needs ``ground_truth``): also score every candidate guide against the
        ground truth, in each result's ``quality`` (see :func:`msn_core.metrics.selection_audit`).
        ``references``: (frame, object ids) pairs from outside ``video`` read as memory by every
        frame, as the annotated frames are (STM-1): e.g. the other annotated frames of a video when
        a correction propagates again over a stretch of it.
        """
        frames = open_video(video, max_frames=max_frames) if isinstance(video, (str, Path)) else video
        sel = make_selector(selector) if selector is not None else self.selector
        if self.cfg.task == "mask":
            first = as_annotations(first_mask)
            task = annotation_task(first)
        else:
            first, task = None, ColorTask()
        if max_frames is not None and not isinstance(video, (str, Path)):
            frames = frames[:max_frames] if isinstance(frames, (list, tuple)) else _take(frames, max_frames)
        return iter_propagate(
            frames,
            first,
            backbone=self.backbone,
            propagator=self.propagator,
            task=task,
            selector=sel,
            msn=self.msn,
            memory=memory or self.cfg.memory,
            max_side=self.cfg.max_side,
            ground_truth=ground_truth,
            device=self.device,
            dtype=self.dtype,
            audit=audit,
            direction=direction,
            references=references,
        )

    @property
    def reads_references(self) -> bool:
        """Whether the network reads annotated frames (and ``references``) beside its guide: STM-1 does."""
        return self.propagator.reads_references

    def to(self, device: str | torch.device) -> Pipeline:
        self.device = torch.device(device)
        for m in (self.backbone, self.model, self.msn):
            if m is not None:
                m.to(self.device)
        return self


def _take(frames: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    for i, f in enumerate(frames):
        if i >= n:
            return
        yield f


def build(cfg: PipelineConfig, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, MSN]:
    """Build untrained (seeded) networks for ``cfg``: backbone, propagation net, MSN."""
    torch.manual_seed(seed)
    backbone = build_backbone(cfg.backbone)
    if cfg.backbone.name == "vgg16" and cfg.backbone.pretrained:
        # the paper's F: the architecture is built here, its weights come from the Hub (or the package)
        load_into(backbone, load_named("vgg16")[0])
    if cfg.propagator not in MEMBERS:
        raise InputError(f"unknown propagator {cfg.propagator!r}; accepted: {', '.join(MEMBERS)}")
    if "stm" in MEMBERS[cfg.propagator] and cfg.task != "mask":
        raise InputError(f"STM-1 propagates masks only ({cfg.propagator!r} uses it); use propagator 'tpn' for colour")
    nets = {
        "tpn": lambda: TPN(dataclasses.replace(cfg.tpn, task=cfg.task), backbone.channels),
        "stm": lambda: STM(cfg.stm, backbone.channels),
    }
    model = join_networks(cfg.propagator, [nets[m]() for m in MEMBERS[cfg.propagator]])
    msn = MSN(cfg.msn, backbone.channels[cfg.msn.feature_stride])
    return backbone, model, msn


def check_device(device: str | torch.device, what: str = "device") -> torch.device:
    """``device`` as a torch device that this machine has; InputError saying what is accepted if
    it is not a device name, or names a GPU that torch cannot see."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"{what} {device!r} is not a torch device; accepted: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{what} {device}: no CUDA GPU is visible to torch; use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"{what} {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{what} {device}: Apple MPS is not available here; use cpu")
    return dev


def load(
    propagator: str | None = None,
    task: str = "mask",
    selector: Selector | str = "msn",
    *,
    weights: str | dict | None = "auto",
    device: str | torch.device = "cpu",
    config: PipelineConfig | None = None,
    seed: int = 0,
    max_side: int | None = None,
    test_flip: bool | None = None,
) -> Pipeline:
    """Build a pipeline.

    max_side: frames are processed at most at this long side (default: the config's, which is
    the network's own, ``config.DEFAULT_SIDES``: 480 for masks, 384 for TPN's colour; results/evaluation.md,
    'Round 12' and 'Round 17'). After :func:`msn_core.adapt` a larger side is much better (854 for DAVIS 480p:
    results/evaluation.md, 'At max side 854, adapted').

    test_flip: read every guide also mirrored left-right and average the two (default: the
    config's, off); slower per frame, more accurate (results/evaluation.md, 'Test-time flip').

    weights: ``"auto"`` loads the trained weights (explicit path > Hugging Face Hub >
    the files bundled in the package) and fails clearly if none exist; a dict
    ``{"model": path, "msn": path}`` names files (for ``"tpn+stm"`` ``"model"`` is a pair of
    paths, TPN's then STM-1's); ``None`` keeps the untrained seeded networks (for tests and training).

    propagator: ``"tpn"``, ``"stm"``, or ``"tpn+stm"``: both networks on each guide, their
    logits averaged (masks; the best configuration measured after :func:`msn_core.adapt`).
    None: ``config.default_propagator(task)``, STM-1 for masks and TPN for colour.
    """
    propagator = propagator or default_propagator(task)
    if (propagator, task) not in WEIGHT_NAMES:
        raise InputError(f"no pipeline for propagator={propagator!r}, task={task!r}; accepted: {list(WEIGHT_NAMES)}")
    cfg = config or PipelineConfig(propagator=propagator, task=task)  # type: ignore[arg-type]
    if config is not None and (config.propagator, config.task) != (propagator, task):
        cfg = dataclasses.replace(config, propagator=propagator, task=task)  # type: ignore[arg-type]
    if max_side is not None:
        check_max_side(max_side)
        cfg = dataclasses.replace(cfg, max_side=int(max_side))
    if test_flip is not None:
        cfg = dataclasses.replace(cfg, test_flip=bool(test_flip))
    info: dict = {}
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if isinstance(weights, str) and weights != "auto":
        raise InputError(f"weights={weights!r}: accepted are 'auto', None, or a dict {{'model': path, 'msn': path}}")
    device = check_device(device)
    if weights is None:
        backbone, model, msn = build(cfg, seed)
    else:
        model_name, msn_name = WEIGHT_NAMES[(propagator, task)]
        model_names = model_name.split("+")
        paths = weights if isinstance(weights, dict) else {}
        model_paths = _member_paths(paths.get("model"), model_names)
        models = [load_named(name, path) for name, path in zip(model_names, model_paths)]
        msn_sd, msn_meta = load_named(msn_name, paths.get("msn"))
        members = MEMBERS[cfg.propagator]
        cfg = _config_from_weights(cfg, [(meta, m) for (_, meta), m in zip(models, members)], msn_meta)
        backbone, model, msn = build(cfg, seed)
        for net, (sd, _) in zip(member_networks(cfg.propagator, model), models):
            load_into(net, sd)
        infos = [{"name": name, **meta} for name, (_, meta) in zip(model_names, models)]
        info["model"] = infos[0] if len(infos) == 1 else {"name": "+".join(model_names), "members": infos}
        load_into(msn, msn_sd)
        info["msn"] = {"name": msn_name, **msn_meta}
    return Pipeline(cfg, backbone, model, msn, selector, device=device, weights_info=info).to(device)


def _member_paths(given, names: list[str]) -> list:
    """The explicit weight path of each member network (None: resolve by name)."""
    if given is None:
        return [None] * len(names)
    given = [given] if isinstance(given, (str, Path)) else list(given)
    if len(given) != len(names):
        raise InputError(
            f"weights: 'model' must name {len(names)} file(s) ({', '.join(names)}), got {len(given)}"
        )
    return given


def _config_from_weights(cfg: PipelineConfig, model_metas: list[tuple[dict, str]], msn_meta: dict) -> PipelineConfig:
    """The pipeline config with each network's settings taken from its weight file (``model_metas``:
    (metadata, expected kind) per propagation network), so networks
    trained with other widths load. Files written by msn_core.training store
    ``{"kind", "config", "backbone", ...}``; other configs leave ``cfg`` as it is."""
    backbones = []
    for meta, expect in [*model_metas, (msn_meta, "msn")]:
        if not isinstance(meta, dict) or "kind" not in meta or "config" not in meta:
            continue
        kind = str(meta["kind"])
        if not (kind == expect or (kind.startswith("tpn") and expect == "tpn")):
            raise WeightsError(f"weights hold a {kind!r} network where a {expect!r} network is needed")
        try:
            if expect == "tpn":
                sub = from_dict(TPNConfig, meta["config"])
                cfg = dataclasses.replace(cfg, tpn=dataclasses.replace(sub, task=cfg.task))
            elif expect == "stm":
                cfg = dataclasses.replace(cfg, stm=from_dict(STMConfig, meta["config"]))
            else:
                cfg = dataclasses.replace(cfg, msn=from_dict(MSNConfig, meta["config"]))
            if "backbone" in meta:
                backbones.append(from_dict(BackboneConfig, meta["backbone"]))
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"weights for {expect!r}: their stored config cannot be read ({exc})") from exc
    if backbones:
        if any(b.name != backbones[0].name for b in backbones):
            raise WeightsError(
                f"the propagation net and MSN were trained on different backbones "
                f"({', '.join(b.name for b in backbones)}); load a matching pair"
            )
        cfg = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, name=backbones[0].name))
    return cfg
