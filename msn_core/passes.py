"""The order a run visits the frames in: one or two passes of the one propagation loop.

A pass starts at an annotated frame (its anchor) and visits frames one way: forward (anchor,
anchor+1, ...) or backward (anchor, anchor-1, ..., 0). Inside a pass the loop, the memory pool
and the selectors count *positions* along the pass: the frame index in a forward pass, anchor -
index in a backward one. So "previous", "gap k" and "first" mean the same thing in either
direction, the pool's order and budget hold unchanged, and the loop has no backward copy.

Reading. Frames come from a lazy iterable (a :class:`msn_core.io.VideoSource` decodes on
iteration, forward only). A forward pass reads as it goes and keeps nothing. A backward pass
needs frames 0..anchor before it can start, so those are kept in memory while it runs (each is
dropped once processed): a list or tuple of frames is used as it is (no copy); frames read from
anything else are kept at the processing size, (anchor + 1) * h * w * 3 bytes (e.g. 0.39 MB a
frame at 480x270: 1000 frames take about 390 MB), and their results' ``frame`` is that copy
brought back to the input size. ``Limits.max_frames`` bounds how many frames are read.

Annotated frames ahead. Every frame of a pass reads every annotated frame as memory, also those the
pass reaches later (an interactive tool's permanent memory holds every frame the user marked), so
each pass gets those frames first (:attr:`Pass.ahead`). A backward pass has them among its kept
frames. A forward pass reads them by iterating the source a second time (a list, an array or a
:class:`~msn_core.io.VideoSource`, which decodes the frames up to the last annotation twice); a
one-shot iterator (a generator) can be read only once, so its frames up to the last annotated one
are kept in memory as given until the pass reaches them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from msn_core.errors import InputError
from msn_core.geometry import processing_size
from msn_core.io import resize_frame
from msn_core.limits import Limits

_ENDED = object()


def check_frame(frame: np.ndarray, t: int | str, size: tuple[int, int] | None) -> None:
    """Refuse frame ``t`` (an index, or a name for messages) unless it is a uint8 (H, W, 3) RGB
    array of ``size`` (H, W; None: any)."""
    name = t if isinstance(t, str) else f"frame {t}"
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = getattr(frame, "shape", type(frame).__name__), getattr(frame, "dtype", "")
        raise InputError(f"{name}: expected a uint8 (H, W, 3) RGB array, got {got}")
    if size is not None and frame.shape[:2] != size:
        raise InputError(f"{name} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is {size[1]}x{size[0]}")


@dataclass
class Item:
    """One frame as a pass visits it."""

    index: int  # the frame's index in the video
    frame: np.ndarray  # (H, W, 3) uint8 RGB; kept frames of a backward pass may be at the processing size
    truth: np.ndarray | None  # its ground truth, as given (None when the run has none)


class Reader:
    """Frames of the video in order, checked (type, one size, ``limits``), each with its ground
    truth. ``size`` is the frames' (H, W), known once frame 0 is read."""

    def __init__(self, frames: Iterable[np.ndarray], ground_truth: Iterable | None, limits: Limits):
        self._frames, self._truth, self.limits = frames, ground_truth, limits
        self.size: tuple[int, int] | None = None
        self.count = 0  # frames read so far
        self.in_memory = isinstance(frames, (list, tuple, np.ndarray))  # kept as given, no copy

    def __iter__(self) -> Iterator[Item]:
        truths = iter(self._truth) if self._truth is not None else None
        for t, frame in self._checked(self._source()):
            truth = None
            if truths is not None:
                truth = next(truths, _ENDED)
                if truth is _ENDED:
                    raise InputError(f"ground_truth ended before frame {t}; give one mask (or colour frame) per frame")
            self.count = t + 1
            yield Item(t, frame, truth)
        if self.size is None:
            raise InputError("the video has no frames")

    def reread(self, indices: list[int]) -> dict[int, np.ndarray] | None:
        """The frames at ``indices`` (ascending) from a second read of the source, or None when the
        source is a one-shot iterator."""
        source = self._source()
        if source is self._frames:
            return None
        found: dict[int, np.ndarray] = {}
        read = 0
        try:
            for t, frame in self._checked(source):
                read = t + 1
                if t in indices:
                    found[t] = frame
                if t >= indices[-1]:
                    return found
        finally:
            getattr(source, "close", lambda: None)()
        raise InputError(_beyond(indices[-1], read) if read else "the video has no frames")

    def _source(self) -> Iterator[np.ndarray]:
        try:
            return iter(self._frames)
        except TypeError:
            raise InputError(
                f"frames must be an iterable of uint8 (H, W, 3) arrays, got {type(self._frames).__name__}"
            ) from None

    def _checked(self, frames: Iterator[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        limits = self.limits
        for t, frame in enumerate(frames):
            if limits.max_frames is not None and t >= limits.max_frames:
                limits.check_frame_count(t + 1, "the video", exact=False)
            check_frame(frame, t, self.size)
            if self.size is None:
                limits.check_pixels(frame.shape[:2], "frame 0")
                self.size = frame.shape[:2]
            yield t, frame


@dataclass
class Pass:
    """Frames visited from ``anchor`` one way (``step`` +1 or -1). ``yield_anchor`` is False for
    the forward half of "both", whose anchor's result the backward half gave already."""

    items: Iterator[Item]
    anchor: int
    step: int
    yield_anchor: bool = True
    ahead: dict[int, np.ndarray] = field(default_factory=dict)  # annotated frames the pass reaches later

    def position(self, index: int) -> int:
        """Frame index -> position along the pass (what the pool and the selectors see)."""
        return index if self.step > 0 else self.anchor - index

    def index(self, position: int) -> int:
        """Position along the pass -> frame index."""
        return position if self.step > 0 else self.anchor - position


def plan(
    reader: Reader, annotated: list[int], direction: str, max_side: int | None, read_ahead: bool = True
) -> Iterator[Pass]:
    """The passes of a run (see :mod:`msn_core.annotations` for the directions), each read as the
    one before it ends. ``annotated``: the annotated frame indices, ascending. ``read_ahead``: give
    each forward pass its later annotated frames (False for a propagator that does not read them)."""
    first, last = annotated[0], annotated[-1]
    items = iter(reader)
    if direction == "forward" or (direction == "both" and first == 0):
        items, ahead = _read_ahead(reader, items, first, annotated) if read_ahead else (items, {})
        yield Pass(_from(items, first, annotated), first, +1, ahead=ahead)
        return
    anchor = last if direction == "backward" else first
    kept = _keep(items, anchor, reader, max_side)
    anchor_item, ahead = kept[-1], {i: kept[i].frame for i in annotated if i < anchor}
    yield Pass(_popped(kept), anchor, -1, ahead=ahead)
    if direction == "both":
        rest, ahead = itertools.chain([anchor_item], items), {}
        if read_ahead:
            rest, ahead = _read_ahead(reader, rest, anchor, annotated)
        yield Pass(_from(rest, anchor, annotated), anchor, +1, yield_anchor=False, ahead=ahead)


def _read_ahead(reader: Reader, items: Iterator[Item], anchor: int, annotated: list[int]):
    """(the items to visit, the annotated frames after ``anchor``): read again from the source, or
    for a one-shot iterator kept from its items until the pass reaches them."""
    later = [i for i in annotated if i > anchor]
    if not later:
        return items, {}
    frames = reader.reread(later)
    if frames is not None:
        return items, frames
    kept: list[Item] = []
    for item in items:
        kept.append(item)
        if item.index == later[-1]:
            return itertools.chain(kept, items), {i.index: i.frame for i in kept if i.index in later}
    raise InputError(_beyond(later[-1], reader.count))


def _from(items: Iterator[Item], start: int, annotated: list[int]) -> Iterator[Item]:
    """Items from frame ``start`` on; refuses an annotated frame the video does not reach."""
    last = None
    for item in items:
        last = item.index
        if item.index >= start:
            yield item
    if last is not None and annotated[-1] > last:
        raise InputError(_beyond(annotated[-1], last + 1))


def _keep(items: Iterator[Item], anchor: int, reader: Reader, max_side: int | None) -> list[Item]:
    """Frames 0..anchor read and kept for a backward pass (at the processing size unless they
    were in memory already)."""
    kept: list[Item] = []
    for item in items:
        if not reader.in_memory:
            item.frame = resize_frame(item.frame, processing_size(reader.size, max_side))
        kept.append(item)
        if item.index == anchor:
            return kept
    raise InputError(_beyond(anchor, reader.count))


def _popped(kept: list[Item]) -> Iterator[Item]:
    """The kept frames, last first, each dropped from memory as it is handed over."""
    while kept:
        yield kept.pop()


def _beyond(index: int, count: int) -> str:
    return f"frame {index} is annotated but the video has {count} frame{'s' if count != 1 else ''} (0..{count - 1})"
