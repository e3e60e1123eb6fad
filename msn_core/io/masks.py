"""Object-id masks: read any common mask PNG, write DAVIS palette PNGs.

Labels are ``uint8`` (H, W) arrays: 0 = background, 1..K = objects. In DAVIS
palette masks the index 255 is DAVIS's "void" label (object boundaries that are
not scored); it is kept as 255, never turned into an object id.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from msn_core.errors import InputError
from msn_core.io._common import VOID_LABEL, atomic_write, check_input_path, display, shape_str
from msn_core.limits import Limits, env_name, resolve

# Greyscale masks with at most this many grey levels are object ids; more levels
# mean an anti-aliased (or JPEG) binary mask, which is thresholded at half range.
_MAX_GREY_OBJECTS = 32
# raster formats a mask may be in (PIL picks a decoder by content: EPS and other
# formats that run external programs or are rarely masks are never tried)
_MASK_FORMATS = ["PNG", "BMP", "GIF", "TIFF", "WEBP", "JPEG"]


def davis_palette() -> np.ndarray:
    """The standard DAVIS (= PASCAL VOC) palette, (256, 3) uint8: 1 -> (128, 0, 0),
    2 -> (0, 128, 0), ..., 255 -> (224, 224, 192)."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


_PALETTE = davis_palette()
_PALETTE_LOOKUP = {tuple(int(v) for v in rgb): i for i, rgb in enumerate(_PALETTE) if i > 0}


def read_mask(path: str | Path, *, limits: Limits | None = None) -> np.ndarray:
    """Read a mask image as object ids, (H, W) uint8.

    - binary masks (one non-zero value: 0/255, 0/1, 0/65535; grey or RGB) -> {0, 1};
    - DAVIS palette PNGs ("P" mode) keep their indices; 255 stays 255 (void);
    - greyscale with a few levels: small values (ids 0..K, up to 32, plus void 255)
      are kept as they are, other levels become ids 1..K in ascending grey order;
      many levels (> 32, an anti-aliased binary mask): thresholded at half range;
    - RGB with several colours: DAVIS palette colours keep their palette index,
      other colours get ids 1..K in order of first appearance (raster order).

    The image may have at most ``limits.max_pixels`` pixels (checked before decoding).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"mask must be a path to a PNG file, got {type(path).__name__}")
    path = Path(path)
    limits = resolve(limits)
    check_input_path(path, "mask", "a PNG mask file")
    try:
        with Image.open(path, formats=_MASK_FORMATS) as im:
            limits.check_pixels((im.size[1], im.size[0]), f"mask {display(path)}")
            im.load()
            if im.mode == "P":
                palette = np.array(im.getpalette() or [], np.uint8).reshape(-1, 3)
                indices = np.array(im)
                _check_palette_indices(indices, palette, path)
                return labels_from_palette_or_binary(indices, palette=palette, path=path)
            arr = _image_to_array(im)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(
            f"mask {display(path)} declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels; "
            f"at most {limits.max_pixels / 1e6:.1f} megapixels are accepted ({env_name('max_pixels')})"
        ) from None
    except Exception as exc:  # PIL raises many types for broken files
        raise InputError(
            f"mask {display(path)} is not a readable image ({exc}); expected a PNG mask"
        ) from exc
    return labels_from_palette_or_binary(arr, path=path)


def _check_palette_indices(indices: np.ndarray, palette: np.ndarray, path) -> None:
    """A palette PNG may only use indices its palette has (the PNG rule)."""
    top = int(indices.max()) if indices.size else 0
    if len(palette) and top >= len(palette):
        raise InputError(
            f"mask {display(path)} uses palette index {top} but its palette has only {len(palette)} colours; "
            "a palette mask must use indices of its palette (save it again, or as a DAVIS palette PNG)"
        )


def _image_to_array(im: Image.Image) -> np.ndarray:
    """PIL image -> 2-D grey or (H, W, 3) colour array (alpha: see below)."""
    if im.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        return np.array(im)
    if im.mode in ("LA", "RGBA", "PA"):
        rgba = np.array(im.convert("RGBA"))
        rgb, alpha = rgba[..., :3], rgba[..., 3]
        if (rgb == rgb.reshape(-1, 3)[0]).all() and (alpha != alpha.flat[0]).any():
            return alpha  # a flat colour with the shape in the alpha channel
        return rgb
    return np.array(im.convert("RGB"))


def labels_from_palette_or_binary(
    arr: np.ndarray, palette: np.ndarray | None = None, path: str | Path | None = None
) -> np.ndarray:
    """Array-level :func:`read_mask`: ``arr`` is a 2-D index/grey array or an
    (H, W, 3|4) colour array. Pass ``palette`` ((N, 3) uint8) when ``arr`` holds
    palette indices; then indices are kept (255 = void), except that a mask using
    only 0 and a white 255 is read as binary."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
            arr = arr[..., 0]
        else:
            return _labels_from_colours(arr, path)
    if arr.ndim != 2:
        raise InputError(
            f"{display(path)}: mask array has shape {arr.shape}; expected (H, W) ids or (H, W, 3) colours"
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if palette is not None:
        return _labels_from_indices(arr, palette, path)
    return _labels_from_grey(arr, path)


def _labels_from_indices(arr: np.ndarray, palette: np.ndarray, path) -> np.ndarray:
    if arr.min() < 0 or arr.max() > 255:
        raise InputError(f"{display(path)}: palette indices must be in 0..255, got {arr.min()}..{arr.max()}")
    arr = arr.astype(np.uint8)
    values = np.unique(arr)
    white = len(palette) > 255 and tuple(palette[255]) == (255, 255, 255)
    if white and set(values.tolist()) <= {0, 255} and len(values) == 2:
        return (arr == 255).astype(np.uint8)  # a binary mask that happens to be saved as "P"
    return arr


def _labels_from_grey(arr: np.ndarray, path) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{display(path)}: mask has NaN/inf values; expected integer ids or 0/1")
        top = 1.0 if arr.max() <= 1.0 else float(arr.max())
        return (arr > top / 2).astype(np.uint8)
    if arr.min() < 0:
        raise InputError(f"{display(path)}: mask has negative values; expected ids >= 0")
    values = np.unique(arr)
    nonzero = values[values != 0]
    if len(nonzero) == 0:
        return np.zeros(arr.shape, np.uint8)
    if len(nonzero) == 1:
        return (arr != 0).astype(np.uint8)
    if len(nonzero) > _MAX_GREY_OBJECTS:  # anti-aliased binary mask
        top = 255 if arr.max() <= 255 else 65535 if arr.max() <= 65535 else int(arr.max())
        return (arr > top // 2).astype(np.uint8)
    ids = nonzero[nonzero != VOID_LABEL]
    if nonzero[-1] <= VOID_LABEL and len(ids) and ids[-1] <= _MAX_GREY_OBJECTS:
        return arr.astype(np.uint8)  # already ids 1..K (and possibly void 255)
    ranks = np.searchsorted(nonzero, arr) + 1  # ids 1..K in ascending grey order
    return np.where(arr == 0, 0, ranks).astype(np.uint8)


def _labels_from_colours(rgb: np.ndarray, path) -> np.ndarray:
    rgb = rgb.astype(np.uint8) if rgb.dtype != np.uint16 else (rgb >> 8).astype(np.uint8)
    flat = rgb.reshape(-1, 3)
    codes = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in uniq.tolist()]
    objects = [i for i, c in enumerate(colours) if c != (0, 0, 0)]
    if len(objects) > 254:
        raise InputError(
            f"{display(path)}: colour mask has {len(objects)} colours; a colour mask must use at most "
            "254 flat colours (JPEG masks are not supported: save masks as PNG)"
        )
    lut = np.zeros(len(uniq), np.uint8)
    if all(colours[i] in _PALETTE_LOOKUP for i in objects):
        for i in objects:
            lut[i] = _PALETTE_LOOKUP[colours[i]]
    else:
        for new_id, i in enumerate(sorted(objects, key=lambda i: first[i]), start=1):
            lut[i] = new_id
    return lut[inverse.reshape(-1)].reshape(rgb.shape[:2])


def write_mask_png(path: str | Path, labels: np.ndarray) -> Path:
    """Write ``labels`` (H, W) ids 0..255 as a DAVIS palette PNG (mode "P"), atomically."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"write_mask_png {display(path)}: labels must be (H, W), got shape {labels.shape}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 255:
        raise InputError(
            f"write_mask_png {display(path)}: labels must be integer ids in 0..255 "
            f"(got dtype {labels.dtype}, range {labels.min()}..{labels.max()})"
        )
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette(_PALETTE.reshape(-1).tolist())
    path = Path(path)
    with atomic_write(path) as tmp:
        im.save(tmp, format="PNG", optimize=True)
    return path


def check_mask(labels: np.ndarray, frame_shape, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` if ``labels`` does not fit a frame of ``frame_shape``
    ((H, W) or (H, W, C)) or holds no object (only background and void)."""
    labels = np.asarray(labels)
    frame_hw = tuple(int(v) for v in tuple(frame_shape)[:2])
    if labels.ndim != 2:
        raise InputError(f"{display(path)}: mask must be (H, W) object ids, got shape {labels.shape}")
    if labels.shape != frame_hw:
        raise InputError(
            f"{display(path)}: mask size {shape_str(labels.shape)} differs from the frame size "
            f"{shape_str(frame_hw)} (WxH); give a mask of the frame's size"
        )
    if not ((labels > 0) & (labels != VOID_LABEL)).any():
        raise InputError(
            f"{display(path)}: mask has no object (all background{' or void 255' if VOID_LABEL in labels else ''}); "
            "mark the object(s) with non-zero values"
        )


def object_ids(labels: np.ndarray) -> list[int]:
    """Sorted object ids present in ``labels`` (background 0 and void 255 excluded)."""
    return [int(v) for v in np.unique(labels) if 0 < v < VOID_LABEL]
