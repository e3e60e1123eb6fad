"""Colours shared by the pictures: the DAVIS palette of the overlays, line colours of the figures."""

from __future__ import annotations

from msn_core.errors import InputError
from msn_core.io import davis_palette

PALETTE = davis_palette()
#: line colours: a baseline in slate, MSN in orange, further series after them
SERIES = ["#64748b", "#ea580c", "#2563eb", "#16a34a", "#9333ea", "#db2777"]
MSN_COLOUR = "#ea580c"
FONT_FAMILY = "Inter, 'Segoe UI', Helvetica, Arial, sans-serif"


def object_colour(object_id: int) -> str:
    """The DAVIS palette colour of object ``object_id`` as ``#rrggbb`` (what overlays use)."""
    if not 0 <= int(object_id) <= 255:
        raise InputError(f"object_colour: object id must be in 0..255, got {object_id}")
    r, g, b = (int(v) for v in PALETTE[int(object_id)])
    return f"#{r:02x}{g:02x}{b:02x}"


def series_colour(i: int, name: str = "") -> str:
    """Line colour of the ``i``-th series; anything named like MSN is always orange."""
    if name.lower().startswith("msn"):
        return MSN_COLOUR
    others = [c for c in SERIES if c != MSN_COLOUR]
    return others[i % len(others)]
