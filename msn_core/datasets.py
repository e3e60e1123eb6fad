"""Public data the project trains and evaluates on, fetched on request (never at import).

:func:`download_davis2016` fetches the official DAVIS-2016 archive, checks it and unpacks its 480p
frames and annotations into the DAVIS layout :mod:`msn_core.io.davis` reads::

    <out>/JPEGImages/480p/<sequence>/00000.jpg ...
    <out>/Annotations/480p/<sequence>/00000.png ...
    <out>/ImageSets/480p/train.txt, val.txt, ...

How it goes:

- the bytes go to ``<out>/DAVIS-data.zip.part``; a run that is cut off keeps that file, and the
  next run (or the next of a few automatic retries) asks the server only for the missing bytes
  (an HTTP Range request), starting again only when the server cannot resume;
- the whole file is hashed (sha256, and md5 to compare with the digests the DAVIS authors'
  scripts published), checked against the expected sha256 when there is one, and only then
  renamed to ``<out>/DAVIS-data.zip`` in one step: that name only ever holds a whole, checked
  archive, and a damaged one is deleted, never unpacked;
- unpacking reads only members whose paths stay inside the target (no absolute paths, no '..',
  no links), each bounded by the size its header declares and checked against its CRC
  (:func:`msn_core.io.zipmember.read_member`), into a hidden folder in ``<out>`` whose
  ``JPEGImages/480p``, ``Annotations/480p`` and ``ImageSets/480p`` are renamed into place at the
  end; the archive's other files (the 1080p frames) are left out, as nothing here reads them.

Standard library only (urllib, zipfile, hashlib); tqdm for the progress bar.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msn_core.errors import DownloadError, InputError, MSNError
from msn_core.fetch import check_sha256, fetch, human_size
from msn_core.io.davis import RESOLUTION, davis_annotations, list_davis_sequences
from msn_core.io.zipmember import read_member, safe_member

DAVIS2016_URL = "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip"
DAVIS2016_ARCHIVE = "DAVIS-data.zip"

# sha256 of DAVIS-data.zip. NOT PINNED YET: this code was written on machines without internet
# access, so nobody here has seen the archive to compute it. Fill it in from the first real download
# (`msn data davis2016` prints the digest) once that copy is known to be good. While it is None a
# download is checked only when `--sha256` is given, and by the zip's own CRCs while it is unpacked.
DAVIS2016_SHA256: str | None = None

# MD5s that download scripts of the DAVIS authors published for this URL. For information only: they
# differ (the archive was re-published at least once), and MD5 does not stop deliberate tampering. A
# download that matches one says so; one that matches none is not refused for it.
DAVIS2016_PUBLISHED_MD5: dict[str, str] = {
    "0cb3cf9c5617209fa3cc4794e52a2ffa": "davisvideochallenge/davis, data/get_davis.sh",
    "464ebb594dcbc34e012487f4cd0f8213": "a version of fperazzi/davis-2017, data/get_davis.sh",
}

# what is unpacked: the folders msn_core.io.davis reads, and the official split lists
DAVIS_LAYOUT = ("JPEGImages/480p", "Annotations/480p", "ImageSets/480p")

MAX_MEMBERS = 200_000  # the archive holds some 14 000 files
MAX_MEMBER_BYTES = 64 << 20  # a 480p frame or mask is far smaller



@dataclass(frozen=True)
class DavisFolder:
    """What a DAVIS-layout folder holds."""

    root: Path
    sequences: int
    frames: int
    annotations: int


def unpack_davis(archive: str | Path, out: str | Path, log: Callable[[str], None] = print) -> DavisFolder:
    """Unpack the 480p frames, annotations and split lists of a DAVIS zip into ``out`` (see the
    module docstring). The DAVIS folders may sit at the zip's root or under one top folder (the
    official archive has ``DAVIS/``). Refuses, before writing anything, a zip with an unsafe member
    or without ``JPEGImages/480p`` and ``Annotations/480p``."""

    archive, out = Path(archive), Path(out)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive}: not a readable zip ({exc}); delete it and run again") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise InputError(
                f"{archive.name} holds {len(infos)} members; at most {MAX_MEMBERS}: not the DAVIS archive"
            )
        for info in infos:
            if not safe_member(info.filename) or stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(
                    f"{archive.name}: unsafe member {info.filename!r} (an absolute path, '..' or a link); "
                    "refused, nothing unpacked"
                )
        prefix = _layout_prefix(archive.name, infos)
        wanted = tuple(f"{prefix}{sub}/" for sub in DAVIS_LAYOUT)
        picked = [i for i in infos if not i.is_dir() and i.filename.startswith(wanted)]
        for info in picked:
            if info.file_size > MAX_MEMBER_BYTES:
                raise InputError(
                    f"{archive.name}: {info.filename} declares {human_size(info.file_size)}; a DAVIS frame or mask "
                    f"is under {human_size(MAX_MEMBER_BYTES)}: refused, nothing unpacked"
                )
        need, free = sum(i.file_size for i in picked), shutil.disk_usage(out).free
        if need > free:
            raise DownloadError(f"unpacking needs {human_size(need)} in {out}, which has {human_size(free)} free")
        log(f"unpacking {len(picked)} files ({', '.join(DAVIS_LAYOUT)}) into {out}")
        stage = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=out)).resolve()
        try:
            for info in picked:
                target = (stage / info.filename[len(prefix) :]).resolve()
                if not target.is_relative_to(stage):  # belt and braces: safe_member already said so
                    raise InputError(f"{archive.name}: member {info.filename!r} leaves the target; refused")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(read_member(zf, info, f"{archive.name}: {info.filename}"))
            for sub in DAVIS_LAYOUT:
                if (stage / sub).is_dir():
                    (out / sub).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(stage / sub, out / sub)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return describe_davis(out)


def _layout_prefix(name: str, infos: list[zipfile.ZipInfo]) -> str:
    """The folder holding JPEGImages/480p in the zip ('' at its root, or 'DAVIS/')."""
    prefixes = set()
    for info in infos:
        i = info.filename.find("JPEGImages/480p/")
        if i >= 0 and (i == 0 or info.filename[i - 1] == "/"):
            prefixes.add(info.filename[:i])
    if len(prefixes) != 1:
        tops = sorted({i.filename.split("/")[0] for i in infos})[:8]
        what = "no JPEGImages/480p/" if not prefixes else f"JPEGImages/480p/ in {len(prefixes)} places"
        raise InputError(
            f"{name} holds {what}: not the DAVIS-2016 archive (its top level: {', '.join(tops) or 'nothing'})"
        )
    prefix = prefixes.pop()
    if not any(i.filename.startswith(f"{prefix}Annotations/480p/") and not i.is_dir() for i in infos):
        raise InputError(f"{name} holds frames but no {prefix}Annotations/480p/: not the DAVIS-2016 archive")
    return prefix


def describe_davis(root: str | Path) -> DavisFolder:
    """Counts of sequences, frames and annotations in a DAVIS-layout folder."""

    root = Path(root)
    names = list_davis_sequences(root)
    frames = sum(len(list((root / "JPEGImages" / RESOLUTION / n).glob("*.jpg"))) for n in names)
    return DavisFolder(root, len(names), frames, sum(len(davis_annotations(root, n)) for n in names))


def davis_state(out: str | Path) -> str:
    """'complete' (frames and annotations there), 'empty' (neither), or 'partial'."""
    out = Path(out)
    held = [any((out / sub).iterdir()) if (out / sub).is_dir() else False for sub in DAVIS_LAYOUT[:2]]
    return "complete" if all(held) else "partial" if any(held) else "empty"


# ----------------------------------------------------------------------------------- the command


def download_davis2016(
    out: str | Path,
    sha256: str | None = None,
    *,
    url: str = DAVIS2016_URL,
    keep_archive: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DavisFolder:
    """Download, check and unpack DAVIS-2016 into ``out`` (created). ``sha256``: the expected
    digest of the archive (default: the pinned :data:`DAVIS2016_SHA256`, when set). Does nothing
    when ``out`` already holds the frames and annotations."""
    out = Path(out).expanduser()
    expected = check_sha256(sha256) or DAVIS2016_SHA256
    state = davis_state(out) if out.is_dir() else "empty"
    if state == "complete":
        found = describe_davis(out)
        log(
            f"{out} already holds DAVIS data ({found.sequences} sequences, {found.frames} frames); nothing to do"
        )
        return found
    if state == "partial":
        raise InputError(
            f"{out} holds only one of JPEGImages/480p and Annotations/480p (an interrupted copy?); "
            "move it away or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    got = fetch(url, out / DAVIS2016_ARCHIVE, expected, progress=progress, log=log)
    if got.checked:
        how = "matches the pinned digest" if sha256 is None else "matches --sha256"
    else:
        how = "not checked: no digest is pinned yet; pass --sha256, or pin DAVIS2016_SHA256 in msn_core/datasets.py"
    log(f"sha256 {got.sha256}  {got.path.name}, {human_size(got.size)} ({how})")
    source = DAVIS2016_PUBLISHED_MD5.get(got.md5)
    log(
        f"md5 {got.md5}  "
        + (f"(as published in {source})" if source else "(none of the MD5s published for it)")
    )
    try:
        found = unpack_davis(got.path, out, log=log)
    except MSNError as exc:  # a damaged or foreign zip: keep it for a look, say how to start afresh
        raise type(exc)(f"{exc}; {got.path} is kept: delete it and run again to download afresh") from None
    if keep_archive:
        log(f"kept {got.path}")
    else:
        got.path.unlink()
        log(f"deleted {got.path.name} (--keep-archive keeps it)")
    return found
