"""Annotated frames: the user's masks keyed by frame index, and the directions a run may take.

A run is given one mask (frame 0's) or a dict ``{frame index: mask}``; an object may first
appear in any annotated frame. Each annotated frame is trusted: its result is the annotation
itself and it enters the memory pool as an entry the budget never evicts (``memory.pool``).

Directions (the order of the results; see :mod:`msn_core.passes` for how the frames are read):

- ``"forward"``: from the earliest annotated frame to the last frame (frames before it are
  read and not propagated: they yield no result);
- ``"backward"``: from the latest annotated frame down to frame 0;
- ``"both"``: backward from the earliest annotated frame down to frame 0, then forward from it
  to the last frame, so every frame has one result, in the order a0, a0-1, ..., 0, a0+1, ..., N-1.

The default is ``"forward"`` when frame 0 is annotated and ``"both"`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from msn_core.errors import InputError
from msn_core.io import VOID_LABEL, read_mask, resize_labels
from msn_core.limits import resolve
from msn_core.tasks import MaskTask, check_labels

DIRECTIONS = ("forward", "backward", "both")
Click = tuple[int, int, int, bool]  # a click on a frame: (x, y, object id, positive)
Box = tuple[int, int, int, int, int]  # a box drawn on a frame: (x0, y0, x1, y1, object id), corners included


def is_box(entry: Click | Box) -> bool:
    """Whether an entry of a click list is a box (x0, y0, x1, y1, object) rather than a click."""
    return len(entry) == 5


def box_from_corners(a: tuple[int, int], b: tuple[int, int], obj: int) -> Box:
    """The box with opposite corners ``a`` and ``b`` (x, y), in either order."""
    (xa, ya), (xb, yb) = a, b
    return (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb), int(obj))


_FRAME_PNG = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


def mask_name(index: int | str) -> str:
    """How frame ``index``'s annotation (or a named frame's mask) is called in messages."""
    if isinstance(index, str):
        return f"the mask of {index}"
    return "the first-frame mask" if index == 0 else f"the mask of frame {index}"


def as_annotations(masks) -> dict[int, np.ndarray]:
    """One mask (frame 0's), ``{frame index: mask}`` or a folder of masks named by frame index
    (:func:`mask_dir`) -> ``{index: (H, W) uint8 object ids}``, ascending by index. A mask is a PNG
    path or an array of object ids (see :func:`msn_core.tasks.check_labels`)."""
    if masks is None:
        raise InputError("segmentation needs a first-frame mask (a PNG path or an array of object ids)")
    if isinstance(masks, (str, Path)) and Path(masks).is_dir():
        masks = mask_dir(masks)
    if not isinstance(masks, Mapping):
        masks = {0: masks}
    if not masks:
        raise InputError("no annotated frame: give at least one {frame index: mask}")
    out: dict[int, np.ndarray] = {}
    for index, mask in masks.items():
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise InputError(f"annotated frames are keyed by frame index (an integer >= 0), got {index!r}")
        labels = read_mask(mask) if isinstance(mask, (str, Path)) else mask
        out[int(index)] = check_labels(labels, mask_name(int(index)))
    return dict(sorted(out.items()))


def annotation_task(annotations: Mapping[int, np.ndarray]) -> MaskTask:
    """The segmentation task for every object any annotation marks (ids ascending)."""
    if len(annotations) == 1:
        return MaskTask.from_labels(next(iter(annotations.values())))  # its own messages (first-frame mask)
    ids = sorted({int(i) for labels in annotations.values() for i in np.unique(labels)} - {0, VOID_LABEL})
    if not ids:
        raise InputError("the annotated masks have no object: mark at least one object (non-zero pixels)")
    resolve(None).check_objects(len(ids), "the annotated masks")
    return MaskTask(ids)


def check_task_objects(annotations: Mapping[int, np.ndarray | None], object_ids: list[int]) -> None:
    """Refuse an annotation marking an object the task does not propagate."""
    known = set(object_ids) | {0, VOID_LABEL}
    for index, labels in annotations.items():
        if labels is None:
            continue
        extra = sorted(set(int(i) for i in np.unique(labels)) - known)
        if extra:
            raise InputError(
                f"{mask_name(index)} marks object(s) {extra[:5]} that the task does not propagate "
                f"(objects {object_ids}); build the task from every annotation"
            )


def fit_annotations(annotations: Mapping, size: tuple[int, int]) -> dict:
    """Every annotation checked against the frames' (H, W) ``size`` (before any is propagated)."""
    fitted = {}
    for index, labels in annotations.items():
        if labels is not None:
            if labels.shape != size and all(m - f in (0, 1) and f % 2 == 0 for m, f in zip(labels.shape, size)):
                labels = resize_labels(labels, size)  # an odd-sized video's mask; open_video reads it 1 px smaller
            if labels.shape[:2] != size:
                raise InputError(
                    f"{mask_name(index)} is {labels.shape[1]}x{labels.shape[0]} but the frames are "
                    f"{size[1]}x{size[0]}; give a mask of the frame's size"
                )
        fitted[index] = labels
    return fitted


def check_references(references, task) -> list[tuple[np.ndarray, np.ndarray]]:
    """``references`` as (frame, uint8 object ids) pairs, refused unless each is such a pair for a
    mask task and marks only the task's objects (frames are checked once the video's size is known)."""
    out = []
    for i, pair in enumerate(references):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InputError(f"reference {i} must be a (frame, mask) pair, got {type(pair).__name__}")
        out.append((pair[0], check_labels(pair[1], f"the mask of reference {i}")))
    if out and task.name != "mask":
        raise InputError("references (frames read as memory with their masks) are for masks, not colour")
    check_task_objects({f"reference {i}": m for i, (_, m) in enumerate(out)}, task.object_ids)
    return out


def next_correction(per_frame: Sequence[float], annotated: Iterable[int]) -> int | None:
    """The frame a simulated user corrects next, given each frame's score (IoU or J) so far: the
    worst frame not yet annotated, first and last excluded (DAVIS scores neither). None when every
    such frame is annotated. Stage-2 mining and ``benchmarks/corrections.py`` both correct this way."""
    marked = set(annotated)
    open_frames = [i for i in range(1, len(per_frame) - 1) if i not in marked]
    return min(open_frames, key=lambda i: per_frame[i]) if open_frames else None


def default_direction(annotated: Iterable[int]) -> str:
    """``"forward"`` when frame 0 is annotated, ``"both"`` otherwise."""
    return "forward" if 0 in set(annotated) else "both"


def check_direction(direction: str | None, annotated: Iterable[int]) -> str:
    """``direction`` checked (None: the default for these annotated frames)."""
    if direction is None:
        return default_direction(annotated)
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return direction


def mask_dir(folder: str | Path) -> dict[int, Path]:
    """The PNG masks of a folder named by frame index as in DAVIS (``00000.png``, ``00040.png``):
    ``{index: path}``, ascending. Other files are ignored; a PNG whose name is not a frame index,
    two names for one index, or a folder without PNGs is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"masks folder '{folder}' is not a folder; give a folder of PNGs named 00000.png, ...")
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() != ".png":
            continue
        m = _FRAME_PNG.match(path.name)
        if not m or not m.group(1).isascii():
            raise InputError(
                f"masks folder '{folder}': '{path.name}' is not named by a frame index; name each mask by "
                "the frame it annotates, as in DAVIS (00000.png, 00040.png)"
            )
        index = int(m.group(1))
        if index in found:
            raise InputError(f"masks folder '{folder}': '{found[index].name}' and '{path.name}' both annotate frame {index}")
        found[index] = path
    if not found:
        raise InputError(f"masks folder '{folder}' holds no PNG mask; give PNGs named by frame index (00000.png, ...)")
    return dict(sorted(found.items()))
