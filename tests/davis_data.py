"""Where tests find DAVIS: the real DAVIS-2016 folder when there is one, else the bundled example
clips (the first 30 frames of camel, dog and kite-surf at 428x240), so a lone clone of the
repository runs the tests of the mechanics; tests that need the real data skip with
:data:`NEEDS_DAVIS`."""

from __future__ import annotations

from pathlib import Path

from msn_core.config import default_data_dir
from msn_core.io import example_path

NEEDS_DAVIS = "needs DAVIS-2016: msn data davis2016"
DAVIS_SIZE = (480, 854)  # (H, W) of DAVIS-2016 480p frames


def real_davis() -> Path | None:
    """The DAVIS-2016 root ($MSN_DATA_DIR or ../shared/data/davis2016), or None when absent."""
    path = default_data_dir()
    return path if (path / "JPEGImages" / "480p").is_dir() else None


def frame_path(seq: str, idx: int) -> Path:
    """Frame ``idx`` of ``seq``: the DAVIS-2016 file when there is DAVIS, else the bundled clip's."""
    root = real_davis()
    if root is not None:
        return root / "JPEGImages" / "480p" / seq / f"{idx:05d}.jpg"
    return example_path(seq) / f"{idx:05d}.jpg"


def mask_path(seq: str, idx: int) -> Path:
    """The annotation of frame ``idx`` of ``seq``, from the same place as :func:`frame_path` (DAVIS
    stores 0/255 PNGs, the bundled clips palette PNGs: read it with ``msn_core.io.read_mask``)."""
    root = real_davis()
    if root is not None:
        return root / "Annotations" / "480p" / seq / f"{idx:05d}.png"
    return example_path(seq) / f"{idx:05d}.png"
