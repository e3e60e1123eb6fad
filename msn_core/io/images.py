"""Frames as image files: decoding PNG/JPEG bytes, reading a frame's size from its header, picking
the frames among a folder's or a zip's files, and checking that a video's frames share one size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

import cv2
import numpy as np
from PIL import Image

from msn_core.errors import InputError
from msn_core.io._common import IMAGE_EXTS, natural_key, shape_str
from msn_core.limits import Limits, env_name

_IMREAD = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # the only image formats decoded (PNG, JPEG)
_PIL_FORMATS = ["PNG", "JPEG"]


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Encoded PNG or JPEG bytes -> (H, W, 3) uint8 RGB (grey, alpha and 16-bit handled)."""
    img = None
    if data and bytes(data[:8]).startswith(_MAGIC):
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), _IMREAD)
        except cv2.error:
            img = None
    if img is None:
        raise InputError(f"'{name}' is not a readable image (accepted: {', '.join(IMAGE_EXTS)})")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_size(fp, name: str, limits: Limits) -> tuple[int, int]:
    """(H, W) from the image header (nothing decoded), checked against ``limits.max_pixels``."""
    try:
        with Image.open(fp, formats=_PIL_FORMATS) as im:
            size = im.size[1], im.size[0]
    except Image.DecompressionBombError:
        raise InputError(
            f"'{name}' declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels; at most "
            f"{limits.max_pixels / 1e6:.1f} megapixels per frame are accepted ({env_name('max_pixels')})"
        ) from None
    except Exception as exc:
        raise InputError(
            f"'{name}' is not a readable image ({exc}); accepted: {', '.join(IMAGE_EXTS)}"
        ) from exc
    limits.check_pixels(size, f"frame '{name}'")
    return size


def pick_frames(names: list[str]) -> list[str]:
    """Image names that are frames. A DAVIS-like folder holds ``*.jpg`` frames next
    to ``*.png`` masks: when both kinds are present, only the JPEGs are frames."""
    images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_EXTS]
    jpegs = [n for n in images if PurePosixPath(n).suffix.lower() in (".jpg", ".jpeg")]
    return sorted(jpegs or images, key=natural_key)


def check_same_size(sizes: Iterator[tuple[str, tuple[int, int]]], where: str) -> tuple[int, int]:
    first_name, first = next(sizes)
    for name, size in sizes:
        if size != first:
            raise InputError(
                f"frames in '{where}' have different sizes: '{name}' is {shape_str(size)} but "
                f"'{first_name}' is {shape_str(first)}; all frames of a video must have one size"
            )
    return first


def checked_frame(frame: np.ndarray, size: tuple[int, int], name: str, first: str) -> np.ndarray:
    if frame.shape[:2] != size:
        raise InputError(
            f"frame '{name}' is {shape_str(frame.shape)} but '{first}' is {shape_str(size)}; "
            "all frames of a video must have one size"
        )
    return frame
