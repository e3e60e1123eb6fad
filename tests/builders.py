"""Byte-level file builders shared by the reliability and fuzz tests."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def palette_png(indices: np.ndarray, palette: list[tuple[int, int, int]]) -> bytes:
    """A raw 8-bit palette PNG (PIL would re-pack a palette shorter than the indices it uses)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = indices.shape
    raw = b"".join(b"\0" + indices[y].astype(np.uint8).tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", bytes(v for c in palette for v in c)) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))  # fmt: skip
