"""The Segment tab's state and its handlers before a run: loading a clip (an example or an upload),
removing it, and the first-frame annotation (clicks, brush, mask file, ground truth)."""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from demos import annotate
from demos.common import COLOUR_NAMES, Clip, open_example, open_upload, user_errors
from demos.corrections import RunResult
from demos.limits import Limits
from msn_core import viz
from msn_core.errors import InputError
from msn_core.io import object_ids

VIEW_SIDE = 720  # long side of the annotation view
NO_VIDEO = "No video: upload a video or a zip of frames, or pick a bundled example and press **Load example**."


@dataclass(eq=False)  # compared (and hashed) by identity: one lock per session
class Session:
    """One user's Segment tab: the clip, the clicks and the current annotation. ``failed`` names
    the upload that could not be read (the tab then has no clip, never the previous one);
    ``result``: the last finished run, whose frames can be corrected."""

    clip: Clip | None = None
    clicks: list = field(default_factory=list)  # clicks and boxes (msn_core.clicks), in order
    corner: tuple[int, int] | None = None  # the first corner of a box being drawn
    labels: np.ndarray | None = None
    how: str = ""
    failed: str = ""
    result: RunResult | None = None  # the last finished run, to correct (demos.segment_fix)


_LOCKS: weakref.WeakKeyDictionary[Session, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _lock(s: Session) -> threading.Lock:
    """The session's lock: its clicks are applied one at a time, in order, whatever the queue's
    concurrency (two quick clicks are both queued; neither may overwrite the other's result)."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(s, threading.Lock())


def view_scale(clip: Clip) -> float:
    """Small frames are shown enlarged so they are easy to click on."""
    return max(1.0, VIEW_SIDE / max(clip.out_size))


def preview(s: Session) -> np.ndarray | None:
    """The first frame with the current annotation and clicks, at the display scale."""
    if s.clip is None:
        return None
    img = s.clip.first if s.labels is None else viz.overlay(s.clip.first, s.labels, alpha=0.55)
    k = view_scale(s.clip)
    if k > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_LINEAR)
    return viz.draw_clicks(img, s.clicks, scale=k, corner=s.corner)


def _object_name(o: int) -> str:
    return f"object {o} ({COLOUR_NAMES[o - 1]})" if 1 <= o <= len(COLOUR_NAMES) else f"object {o}"


def describe_annotation(s: Session) -> str:
    if s.clip is None:
        return NO_VIDEO
    if s.corner is not None:
        return annotate.waiting_corner(s.corner)
    if s.labels is None or not object_ids(s.labels):
        return "No object marked yet: click on the object (or use a brush, a mask file or the ground truth)."
    total = s.labels.size
    parts = [f"{_object_name(o)}: {100 * (s.labels == o).sum() / total:.1f} %" for o in object_ids(s.labels)]
    how = s.how
    if how == "clicks":
        how = annotate.count_marks(s.clicks)
    return f"**{len(parts)} object(s)** from {how}: " + " · ".join(parts)


def _loaded(s: Session, limits: Limits):
    clip = s.clip
    editor = {"background": clip.first, "layers": [], "composite": None}
    n = clip.count()
    if n > 2:
        slider = gr.update(maximum=n, value=min(limits.default_frames, n))
    else:  # a gr.Slider needs minimum < maximum: a one- or two-frame clip gets a 1..2 slider
        slider = gr.update(minimum=1, maximum=2, value=n)
    return (
        s,
        clip.describe(),
        preview(s),
        editor,
        gr.update(visible=bool(clip.truth)),
        slider,
        describe_annotation(s),
    )


def emptied(s: Session, info: str = NO_VIDEO):
    """The outputs of :func:`_loaded` for a tab without a video: no frame, no mask, ``info``."""
    return s, info, None, None, gr.update(visible=False), gr.skip(), describe_annotation(s)


def load_example(name: str, limits: Limits):
    with user_errors("Loading the example"):
        clip = open_example(name, limits)
        s = Session(clip=clip)
        if clip.truth:  # start from the ground truth: one click on Propagate shows the method
            s.labels, s.how = clip.truth_labels(1)[0], "the DAVIS ground truth"
        return _loaded(s, limits)


def load_upload(path: str | None, limits: Limits):
    """Open an upload (a generator, for the page). One that cannot be read empties the tab (the
    previous clip must not stay behind to be propagated by mistake), then the error is raised."""
    try:
        with user_errors("Reading the upload"):
            outputs = _loaded(Session(clip=open_upload(path, limits)), limits)
    except gr.Error:
        name = Path(path).name if path else "the upload"
        yield emptied(Session(failed=name), f"⚠️ '{name}' could not be read, so no video is loaded. {NO_VIDEO}")
        raise
    yield outputs


def remove_upload():
    """The upload was removed (its ×): the tab holds no video any more."""
    return emptied(Session())


def _need_clip(s: Session | None) -> Clip:
    if s is not None and s.clip is None and s.failed:
        raise InputError(
            f"there is no usable video: '{s.failed}' could not be read; upload another video or a zip "
            "of frames, or pick a bundled example"
        )
    if s is None or s.clip is None:
        raise InputError("there is no video: load a video first (pick an example or upload a file)")
    return s.clip


def add_click(s: Session, x: float, y: float, obj: int, positive: str | bool):
    with user_errors("Adding the click"), _lock(s) if isinstance(s, Session) else contextlib.nullcontext():
        clip = _need_clip(s)
        x, y, obj = annotate.check_click(x, y, obj, clip.out_size)
        clicks, s.corner = annotate.add_point(s.clicks if s.how == "clicks" else [], s.corner, x, y, obj, positive)
        if s.corner is None:  # a click, or a box completed
            s.clicks = clicks
            s.labels, s.how = annotate.labels_from_clicks(clip.first, s.clicks), "clicks"
        return s, preview(s), describe_annotation(s)


def on_select(s: Session, obj: int, positive: str, evt: gr.SelectData):
    """A click on the shown (possibly enlarged) first frame."""
    k = view_scale(s.clip) if s is not None and s.clip is not None else 1.0
    x, y = evt.index[:2]
    return add_click(s, int(x / k), int(y / k), obj, positive)


def undo_click(s: Session):
    with user_errors("Undo"), _lock(s) if isinstance(s, Session) else contextlib.nullcontext():
        clip = _need_clip(s)
        if s.corner is not None:
            s.corner = None
        elif s.how == "clicks" and s.clicks:
            s.clicks.pop()
            s.labels = annotate.labels_from_clicks(clip.first, s.clicks) if s.clicks else None
        return s, preview(s), describe_annotation(s)


def clear(s: Session):
    with user_errors("Clear"):
        _need_clip(s)
        s.clicks, s.labels, s.how, s.corner = [], None, "", None
        return s, preview(s), describe_annotation(s)


def use_brush(s: Session, editor: dict | None):
    with user_errors("Using the brush strokes"):
        clip = _need_clip(s)
        labels = annotate.labels_from_layers((editor or {}).get("layers"), clip.out_size)
        if not object_ids(labels):
            raise InputError("no brush strokes found: paint over the object(s) in the Brush editor first")
        s.clicks, s.labels, s.how, s.corner = [], labels, "brush strokes", None
        return s, preview(s), describe_annotation(s)


def use_mask_file(s: Session, path: str | None):
    with user_errors("Reading the mask"):
        clip = _need_clip(s)
        if not path:
            raise InputError("no mask file was uploaded; upload a PNG mask of the first frame")
        s.clicks, s.labels, s.how, s.corner = [], annotate.labels_from_file(path, clip.out_size), "the uploaded mask", None
        return s, preview(s), describe_annotation(s)


def use_truth(s: Session):
    with user_errors("Using the ground truth"):
        clip = _need_clip(s)
        if not clip.truth:
            raise InputError("this video has no ground truth; only the bundled examples do")
        s.clicks, s.labels, s.how, s.corner = [], clip.truth_labels(1)[0], "the DAVIS ground truth", None
        return s, preview(s), describe_annotation(s)
