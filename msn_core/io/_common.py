"""Shared constants and small helpers of ``msn_core.io``."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from msn_core.errors import InputError

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
    """A path as error messages show it: quoted, on one line (control characters escaped)."""
    if path is None:
        return "mask"
    text = str(path)
    if any(c < " " or c == "\x7f" for c in text):
        text = text.encode("unicode_escape").decode("ascii")
    return f"'{text}'"


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def check_input_path(path: Path, what: str, expected: str, folder_ok: bool = False) -> str:
    """Stat ``path`` (following links) before anything opens it: "file" or (``folder_ok``) "dir";
    otherwise an InputError that says what it is instead: missing, a folder, a FIFO, a device
    (opening those would block or read without end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} {display(path)} does not exist; expected {expected}") from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a link loop, no permission
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{what} {display(path)} cannot be used ({reason}); expected {expected}") from None
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return "dir"
        raise InputError(f"{what} {display(path)} is a folder; expected {expected}")
    if stat.S_ISREG(st.st_mode):
        return "file"
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise InputError(f"{what} {display(path)} is {kind}, not a regular file; expected {expected}")


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same extension); on success it is
    renamed to ``path``, on any error it is removed, so no half-written file is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
