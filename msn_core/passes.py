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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from msn_core.errors import InputError
from msn_core.geometry import processing_size
from msn_core.io import resize_frame
from msn_core.limits import Limits

_ENDED = object()


def check_frame(frame: np.ndarray, t: int, size: tuple[int, int] | None) -> None:
    """Refuse frame ``t`` unless it is a uint8 (H, W, 3) RGB array of ``size`` (H, W; None: any)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = getattr(frame, "shape", type(frame).__name__), getattr(frame, "dtype", "")
        raise InputError(f"frame {t}: expected a uint8 (H, W, 3) RGB array, got {got}")
    if size is not None and frame.shape[:2] != size:
        raise InputError(f"frame {t} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is {size[1]}x{size[0]}")


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
        try:
            frames = iter(self._frames)
        except TypeError:
            raise InputError(
                f"frames must be an iterable of uint8 (H, W, 3) arrays, got {type(self._frames).__name__}"
            ) from None
        truths = iter(self._truth) if self._truth is not None else None
        limits = self.limits
        for t, frame in enumerate(frames):
            if limits.max_frames is not None and t >= limits.max_frames:
                limits.check_frame_count(t + 1, "the video", exact=False)
            check_frame(frame, t, self.size)
            if self.size is None:
                limits.check_pixels(frame.shape[:2], "frame 0")
                self.size = frame.shape[:2]
            truth = None
            if truths is not None:
                truth = next(truths, _ENDED)
                if truth is _ENDED:
                    raise InputError(f"ground_truth ended before frame {t}; give one mask (or colour frame) per frame")
            self.count = t + 1
            yield Item(t, frame, truth)
        if self.size is None:
            raise InputError("the video has no frames")


@dataclass
class Pass:
    """Frames visited from ``anchor`` one way (``step`` +1 or -1). ``yield_anchor`` is False for
    the forward half of "both", whose anchor's result the backward half gave already."""

    items: Iterator[Item]
    anchor: int
    step: int
    yield_anchor: bool = True

    def position(self, index: int) -> int:
        """Frame index -> position along the pass (what the pool and the selectors see)."""
        return index if self.step > 0 else self.anchor - index

    def index(self, position: int) -> int:
        """Position along the pass -> frame index."""
        return position if self.step > 0 else self.anchor - position


def plan(reader: Reader, annotated: list[int], direction: str, max_side: int | None) -> Iterator[Pass]:
    """The passes of a run (see :mod:`msn_core.annotations` for the directions), each read as the
    one before it ends. ``annotated``: the annotated frame indices, ascending."""
    first, last = annotated[0], annotated[-1]
    items = iter(reader)
    if direction == "forward" or (direction == "both" and first == 0):
        yield Pass(_from(items, first, annotated), first, +1)
        return
    anchor = last if direction == "backward" else first
    kept = _keep(items, anchor, reader, max_side)
    anchor_item = kept[-1]
    yield Pass(_popped(kept), anchor, -1)
    if direction == "both":
        rest = _from(_chain(anchor_item, items), anchor, annotated)
        yield Pass(rest, anchor, +1, yield_anchor=False)


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


def _chain(first: Item, rest: Iterator[Item]) -> Iterator[Item]:
    yield first
    yield from rest


def _beyond(index: int, count: int) -> str:
    return f"frame {index} is annotated but the video has {count} frame{'s' if count != 1 else ''} (0..{count - 1})"
