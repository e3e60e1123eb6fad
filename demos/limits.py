"""Caps a public demo needs: frames, resolution, upload size, queue and temp files.

Defaults suit the machine the networks run on (:func:`device`: a GPU or a CPU); each can be set
from the environment (``MSN_DEMO_MAX_FRAMES=60`` ...) or by passing a :class:`Limits` to ``build_demo``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from msn_core.config import ADAPTED_MAX_SIDE, default_max_side
from msn_core.errors import InputError
from msn_core.limits import Limits as CoreLimits

ENV_PREFIX = "MSN_DEMO_"

# frames per run where the networks run: (the cap, the frame slider's starting value). A GPU takes a
# whole 10 s phone clip at 30 fps; on a CPU a run is much slower (BENCHMARKS.md), so the slider starts
# low and the Segment tab shows the expected wait once the first frames are timed.
FRAMES = {"cuda": (300, 300), "cpu": (120, 30)}


def device() -> str:
    """``cuda`` when a GPU is visible (a GPU Space), else ``cpu``; ``$MSN_DEVICE`` overrides. The one
    place the demo decides where the networks run (and so its frame caps)."""
    import torch

    return os.environ.get("MSN_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def frame_caps(where: str) -> tuple[int, int]:
    """(max_frames, default_frames) on ``where`` ("cuda", "cuda:1", "cpu", ...)."""
    return FRAMES["cuda" if where.startswith("cuda") else "cpu"]


@dataclass(frozen=True)
class Limits:
    """What one request may use.

    max_frames: frames read from a video (later frames are dropped, with a notice);
    default_frames: the frame slider's starting value (both None: ``FRAMES`` for :func:`device`);
    max_side: frames are downscaled to this long side (with a notice); the annotation, the videos
    and the masks are at that size;
    process_side: the long side the networks run at (frames larger than it are processed
    downscaled, and the masks brought back); None: each network's own (``config.DEFAULT_SIDES``);
    adapted_side: the same for a run adapted to its annotation first, where a larger side pays
    (results/evaluation.md, 'At max side 854, adapted');
    max_upload_mb: the largest upload accepted;
    concurrency: propagation runs at once (all tabs share it); queue_size: requests waiting;
    session_ttl_s: a session's files and state are removed after this long without use;
    max_adapt_steps: the most online-adaptation steps a request may ask for;
    default_adapt_steps: the adaptation slider's starting value (None: 300 where a GPU runs the
    networks, where it is quick, and 0 (off) on a CPU, where it is slow: results/evaluation.md).
    """

    max_frames: int | None = None
    default_frames: int | None = None
    max_side: int = 854  # DAVIS 480p at full size
    process_side: int | None = None
    adapted_side: int = ADAPTED_MAX_SIDE
    max_upload_mb: int = 50
    concurrency: int = 1
    queue_size: int = 16
    session_ttl_s: int = 3600
    max_adapt_steps: int = 500
    default_adapt_steps: int | None = None

    def __post_init__(self) -> None:
        if self.max_frames is None or self.default_frames is None:
            cap, start = frame_caps(device())
            if self.max_frames is None:
                object.__setattr__(self, "max_frames", cap)
            if self.default_frames is None:
                object.__setattr__(self, "default_frames", start)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "process_side" and value is None:
                continue
            if f.name == "default_adapt_steps":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise InputError(f"demo limit default_adapt_steps must be 0 (off) or more, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"demo limit {f.name} must be a positive integer, got {value!r}")
        for name in ("max_side", "process_side", "adapted_side"):
            if getattr(self, name) is not None and getattr(self, name) < 32:
                raise InputError(f"demo limit {name} must be at least 32 pixels, got {getattr(self, name)}")
        if self.default_frames > self.max_frames:
            object.__setattr__(self, "default_frames", self.max_frames)
        if self.default_adapt_steps is not None and self.default_adapt_steps > self.max_adapt_steps:
            object.__setattr__(self, "default_adapt_steps", self.max_adapt_steps)

    def adapt_steps_default(self, device: str) -> int:
        """The adaptation slider's starting value on ``device`` ("cuda" or "cpu")."""
        if self.default_adapt_steps is not None:
            return self.default_adapt_steps
        return min(300, self.max_adapt_steps) if device.startswith("cuda") else 0

    def network_side(self, adapt_steps: int, propagator: str, task: str = "mask") -> int:
        """The long side ``propagator`` runs ``task`` at: ``adapted_side`` after an adaptation, else
        ``process_side`` (None: the network's own)."""
        if adapt_steps > 0:
            return self.adapted_side
        return self.process_side or default_max_side(propagator, task)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def for_device(cls, where: str, **values) -> Limits:
        """The defaults for ``where`` ("cuda" or "cpu") whatever this machine has; ``values`` override."""
        cap, start = frame_caps(where)
        return cls(**{"max_frames": cap, "default_frames": start, **values})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """Defaults overridden by ``MSN_DEMO_<FIELD>`` variables (e.g. ``MSN_DEMO_MAX_SIDE=360``).

        The engine's caps (:mod:`msn_core.limits`) hold too: the upload cap defaults to
        ``MSN_MAX_UPLOAD_MB`` and ``max_frames`` is never above ``MSN_MAX_FRAMES``."""
        env = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env:
                try:
                    values[f.name] = int(env[key])
                except ValueError:
                    raise InputError(f"{key}={env[key]!r} is not an integer") from None
        core = CoreLimits.from_env(env)
        values.setdefault("max_upload_mb", core.max_upload_mb)
        if core.max_frames is not None:
            values["max_frames"] = min(values.get("max_frames") or frame_caps(device())[0], core.max_frames)
        return cls(**values)
