"""Propagators: P(x_t, x_g, y_g) -> y_t (paper Eq. 1) over cached per-frame state.

A propagator wraps a stateless network (TPN or STM-1) and knows what to keep of
a frame in the memory pool (``memorize``) and how to predict the target from
one guide entry (``predict``). It never selects guides and never loops over
frames: that is the selector's and the propagation loop's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from msn_core.config import FlowConfig
from msn_core.errors import InputError
from msn_core.flow import flow_from_gray, flow_to_tensor, prepare_gray
from msn_core.memory.pool import MemoryEntry
from msn_core.models.stm import STM
from msn_core.models.tpn import TPN


@dataclass
class FrameState:
    """The current frame at the processing resolution (padded to a multiple of 32)."""

    index: int
    image: torch.Tensor  # (1, 3, Hp, Wp) RGB in [0, 1], as the model sees it
    rgb: np.ndarray  # (Hp, Wp, 3) uint8, as the model sees it
    feats: dict[int, torch.Tensor]  # backbone features, strides 4..32
    extra: dict[str, Any] = field(default_factory=dict)  # the propagator's per-frame terms

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])  # type: ignore[return-value]


class TPNPropagator:
    """TPN: appearance branch on (x_t, y_g) + motion branch on (flow O_t->g, y_g)."""

    name = "tpn"
    reads_references = False  # a TPN reads its guide only

    def __init__(self, model: TPN, flow_cfg: FlowConfig | None = None):
        self.model = model
        self.flow_cfg = flow_cfg or FlowConfig()

    def prepare(self, frame: FrameState) -> None:
        """Per-frame terms every guide needs: the grey image optical flow runs on."""
        frame.extra["gray"] = prepare_gray(frame.rgb, self.flow_cfg.max_side)

    def memorize(self, frame: FrameState, label: torch.Tensor) -> dict[str, Any]:
        return {"label": label, "gray": frame.extra["gray"]}

    def predict(self, target: FrameState, guide: MemoryEntry, refs: list[MemoryEntry]) -> torch.Tensor:
        flow = flow_from_gray(target.extra["gray"], guide["gray"], target.size, self.flow_cfg)
        flow_t = flow_to_tensor(flow).to(target.image.device, target.image.dtype)
        return self.model(target.feats, guide["label"], flow_t)


class STMPropagator:
    """STM-1: space-time memory read from the annotated frames (the first frame, and any later
    frame the user marked) plus one guide frame."""

    name = "stm"
    reads_references = True  # the annotated frames, as memory beside the guide

    def __init__(self, model: STM):
        self.model = model

    def prepare(self, frame: FrameState) -> None:
        key, qval = self.model.encode_key(frame.feats)
        frame.extra["stm_key"], frame.extra["stm_qval"] = key, qval

    def memorize(self, frame: FrameState, label: torch.Tensor) -> dict[str, Any]:
        value = self.model.encode_value(frame.feats, label)  # (O, Cv, h, w)
        return {"label": label, "stm_key": frame.extra["stm_key"], "stm_value": value}

    def predict(self, target: FrameState, guide: MemoryEntry, refs: list[MemoryEntry]) -> torch.Tensor:
        entries = list(refs) + [guide] * all(r.index != guide.index for r in refs)
        m_keys = torch.cat([e["stm_key"] for e in entries])  # (T, Ck, h, w)
        m_values = torch.stack([e["stm_value"] for e in entries], dim=1)  # (O, T, Cv, h, w)
        readout = self.model.read(target.extra["stm_key"], m_keys, m_values)  # (O, Cv, h, w)
        return self.model.decode(readout, target.extra["stm_qval"], target.feats)


class EnsemblePropagator:
    """Several propagators read the same guide; their logits are averaged. TPN and STM-1, each
    adapted to the annotation, err in different places (results/evaluation.md, 'TPN + STM-1 together, adapted')."""

    def __init__(self, members: list):
        self.members = list(members)
        self.name = "+".join(m.name for m in self.members)
        self.reads_references = any(m.reads_references for m in self.members)

    def prepare(self, frame: FrameState) -> None:
        for m in self.members:
            m.prepare(frame)

    def memorize(self, frame: FrameState, label: torch.Tensor) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for m in self.members:
            data.update(m.memorize(frame, label))
        return data

    def predict(self, target: FrameState, guide: MemoryEntry, refs: list[MemoryEntry]) -> torch.Tensor:
        return torch.stack([m.predict(target, guide, refs) for m in self.members]).mean(0)


class FlipPropagator:
    """Test-time flip: ``inner`` reads each guide twice, as given and mirrored left-right (frames,
    features and labels all flipped), and the mirrored logits are flipped back and averaged in.
    The mirrored frame needs its own backbone pass and memory entries: about twice the work."""

    def __init__(self, inner, backbone: torch.nn.Module):
        self.inner, self.backbone = inner, backbone
        self.name = f"{inner.name}+flip"
        self.reads_references = inner.reads_references

    def prepare(self, frame: FrameState) -> None:
        self.inner.prepare(frame)
        image = frame.image.flip(-1)
        mirrored = FrameState(frame.index, image, np.ascontiguousarray(frame.rgb[:, ::-1]), self.backbone(image))
        self.inner.prepare(mirrored)
        frame.extra["mirrored"] = mirrored

    def memorize(self, frame: FrameState, label: torch.Tensor) -> dict[str, Any]:
        data = self.inner.memorize(frame, label)
        mirrored = frame.extra["mirrored"]
        data["mirrored"] = MemoryEntry(frame.index, self.inner.memorize(mirrored, label.flip(-1)))
        return data

    def predict(self, target: FrameState, guide: MemoryEntry, refs: list[MemoryEntry]) -> torch.Tensor:
        plain = self.inner.predict(target, guide, refs)
        mirrored = self.inner.predict(target.extra["mirrored"], guide["mirrored"], [r["mirrored"] for r in refs])
        return (plain + mirrored.flip(-1)) / 2


# pipeline propagator name -> the single networks it is made of (their keys in the model ModuleDict)
MEMBERS = {"tpn": ("tpn",), "stm": ("stm",), "tpn+stm": ("tpn", "stm")}


def member_networks(name: str, model: torch.nn.Module) -> list[torch.nn.Module]:
    """The single networks of a pipeline's ``model``, in ``MEMBERS[name]`` order."""
    return [model] if len(MEMBERS[name]) == 1 else [model[m] for m in MEMBERS[name]]


def join_networks(name: str, nets: list[torch.nn.Module]) -> torch.nn.Module:
    """The inverse of :func:`member_networks`: the network itself, or a ``ModuleDict`` of members."""
    return nets[0] if len(MEMBERS[name]) == 1 else torch.nn.ModuleDict(dict(zip(MEMBERS[name], nets)))


def make_propagator(name: str, model: torch.nn.Module, flow_cfg: FlowConfig, flip_backbone=None):
    """The propagator for a pipeline: ``model`` is the network, or for an ensemble a
    ``ModuleDict`` of its members' networks. With ``flip_backbone`` (the pipeline's backbone)
    it is wrapped in a :class:`FlipPropagator` (test-time flip)."""
    if name not in MEMBERS:
        raise InputError(f"unknown propagator {name!r}; accepted: {', '.join(MEMBERS)}")
    single = {"tpn": lambda net: TPNPropagator(net, flow_cfg), "stm": STMPropagator}
    props = [single[m](net) for m, net in zip(MEMBERS[name], member_networks(name, model))]
    prop = props[0] if len(props) == 1 else EnsemblePropagator(props)
    return FlipPropagator(prop, flip_backbone) if flip_backbone is not None else prop
