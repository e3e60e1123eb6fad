"""How long a run will take on a CPU, shown before and while it runs: frames left x seconds per
frame, the seconds per frame timed on this run's own first frames (or, before its first frame, taken
from the last run of the same kind in this process). No figure is typed into the code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

WARMUP = 2  # frames timed after the first (which also reads the annotation) before an estimate is shown

_LAST: dict[Hashable, float] = {}  # seconds per frame of the last finished run of each kind
_LOCK = threading.Lock()


def duration(seconds: float) -> str:
    """``'under 1 s'``, ``'45 s'``, ``'3 min 20 s'``, ``'1 h 05 min'``."""
    s = round(seconds)
    if s < 1:
        return "under 1 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, s = divmod(s, 60)
        return f"{m} min {s:02d} s" if s else f"{m} min"
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min"


class WaitEstimate:
    """The wait left in a run of ``total`` frames, from the wall time of its frames so far (each
    frame's propagation and writing). ``kind``: what makes runs comparable (network, size, options),
    for the estimate shown before the first frame."""

    def __init__(self, total: int, kind: Hashable = None, clock: Callable[[], float] = time.perf_counter):
        self.total, self.kind, self._clock = int(total), kind, clock
        self.done = 0
        self._first: float | None = None  # when frame 0 was done: the timing starts there

    def frame_done(self) -> None:
        """One more frame finished (call after writing it)."""
        self.done += 1
        if self.done == 1:
            self._first = self._clock()

    @property
    def seconds_per_frame(self) -> float | None:
        """Seconds per frame timed on this run (frames 1.. ; None until ``WARMUP`` of them are done)."""
        timed = self.done - 1
        if self._first is None or timed < WARMUP:
            return None
        return (self._clock() - self._first) / timed

    def before(self) -> str:
        """The note shown as the run starts."""
        with _LOCK:
            last = _LAST.get(self.kind)
        if last is None:
            return f"{self.total} frames to propagate; the expected wait is shown once the first frames are timed."
        return (f"{self.total} frames to propagate: about **{duration(self.total * last)}** ({last:.2f} s per frame, "
                "as the last run like this one on this machine).")  # fmt: skip

    def text(self) -> str | None:
        """The wait left (None until it can be timed)."""
        spf = self.seconds_per_frame
        if spf is None:
            return None
        left = self.total - self.done
        return (f"about **{duration(left * spf)}** left ({left} frames × {spf:.2f} s per frame, timed on frames "
                f"1–{self.done - 1} of this run)")  # fmt: skip

    def tick(self) -> tuple[str | None, bool]:
        """:meth:`frame_done`, then (the wait left or None, whether this is its first estimate: a
        moment to show it at once)."""
        self.frame_done()
        return self.text(), self.done == WARMUP + 1

    def finish(self) -> None:
        """Keep this run's speed for the next run of its kind."""
        spf = self.seconds_per_frame
        if spf is not None:
            with _LOCK:
                _LAST[self.kind] = spf
