"""What ``msn propagate`` writes into --out besides the frames, and how it stops: the record, the
overlay of a run that did not go forward, the messages, and SIGINT/SIGTERM handling."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path


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
