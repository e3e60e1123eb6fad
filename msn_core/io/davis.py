"""The DAVIS folder layout and the bundled example clips.

    <data_dir>/JPEGImages/480p/<sequence>/00000.jpg ...
    <data_dir>/Annotations/480p/<sequence>/00000.png ...

An example clip is one folder holding both ``00000.jpg ...`` frames and
``00000.png ...`` DAVIS palette masks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from msn_core.config import DATA_DIR_ENV
from msn_core.errors import InputError
from msn_core.io._common import natural_sorted
from msn_core.io.sources import VideoSource, open_video

RESOLUTION = "480p"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"


def _frames_root(data_dir: str | Path) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(
            f"DAVIS data folder '{data_dir}' does not exist; set ${DATA_DIR_ENV} or pass a folder holding "
            f"JPEGImages/{RESOLUTION}/<sequence>/ and Annotations/{RESOLUTION}/<sequence>/ "
            f"(`msn data davis2016 --out DIR` downloads DAVIS-2016 there)"
        )
    root = data_dir / "JPEGImages" / RESOLUTION
    if not root.is_dir():
        raise InputError(
            f"'{data_dir}' is not a DAVIS folder: it has no JPEGImages/{RESOLUTION}/ "
            f"(found: {', '.join(sorted(p.name for p in data_dir.iterdir())[:10]) or 'nothing'})"
        )
    return root


def list_davis_sequences(data_dir: str | Path) -> list[str]:
    """Sorted names of the sequences under ``<data_dir>/JPEGImages/480p``."""
    root = _frames_root(data_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def davis_annotations(data_dir: str | Path, name: str) -> list[Path]:
    """Sorted annotation PNGs of one sequence ([] when it has none)."""
    folder = Path(data_dir) / "Annotations" / RESOLUTION / name
    if not folder.is_dir():
        return []
    return natural_sorted(
        p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")
    )


def davis_sequence(
    data_dir: str | Path, name: str, max_side: int | None = None, max_frames: int | None = None
) -> tuple[VideoSource, list[Path]]:
    """Frames of DAVIS sequence ``name`` and its sorted annotation paths (only those
    of frames within ``max_frames``)."""
    names = list_davis_sequences(data_dir)
    if name not in names:
        raise InputError(f"DAVIS sequence '{name}' not found in '{data_dir}'; available: {', '.join(names)}")
    source = open_video(Path(data_dir) / "JPEGImages" / RESOLUTION / name, max_side, max_frames)
    masks = davis_annotations(data_dir, name)
    if max_frames is not None:
        stems = {p.stem for p in source.frame_paths}
        masks = [m for m in masks if m.stem in stems]
    return source, masks


def list_examples() -> list[str]:
    """Names of the bundled example clips (``msn_core/assets/examples/<name>/``)."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.is_dir() and any(p.glob("*.jpg")))


def example_path(name: str) -> Path:
    """Folder of a bundled example clip (frames ``*.jpg`` + palette masks ``*.png``)."""
    names = list_examples()
    if name not in names:
        raise InputError(f"unknown example '{name}'; available: {', '.join(names) or 'none installed'}")
    return EXAMPLES_DIR / name


def example_sequence(
    name: str, max_side: int | None = None, max_frames: int | None = None
) -> tuple[VideoSource, list[Path]]:
    """Like :func:`davis_sequence` for a bundled example: (frames, sorted mask paths)."""
    folder = example_path(name)
    source = open_video(folder, max_side, max_frames)
    stems = {p.stem for p in source.frame_paths}
    return source, natural_sorted(p for p in folder.glob("*.png") if p.stem in stems)


def examples_as_davis(out_dir: str | Path, names: list[str] | None = None) -> Path:
    """Copy bundled example clips (default: all) into the DAVIS layout under ``out_dir`` and return
    it, so that code reading a DAVIS folder (training, ``msn evaluate``) runs where DAVIS-2016 is
    absent. A smoke run, not a benchmark: the clips are the first 30 frames of three DAVIS-2016
    *validation* sequences at 428x240. Existing files are overwritten."""
    out = Path(out_dir)
    for name in names if names is not None else list_examples():
        folder = example_path(name)
        for sub, suffix in (("JPEGImages", ".jpg"), ("Annotations", ".png")):
            dest = out / sub / RESOLUTION / name
            dest.mkdir(parents=True, exist_ok=True)
            for file in folder.glob(f"*{suffix}"):
                shutil.copyfile(file, dest / file.name)
    return out
