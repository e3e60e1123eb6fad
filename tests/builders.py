"""Byte-level file builders shared by the reliability and fuzz tests."""

from __future__ import annotations

import struct
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import av
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


def lying_zip(path: Path, frame: bytes, method: int, extra: int) -> Path:
    """A zip whose one member, 00000.jpg, claims to be ``frame`` (its size and CRC) but inflates to
    ``frame`` followed by ``extra`` zero bytes: the headers lie, only the bytes produced tell."""
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        zf.writestr("00000.jpg", frame + bytes(extra))
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("00000.jpg")
    central = data.rindex(b"PK\x01\x02")
    for at, off in ((info.header_offset + 14, 8), (central + 16, 8)):  # CRC, then the declared size
        data[at : at + 4] = struct.pack("<I", zlib.crc32(frame))
        data[at + off : at + off + 4] = struct.pack("<I", len(frame))
    path.write_bytes(bytes(data))
    return path


def rate_video(path: Path, frames: list[np.ndarray], rate: Fraction) -> Path:
    """A real video file at frame rate ``rate`` (MPEG-4 Part 2 in Matroska takes extreme rates)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
