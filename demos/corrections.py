"""Corrections after a Segment run: a finished run's per-frame masks, the frames the user corrected,
and propagating again from a corrected frame over only the frames it changes (or undoing it).

Everything runs on the public API, on a slice of the frames: a correction on frame k propagated

- ``forward`` recomputes k .. (the next annotated frame - 1, or the last frame),
- ``backward`` recomputes (the previous annotated frame + 1, or 0) .. k,
- ``both`` both ranges, in one ``propagate(slice, {k - lo: correction}, direction="both")``.

Every other annotated frame is read as memory on the way (``references``), as a whole run reads
every annotated frame. Each frame remembers the annotated frame that governs it (its *owner*), and
a correction the owners of the frames it took over. Undoing a correction removes it and recomputes
the frames it governed from their earlier owner (forward after it, backward before it), on the slice
from that annotation to the frames, reading the annotated frames that remain: the earlier masks
come back when those are the annotated frames they were computed with. An earlier owner that is
gone (undone too) is replaced by the nearest annotated frame (the earlier one on a tie), going
forward or backward to the frame.
No gradio here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from msn_core import viz
from msn_core.annotations import DIRECTIONS
from msn_core.errors import InputError
from msn_core.io import VideoWriter, object_ids, write_mask_png, write_rgba_cutout, zip_directory


@dataclass
class Fix:
    """A corrected frame: its mask, the direction it was propagated, and the owners the frames it
    took over had before (to give them back on undo)."""

    mask: np.ndarray
    direction: str
    previous: dict[int, int] = field(default_factory=dict)


@dataclass(eq=False)
class RunResult:
    """A finished Segment run that can be corrected. ``run`` is the demos.runs.MaskRun (its
    pipeline, adapted or not, and the ground truth); ``base``: the run's own annotation(s)."""

    run: object
    selector: str
    masks: list[np.ndarray]  # one (H, W) uint8 id map per frame
    owner: list[int]  # the annotated frame that governs each frame
    base: dict[int, np.ndarray]
    work: Path  # the run's folder: masks/, cutouts/, overlay.mp4, the zips
    name: str
    fps: float
    fixes: dict[int, Fix] = field(default_factory=dict)
    # the correction being drawn: its frame, clicks, mask and how it was made
    draft_frame: int | None = None
    clicks: list = field(default_factory=list)  # clicks and boxes
    corner: tuple[int, int] | None = None  # the first corner of a box being drawn
    draft: np.ndarray | None = None
    how: str = ""

    @property
    def count(self) -> int:
        return len(self.masks)

    def annotations(self) -> dict[int, np.ndarray]:
        """Every annotated frame's mask: the run's own, with the corrections over them."""
        out = dict(self.base)
        out.update({k: fix.mask for k, fix in self.fixes.items()})
        return dict(sorted(out.items()))

    def check_frame(self, t) -> int:
        """``t`` as a frame index of this run, or a one-line error."""
        try:
            t = int(t)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"the frame must be a whole number between 0 and {self.count - 1}, got {t!r}") from None
        if not 0 <= t < self.count:
            raise InputError(f"frame {t} is out of range: this run has frames 0–{self.count - 1}")
        return t


def span(annotated: list[int], k: int, direction: str, count: int) -> tuple[int, int]:
    """The frames ``lo .. hi - 1`` a correction on frame ``k`` propagated ``direction`` recomputes,
    given the other annotated frames ``annotated``."""
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    before = [a for a in annotated if a < k]
    after = [a for a in annotated if a > k]
    lo = (before[-1] + 1 if before else 0) if direction in ("backward", "both") else k
    hi = (after[0] if after else count) if direction in ("forward", "both") else k + 1
    return lo, hi


def _propagate(result: RunResult, frames: list[np.ndarray], lo: int, hi: int, anchor: int,
               mask: np.ndarray, direction: str) -> dict[int, np.ndarray]:  # fmt: skip
    """Frames ``lo .. hi - 1`` propagated from ``anchor``'s ``mask``: {frame index: labels}. The
    other annotated frames are read as memory too (as references, with the objects ``mask`` marks)."""
    run = result.run
    truth = getattr(run, "truth", None) if result.selector.startswith("oracle") else None
    ids = [i for i in np.unique(mask).tolist() if i]
    references = [(frames[a], np.where(np.isin(m, ids), m, 0).astype(np.uint8))
                  for a, m in result.annotations().items()
                  if not lo <= a < hi and getattr(run.pipe, "reads_references", True)]  # fmt: skip
    results = run.pipe.propagate(
        frames[lo:hi],
        {anchor - lo: mask},
        direction=direction,
        selector=result.selector,
        ground_truth=truth[lo:hi] if truth else None,
        references=references,
    )
    return {lo + r.index: r.labels for r in results}


def correct(result: RunResult, frames: list[np.ndarray], k: int, mask: np.ndarray, direction: str) -> list[int]:
    """Annotate frame ``k`` with ``mask`` and propagate ``direction`` from it over the frames it
    changes; returns the frames recomputed, ascending."""
    k = result.check_frame(k)
    if mask is None or not object_ids(mask):
        raise InputError(f"the correction of frame {k} marks no object: mark at least one object")
    if len(frames) != result.count:
        raise InputError(f"the video now has {len(frames)} frames but the run had {result.count}; run it again")
    others = [a for a in result.annotations() if a != k]
    lo, hi = span(others, k, direction, result.count)
    new = _propagate(result, frames, lo, hi, k, mask, direction)
    previous = dict(result.fixes[k].previous) if k in result.fixes else {}
    for t, labels in new.items():
        if result.owner[t] != k:
            previous[t] = result.owner[t]
        result.masks[t], result.owner[t] = labels, k
    result.fixes[k] = Fix(mask.copy(), direction, previous)
    return sorted(new)


def undo(result: RunResult, frames: list[np.ndarray], k: int) -> list[int]:
    """Remove the correction of frame ``k`` and recompute the frames it governed; returns them."""
    k = result.check_frame(k)
    if k not in result.fixes:
        listed = ", ".join(map(str, sorted(result.fixes))) or "none"
        raise InputError(f"frame {k} has no correction to undo (corrected frames: {listed})")
    previous = result.fixes.pop(k).previous
    annotated = result.annotations()
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for t in (t for t in range(result.count) if result.owner[t] == k):
        if (a := previous.get(t)) in annotated:
            groups[(a, "forward" if t >= a else "backward")].append(t)
            continue
        a = min(annotated, key=lambda a: (abs(a - t), a))  # the run's own annotation is never removed
        groups[(a, "forward" if t >= a else "backward")].append(t)
    done: list[int] = []
    for (a, direction), ts in groups.items():
        lo, hi = (a, max(ts) + 1) if direction == "forward" else (min(ts), a + 1)
        new = _propagate(result, frames, lo, hi, a, annotated[a], direction)
        for t in ts:
            result.masks[t], result.owner[t] = new[t], a
        done += ts
    return sorted(done)


class RunFrames:
    """A run's ``count`` frames read from its video on demand, never all in memory: ``len``, iteration
    and ``frames[lo:hi]`` (a slice that can be iterated, again) stream them; ``frames[t]`` is one frame.
    ``open_frames(count)`` gives a fresh iterator over the video's first ``count`` frames."""

    def __init__(self, open_frames: Callable[[int], Iterator[np.ndarray]], count: int, lo: int = 0, hi=None):
        self._open, self.count = open_frames, count
        self.lo, self.hi = lo, count if hi is None else hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def __iter__(self) -> Iterator[np.ndarray]:
        n = 0
        for frame in islice(self._open(self.count), self.lo, self.hi):
            n += 1
            yield frame
        if n != len(self):
            raise InputError(f"the video now has fewer frames than the run had ({self.count}); run it again")

    def __getitem__(self, key):
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            if step != 1:
                raise ValueError("RunFrames slices are contiguous")
            return RunFrames(self._open, self.count, self.lo + lo, self.lo + max(lo, hi))
        t = range(len(self))[key]
        return next(iter(self[t : t + 1]))


def write_outputs(result: RunResult, frames, changed: list[int], show: int | None = None):
    """The run's downloads brought up to date with its masks: the changed frames' mask PNGs and
    cut-outs, the two zips and the overlay video. ``frames`` are read once, in order. Returns
    ([masks zip, overlay mp4, cut-outs zip], the overlay of frame ``show`` or None)."""
    work, redo, shown = result.work, set(changed), None
    for t in changed:
        write_mask_png(work / "masks" / f"{t:05d}.png", result.masks[t])
    with VideoWriter(work / "overlay.mp4", result.fps) as writer:
        for t, (frame, labels) in enumerate(zip(frames, result.masks)):
            if t in redo:
                write_rgba_cutout(work / "cutouts" / f"{t:05d}.png", frame, labels)
            image = viz.overlay(frame, labels)
            writer.write(image)
            shown = image if t == show else shown
    masks = zip_directory(work / "masks", work / f"{result.name}_masks.zip")
    cutouts = zip_directory(work / "cutouts", work / f"{result.name}_cutouts.zip")
    return [str(masks), str(work / "overlay.mp4"), str(cutouts)], shown


def last_computed(changed: list[int], direction: str) -> int:
    """The frame a pass over ``changed`` (ascending) ends on: the last one forward, the first one
    backward (``both`` ends forward)."""
    return changed[0] if direction == "backward" else changed[-1]


def ranges(frames: list[int]) -> str:
    """[3, 4, 5, 9] -> '3–5, 9'."""
    parts, start = [], None
    for i, t in enumerate(frames):
        start = t if start is None else start
        if i + 1 == len(frames) or frames[i + 1] != t + 1:
            parts.append(f"{start}" if start == t else f"{start}–{t}")
            start = None
    return ", ".join(parts) or "none"
