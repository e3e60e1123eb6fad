"""Caps on what one run may read, so a file cannot exhaust memory, disk or time.

=====================  =====================  ==============================================
field                  default                checked where
=====================  =====================  ==============================================
``max_frames``         None (no cap)          ``open_video`` and the propagation loop
``max_pixels``         4096*4096 (16.8 MP)    every frame and mask, from the file header
``max_objects``        20                     the first-frame mask (``MaskTask``)
``max_zip_members``    10 000                 entries of a .zip of frames
``max_zip_bytes``      2 GiB                  uncompressed size of a zip's frames
``max_upload_mb``      50                     uploads to a UI (the demo, the Space)
=====================  =====================  ==============================================

Each default can be overridden by an environment variable ``MSN_<FIELD>`` (upper
case), e.g. ``MSN_MAX_FRAMES=300`` or ``MSN_MAX_PIXELS=8294400``; ``MSN_MAX_FRAMES=none``
means no cap. The variables are read on every call (``Limits.from_env()``), so a
server can change them without restarting; a bad value is an :class:`InputError`.
Functions taking ``limits=None`` use the environment's limits.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from msn_core.errors import InputError

ENV_PREFIX = "MSN_"
_NONE = ("", "none", "unlimited", "0")  # spellings of "no cap" (max_frames only)


@dataclass(frozen=True)
class Limits:
    """What one video, mask or upload may use (see the module docstring for defaults)."""

    max_frames: int | None = None
    max_pixels: int = 4096 * 4096
    max_objects: int = 20
    max_zip_members: int = 10_000
    max_zip_bytes: int = 2 * 1024**3
    max_upload_mb: int = 50

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "max_frames":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                accepted = "a positive integer or None" if f.name == "max_frames" else "a positive integer"
                raise InputError(f"limit {f.name} must be {accepted}, got {value!r}")
        if self.max_objects > 254:
            raise InputError(f"limit max_objects must be at most 254 (ids 1..254), got {self.max_objects}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, overridden by ``MSN_<FIELD>`` variables (e.g. ``MSN_MAX_OBJECTS=5``)."""
        env = os.environ if environ is None else environ
        values: dict[str, int | None] = {}
        for f in dataclasses.fields(cls):
            key = env_name(f.name)
            if key not in env:
                continue
            raw = env[key].strip().replace("_", "")
            if f.name == "max_frames" and raw.lower() in _NONE:
                values[f.name] = None
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise InputError(f"{key}={env[key]!r} is not an integer; set it to a positive integer") from None
            if values[f.name] < 1:  # type: ignore[operator]
                raise InputError(f"{key}={env[key]!r}: the limit must be a positive integer")
        return cls(**values)

    # ------------------------------------------------------------------ checks

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def check_pixels(self, size: tuple[int, int], what: str) -> None:
        """Raise unless an (H, W) image fits ``max_pixels``."""
        h, w = int(size[0]), int(size[1])
        if h * w > self.max_pixels:
            raise InputError(
                f"{what} is {w}x{h} ({h * w / 1e6:.1f} megapixels); at most {self.max_pixels / 1e6:.1f} "
                f"megapixels per frame are accepted ({env_name('max_pixels')}); downscale it first"
            )

    def check_frame_request(self, max_frames: int | None) -> None:
        """Raise if a caller asks for more frames than ``max_frames`` allows."""
        if self.max_frames is not None and max_frames is not None and max_frames > self.max_frames:
            raise InputError(
                f"max_frames={max_frames} is more than this installation accepts: at most "
                f"{self.max_frames} frames per video ({env_name('max_frames')})"
            )

    def check_frame_count(self, count: int, what: str, exact: bool = True) -> None:
        """Raise if a video of ``count`` frames (read without ``max_frames``) is over the cap;
        ``exact=False`` when ``count`` is only how far reading got."""
        if self.max_frames is not None and count > self.max_frames:
            n = count if exact else f"more than {self.max_frames}"
            raise InputError(
                f"{what} has {n} frames; at most {self.max_frames} are accepted "
                f"({env_name('max_frames')}); pass max_frames (--max-frames) to use the first {self.max_frames}"
            )

    def check_objects(self, count: int, what: str = "the first-frame mask") -> None:
        if count > self.max_objects:
            raise InputError(
                f"{what} has {count} objects; at most {self.max_objects} are supported "
                f"({env_name('max_objects')}); merge or drop objects"
            )


def env_name(field_name: str) -> str:
    """``max_pixels`` -> ``MSN_MAX_PIXELS``."""
    return ENV_PREFIX + field_name.upper()


def resolve(limits: Limits | None) -> Limits:
    """``limits`` itself, or the environment's limits when None."""
    return Limits.from_env() if limits is None else limits


__all__ = ["ENV_PREFIX", "Limits", "env_name", "resolve"]
