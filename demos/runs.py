"""What the Segment and Compare tabs' mask runs share: the checks and set-up before propagating
(adaptation steps, the pipeline, test-time flip, adapting in a worker thread), the clip's ground
truth and the J of each frame against it, and the light frame results kept in session state."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

import msn_core
from demos.common import Clip, device, get_pipeline, with_flip
from demos.limits import Limits
from msn_core.errors import InputError
from msn_core.io import fit_size, object_ids
from msn_core.metrics import mean_iou


@dataclass
class MaskRun:
    """A mask run ready to propagate: the (adapted, flipping) pipeline and the clip's ground truth."""

    pipe: msn_core.Pipeline
    notice: str | None  # None when trained weights were loaded
    total: int  # frames the run will see
    side: int  # long side the network runs at
    steps: int  # adaptation steps taken first
    adapt_seconds: float
    truth: list[np.ndarray]  # ground-truth id maps of the first ``total`` frames ([] if unknown)
    objects: list[int]  # object ids of the first ground-truth frame
    same_ids: bool  # the annotation marks the truth's objects with the truth's ids

    def j(self, index: int, pred: np.ndarray) -> float | None:
        """J of frame ``index`` against the ground truth, None where there is none (frame 0 is
        given): averaged over objects when the annotation uses the truth's ids, else of the
        foreground."""
        if not 0 < index < len(self.truth):
            return None
        gt = self.truth[index]
        return mean_iou(gt, pred, self.objects) if self.same_ids else mean_iou(gt > 0, pred > 0, [1])

    def network_size(self, clip: Clip) -> str:
        """The frame size the network ran at, ``W×H``."""
        h, w = fit_size(clip.out_size, self.side)
        return f"{w}×{h}"


def start_mask_run(clip: Clip, labels: np.ndarray, propagator: str, n_frames: float, limits: Limits,
                   progress, adapt_steps: float, flip: bool, status, oracle: str = ""):  # fmt: skip
    """Check the request, load the pipeline (mirrored guides too with ``flip``) and, with
    ``adapt_steps`` > 0, adapt it to the annotated first frame, yielding ``status(message)`` while
    it adapts; returns the :class:`MaskRun` (``run = yield from start_mask_run(...)``).
    ``oracle``: what in the request needs the ground truth of every frame ('' when nothing does)."""
    if oracle and not clip.truth:
        raise InputError(f"{oracle} needs the ground truth of every frame: use a bundled example")
    steps = int(adapt_steps or 0)
    if not 0 <= steps <= limits.max_adapt_steps:
        raise InputError(f"adaptation steps must be between 0 and {limits.max_adapt_steps}, got {steps}")
    total = clip.count(n_frames)
    progress(0, desc="loading the networks")
    side = limits.network_side(steps, propagator)
    pipe, notice = get_pipeline(propagator, "mask", side)
    pipe = with_flip(pipe, flip)  # before adapting: a flipping pipeline adapts on the mirror too
    start = time.perf_counter()
    if steps:
        first = next(iter(clip.frames(1)))
        pipe = yield from adapting(pipe, first, labels, steps, progress, status)
    adapt_seconds = time.perf_counter() - start
    truth = clip.truth_labels(total) if clip.truth else []
    objects = truth_objects(truth[0]) if truth else []
    same_ids = objects == object_ids(labels)
    return MaskRun(pipe, notice, total, side, steps, adapt_seconds, truth, objects, same_ids)


def truth_objects(truth0: np.ndarray) -> list[int]:
    return [int(o) for o in np.unique(truth0) if 0 < o < 255]


def strip(result: msn_core.FrameResult) -> msn_core.FrameResult:
    """A frame result without its images (what the figures need, kept in session state)."""
    return msn_core.FrameResult(
        index=result.index,
        frame=None,  # type: ignore[arg-type]
        labels=None,
        colors=None,
        guides=list(result.guides),
        candidates=list(result.candidates),
        scores=dict(result.scores),
        quality=dict(result.quality),
        selector=result.selector,
        seconds=result.seconds,
    )


# ------------------------------------------------------------------------ adaptation


class _Stopped(Exception):
    """The run that asked for an adaptation went away (cancelled, closed tab)."""


def adapting(pipe: msn_core.Pipeline, frame: np.ndarray, labels: np.ndarray | None, steps: int, progress, status):
    """Adapt ``pipe`` to the annotated frame in a worker thread (``msn_core.adapt``), yielding
    ``status(message)`` twice a second so the UI shows the steps and a Cancel is noticed; returns
    the adapted pipeline (``pipe = yield from adapting(...)``). A run that is cancelled or
    closed stops the worker at its next step."""
    done, stop, box = threading.Event(), threading.Event(), {"step": 0}

    def on_step(step: int, total: int, loss: float) -> None:
        box["step"], box["loss"] = step, loss
        if stop.is_set():
            raise _Stopped

    def work() -> None:
        try:
            box["pipe"] = msn_core.adapt(pipe, frame, labels, msn_core.AdaptConfig(steps=steps), on_step=on_step)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="adapt", daemon=True).start()
    try:
        while not done.wait(0.5):
            step = box["step"]
            progress((step, steps), desc=f"adapting to the annotation: step {step} of {steps}")
            loss = f" (loss {box['loss']:.3f})" if "loss" in box else ""
            yield status(f"Adapting the network to the annotated object… step {step} of {steps}{loss}")
    finally:
        stop.set()
    if "error" in box:
        raise box["error"]
    return box["pipe"]


def default_propagator(limits: Limits) -> str:
    """TPN + STM-1 where the adaptation slider starts on (a GPU: the best adapted configuration in
    results/evaluation.md), else STM-1 (the best network without adaptation there)."""
    return "tpn+stm" if limits.adapt_steps_default(device()) > 0 else "stm"
