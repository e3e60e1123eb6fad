"""Images of a run: objects overlaid on a frame, annotation clicks, captioned panels side by side.
Images are (H, W, 3) uint8 RGB."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from msn_core.annotations import Box, Click, is_box
from msn_core.errors import InputError
from msn_core.io import overlay_labels, resize_labels
from msn_core.viz.colours import object_colour


def _rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(f"{what}: expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    return image[..., :3]


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Objects of ``labels`` tinted in their palette colour with a contour; labels
    of another size are resized (nearest) to the frame first."""
    frame = _rgb(frame, "overlay")
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"overlay: labels must be (H, W) object ids, got shape {labels.shape}")
    if labels.shape != frame.shape[:2]:
        labels = resize_labels(labels, frame.shape[:2])
    return overlay_labels(frame, labels, alpha)


def draw_clicks(
    image: np.ndarray,
    clicks: Iterable[Click | Box],
    radius: int | None = None,
    scale: float = 1.0,
    corner: tuple[int, int] | None = None,
) -> np.ndarray:
    """Annotation clicks as discs in the object's colour with a white ``+`` (positive)
    or ``-`` (negative) and a dark rim, so they read on any background; boxes as rectangles in
    the object's colour; ``corner``: the first corner of a box being drawn. Coordinates are
    multiplied by ``scale`` (the image shown enlarged)."""
    out = Image.fromarray(_rgb(image, "draw_clicks").copy())
    draw = ImageDraw.Draw(out)
    r = radius or max(5, round(max(out.size) / 70))
    at = lambda v: round(v * scale)  # noqa: E731
    for entry in clicks:
        if is_box(entry):
            x0, y0, x1, y1, obj = entry
            box = (at(x0), at(y0), at(x1), at(y1))
            draw.rectangle(box, outline="#111827", width=max(2, r // 2))
            draw.rectangle(box, outline=object_colour(obj), width=max(1, r // 4))
            continue
        x, y, obj, positive = entry
        x, y = at(x), at(y)
        fill = object_colour(obj) if positive else "#dc2626"
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline="#111827", width=max(1, r // 4))
        arm, w = round(r * 0.6), max(1, r // 3)
        draw.line((x - arm, y, x + arm, y), fill="white", width=w)
        if positive:
            draw.line((x, y - arm, x, y + arm), fill="white", width=w)
    if corner is not None:
        x, y = at(corner[0]), at(corner[1])
        draw.line((x - 2 * r, y, x + 2 * r, y), fill="white", width=max(1, r // 3))
        draw.line((x, y - 2 * r, x, y + 2 * r), fill="white", width=max(1, r // 3))
    return np.asarray(out)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def caption(
    image: np.ndarray,
    text: str,
    *,
    bar: tuple[int, int, int] = (24, 24, 27),
    accent: tuple[int, int, int] | None = None,
    size: int | None = None,
) -> np.ndarray:
    """``image`` with a dark title bar above it (and an optional accent stripe)."""
    img = _rgb(image, "caption")
    h, w = img.shape[:2]
    size = size or int(np.clip(round(w / 26), 11, 22))
    bar_h = round(size * 1.9)
    head = Image.new("RGB", (w, bar_h), bar)
    draw = ImageDraw.Draw(head)
    font = _font(size)
    if draw.textlength(text, font=font) > w - size:  # too long: cut and end with an ellipsis
        while len(text) > 1 and draw.textlength(text + "…", font=font) > w - size:
            text = text[:-1]
        text = text.rstrip() + "…"
    draw.text((round(size * 0.6), bar_h // 2), text, fill=(245, 245, 245), font=font, anchor="lm")
    if accent is not None:
        draw.rectangle((0, bar_h - max(2, size // 6), w, bar_h), fill=accent)
    return np.concatenate([np.asarray(head), img], axis=0)


def side_by_side(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    gap: int = 6,
    accents: Sequence[tuple[int, int, int] | None] | None = None,
) -> np.ndarray:
    """Images in a row (each scaled to the first one's height), optionally captioned,
    separated by ``gap`` dark pixels. Output width and height are even (for H.264)."""
    if not images:
        raise InputError("side_by_side: give at least one image")
    if titles is not None and len(titles) != len(images):
        raise InputError(f"side_by_side: {len(images)} images but {len(titles)} titles")
    h = _rgb(images[0], "side_by_side").shape[0]
    panels = []
    for i, img in enumerate(images):
        img = _rgb(img, "side_by_side")
        if img.shape[0] != h:
            w = max(2, round(img.shape[1] * h / img.shape[0]))
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
        if titles is not None:
            img = caption(img, titles[i], accent=accents[i] if accents else None)
        panels.append(img)
    sep = np.full((panels[0].shape[0], gap, 3), 24, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [sep, p]
    out = np.concatenate(row, axis=1)
    pad = ((0, out.shape[0] % 2), (0, out.shape[1] % 2), (0, 0))
    return np.pad(out, pad, mode="edge") if any(p[1] for p in pad) else out
