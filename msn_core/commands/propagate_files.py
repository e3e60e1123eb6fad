"""What ``msn propagate`` writes into --out besides the frames, and how it stops: the record, the
overlay of a run that did not go forward, the messages, and SIGINT/SIGTERM handling."""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_END = object()


class WriteBehind:
    """Writes a run's frames in a worker thread while the loop computes the next ones.

    ``put(item)`` hands one over, waiting while ``depth`` are pending (``depth`` 0: ``write`` runs
    in the caller's thread, at once). Items are written one at a time, in order. A write that fails
    stops the writing; its error is raised by the next ``put`` or on leaving the block. Leaving the
    block normally or on the run's own error finishes the pending writes; leaving it on
    KeyboardInterrupt (a second Ctrl-C) finishes only the write in progress."""

    def __init__(self, write: Callable[[object], None], depth: int) -> None:
        self._write, self._depth = write, depth
        self._queue: queue.Queue = queue.Queue(max(depth, 1))
        self._error: BaseException | None = None
        self._raised = self._stop = False
        self._thread = threading.Thread(target=self._work, name="msn-writer", daemon=True)

    def __enter__(self) -> WriteBehind:
        if self._depth:
            self._thread.start()
        return self

    def _work(self) -> None:
        while (item := self._queue.get()) is not _END:
            if self._stop or self._error is not None:
                continue  # keep taking items so that put() never waits for ever
            try:
                self._write(item)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def put(self, item) -> None:
        if not self._depth:
            self._write(item)
            return
        self._raise()
        self._queue.put(item)

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._depth:
            return
        self._stop = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self._queue.put(_END)
        self._thread.join()
        if exc_type is None:
            self._raise()


class StopOnSignal:
    """SIGINT/SIGTERM during the loop: finish the frame being written, then stop.
    A second signal raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after the frame being written (again to stop now)",
              file=sys.stderr)  # fmt: skip

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # handlers live in the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def span(written: list[int]) -> str:
    """The frames written (one block in every direction), as messages name them."""
    return f"frames {min(written):05d}..{max(written):05d}"


def stopped(written: list[int]) -> str:
    """Where a run stopped: the next frame going forward from 0, else how many frames it wrote."""
    if sorted(written) == list(range(len(written))):
        return f"stopped at frame {len(written)}"
    return f"stopped after {len(written)} frame{'s' if len(written) != 1 else ''}"


def drop_unrecorded(out: Path, index: int | None) -> None:
    """Remove frame ``index`` if it was written when the run stopped (it is not in the record)."""
    if index is None:
        return
    for ext in ("png", "jpg"):
        (out / f"{index:05d}.{ext}").unlink(missing_ok=True)


def write_record(out: Path, record: dict) -> None:
    from msn_core.io import atomic_write

    record["frames"].sort(key=lambda f: f["index"])  # frame order, whatever the direction
    with atomic_write(out / "propagation.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def say_stopped(out: Path, written: list[int], video: bool) -> None:
    if written:
        what = f"{span(written)}{' and overlay.mp4' if video else ''} are complete in {out}"
    else:
        what = f"no frame was written to {out}"
    print(f"interrupted: {stopped(written)}; {what} (propagation.json: interrupted_at={len(written)})",
          file=sys.stderr)  # fmt: skip


def write_overlay(out: Path, source, written: set[int]) -> None:
    """overlay.mp4 of a run that did not go forward: the video read again, in order, with the masks
    written (the frames without a result are left out)."""
    from msn_core.io import VideoWriter, overlay_labels, read_mask, resize_labels

    with VideoWriter(out / "overlay.mp4", source.fps) as writer:
        for index, frame in enumerate(source):
            if index in written:
                labels = resize_labels(read_mask(out / f"{index:05d}.png"), frame.shape[:2])
                writer.write(overlay_labels(frame, labels))
