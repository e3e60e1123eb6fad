"""Shared constants and small helpers of ``msn_core.io``."""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
VIDEO_EXTS = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".gif")
ZIP_EXTS = (".zip",)
MAX_ZIP_MEMBERS = 100_000

#: DAVIS's "void" label (object boundaries / ignored pixels in palette masks).
VOID_LABEL = 255

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key ordering ``frame2`` before ``frame10`` (case-insensitive)."""
    return [int(part) if part.isdecimal() else part.lower() for part in _DIGITS.split(name)]  # not isdigit: "²"


def natural_sorted(paths, key=lambda p: p.name) -> list:
    return sorted(paths, key=lambda p: natural_key(key(p)))


def accepted_inputs() -> str:
    """One-line description of what ``open_video`` accepts, for error messages."""
    return (
        f"a video file ({', '.join(VIDEO_EXTS)}), a folder of frames ({', '.join(IMAGE_EXTS)}), "
        "a DAVIS sequence folder, or a .zip of frames"
    )


def shape_str(shape) -> str:
    """``(H, W)`` -> ``'WxH'`` (the way people say image sizes)."""
    return f"{int(shape[1])}x{int(shape[0])}"


def display(path: str | Path | None) -> str:
    return "mask" if path is None else f"'{path}'"
