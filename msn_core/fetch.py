"""A resumable HTTP download into ``<dest>.part``, renamed to ``dest`` only when whole and
checked: HTTP Range requests continue a cut-off transfer (within a run, a few automatic retries;
across runs, from the part file), a server that cannot resume starts again, and the sha256 is
compared with the expected one when there is one. Standard library only; tqdm for the bar."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from msn_core.errors import DownloadError, InputError

RETRIES = 3  # automatic resumes after a cut-off connection, within one run
RETRY_WAIT_S = 2.0  # doubled after each failed attempt
TIMEOUT_S = 60.0  # per socket operation
CHUNK = 1 << 20

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Fetched:
    """A whole, checked download."""

    path: Path
    size: int
    sha256: str
    md5: str
    checked: bool  # compared with an expected sha256 (and equal to it)
    resumed_from: int  # bytes already on disk when this run started (0: a fresh download)


class _CutOff(Exception):
    """A transfer that stopped before the end; the part file keeps what arrived."""


def check_sha256(value: str | None, what: str = "--sha256") -> str | None:
    """``value`` as 64 lower-case hex digits (None stays None); anything else is an InputError."""
    if value is None:
        return None
    digest = value.strip().lower()
    if not _HEX64.match(digest):
        raise InputError(f"{what} {value!r}: not a sha256 digest; give 64 hexadecimal digits")
    return digest


def file_digests(path: str | Path) -> tuple[str, str]:
    """(sha256, md5) of a file, read once in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def fetch(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    progress: bool = True,
    retries: int | None = None,
    log: Callable[[str], None] = print,
) -> Fetched:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed when it exists), check its
    sha256 when one is given, and rename it to ``dest`` only then. An existing ``dest`` is taken
    as an earlier complete download and only checked. A mismatch deletes the file and raises
    :class:`DownloadError`; so does a transfer still cut off after ``retries`` resumes, keeping
    the part file for the next run (``retries`` default: :data:`RETRIES`)."""
    dest = Path(dest)
    retries = RETRIES if retries is None else retries
    expected = check_sha256(sha256, "expected sha256")
    part = dest.with_name(dest.name + ".part")
    resumed_from = 0
    if dest.is_file():
        log(f"found {dest} from an earlier run; checking it")
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        resumed_from = part.stat().st_size if part.is_file() else 0
        where = f" (resuming after {human_size(resumed_from)})" if resumed_from else ""
        log(f"downloading {url} to {part}{where}")
        attempt = 0
        while True:
            try:
                _fetch_once(url, part, progress)
                break
            except _CutOff as exc:
                have = part.stat().st_size if part.is_file() else 0
                if attempt >= retries:
                    raise DownloadError(
                        f"download of {url} stopped at {human_size(have)}: {exc}; the {human_size(have)} so far are "
                        f"kept in {part}: run the same command again to resume"
                    ) from None
                attempt += 1
                wait = RETRY_WAIT_S * 2 ** (attempt - 1)
                log(
                    f"{exc}; resuming after {human_size(have)} in {wait:g} s (attempt {attempt + 1} of {retries + 1})"
                )
                time.sleep(wait)
    path = dest if dest.is_file() else part
    digest, md5 = file_digests(path)
    if expected is not None and digest != expected:
        path.unlink()
        raise DownloadError(
            f"{dest.name}: sha256 {digest} does not match the expected {expected}: the download is damaged "
            f"or the file changed upstream; deleted it (run again to download afresh)"
        )
    size = path.stat().st_size
    if path is part:
        os.replace(part, dest)  # atomic: the final name only ever holds a whole, checked file
    return Fetched(dest, size, digest, md5, expected is not None, resumed_from)


def _fetch_once(url: str, part: Path, progress: bool) -> None:
    """One request: append the missing bytes to ``part`` (all of them when the server cannot
    resume). Returns when ``part`` holds the whole file; raises _CutOff when it stops short."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "msn_core", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after byte `have`: complete, or longer than the file
            total = _content_range_total(exc.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink()
            raise _CutOff(
                f"the partial download ({human_size(have)}) does not fit the file on the server; starting again"
            ) from None
        if exc.code in (408, 429) or exc.code >= 500:
            raise _CutOff(f"the server answered HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _CutOff(f"cannot reach {urlsplit(url).netloc} ({reason})") from None
    with resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                raise _CutOff(f"the server resumed at byte {start}, not at {have}")
            mode = "ab"
        elif resp.status == 200:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            have, mode = 0, "wb"  # a fresh start (the server ignored the Range header, or none was sent)
        else:
            raise DownloadError(f"{url}: unexpected HTTP {resp.status} {resp.reason}")
        if total is not None:
            free = shutil.disk_usage(part.parent).free
            if total - have > free:
                raise DownloadError(
                    f"{part.parent} has {human_size(free)} free, the download needs {human_size(total - have)} more; "
                    "free some space or choose another --out"
                )
        from tqdm import tqdm

        with (
            open(part, mode) as fh,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), disable=not progress, file=sys.stderr,
            ) as bar,
        ):  # fmt: skip
            try:
                while block := resp.read(CHUNK):
                    fh.write(block)
                    have += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, incomplete read
                raise _CutOff(f"the connection broke ({type(exc).__name__}: {exc})") from None
            finally:
                fh.flush()
                os.fsync(fh.fileno())
    if total is not None and have < total:  # http.client returns short reads without raising
        raise _CutOff(f"the connection closed after {human_size(have)} of {human_size(total)}")


def _content_range(value: str | None) -> tuple[int, int | None]:
    """(first byte, total or None) of a ``Content-Range: bytes a-b/n`` header."""
    m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not m:
        raise _CutOff(f"the server answered a Range request with Content-Range {value!r}")
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# ------------------------------------------------------------------------------------ unpacking
