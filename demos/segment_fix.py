"""Segment tab, after a run: scrub to any frame, correct its mask (clicks, brush, a mask file),
propagate again from it (forward, backward or both) over only the frames it changes, and undo a
correction. The slicing itself is in :mod:`demos.corrections`."""

from __future__ import annotations

import contextlib
import time
from itertools import islice

import cv2
import gradio as gr
import numpy as np

from demos import annotate, corrections
from demos.common import user_errors
from demos.corrections import RunResult, ranges
from demos.segment_state import Session, _lock, _need_clip, view_scale
from msn_core import viz
from msn_core.errors import InputError
from msn_core.io import object_ids

DIRECTION_CHOICES = [("forward (to the next corrected frame or the end)", "forward"),
                     ("backward (to the previous corrected frame or frame 0)", "backward"),
                     ("both", "both")]  # fmt: skip
HELP = ("Pick a frame, correct its mask (clicks, a box, the brush or a mask file; objects you do not touch keep their "
        "mask, a new object id adds an object from this frame on), then propagate from it. Only the frames "
        "between it and the next annotated frame that way (or the end) are recomputed.")  # fmt: skip
CLICK_HINT = "Each click or box refines that object's mask on this frame; the other objects keep theirs."
NO_RUN = "there is no run to correct yet: press Propagate first, then correct a frame"


def _need_result(s: Session | None) -> RunResult:
    _need_clip(s)
    if s.result is None:
        raise InputError(NO_RUN)
    return s.result


def _locked(s):
    return _lock(s) if isinstance(s, Session) else contextlib.nullcontext()


def read_frames(s: Session) -> corrections.RunFrames:
    """The run's frames, as the run read them: decoded from the video as they are used, not held."""
    return corrections.RunFrames(s.clip.frames, s.result.count)


def _frame(s: Session, t: int) -> np.ndarray:
    """Frame ``t`` of the run, decoded up to it without keeping the frames before it."""
    for frame in islice(s.clip.frames(s.result.count), t, t + 1):
        return frame
    raise InputError(f"the video now has fewer than {t + 1} frames but the run had {s.result.count}; run it again")


def _shown(s: Session, t: int) -> np.ndarray:
    """Frame ``t`` with its correction being drawn (or its mask) and the clicks, enlarged as the
    first frame is."""
    r = s.result
    labels = r.draft if r.draft is not None and r.draft_frame == t else r.masks[t]
    img = viz.overlay(_frame(s, t), labels, alpha=0.55)
    k = view_scale(s.clip)
    if k > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_LINEAR)
    return viz.draw_clicks(img, r.clicks, scale=k, corner=r.corner if r.draft_frame == t else None)


def describe(r: RunResult, t: int) -> str:
    if t in r.fixes:
        where = f"corrected here, propagated {r.fixes[t].direction}"
    elif t in r.base:
        where = "the run's annotated frame"
    else:
        kind = "correction of frame" if r.owner[t] in r.fixes else "annotation of frame"
        where = f"mask propagated from the {kind} {r.owner[t]}"
    line = f"**Frame {t}** (0–{r.count - 1}): {where}."
    if r.corner is not None and r.draft_frame == t:
        line += "  \n" + annotate.waiting_corner(r.corner)
    if r.draft is not None and r.draft_frame == t:
        ids = ", ".join(map(str, object_ids(r.draft))) or "none"
        line += f"  \nCorrection drawn ({r.how}; objects {ids}): press **Propagate from this frame**."
    return line


def _fix_list(r: RunResult):
    choices = [(f"frame {k} ({fix.direction})", k) for k, fix in sorted(r.fixes.items())]
    return gr.update(choices=choices, value=choices[-1][1] if choices else None)


def _fixes_md(r: RunResult) -> str:
    if not r.fixes:
        return "No corrected frame yet."
    return "Corrected frames: " + " · ".join(f"**{k}** ({fix.direction})" for k, fix in sorted(r.fixes.items()))


def refresh(s: Session | None):
    """The correction panel for the session's run (hidden when there is none)."""
    if s is None or s.clip is None or s.result is None:
        return gr.update(visible=False), gr.skip(), None, "", None, gr.update(choices=[], value=None), ""
    r = s.result
    t = r.draft_frame if r.draft_frame is not None and r.draft_frame < r.count else 0
    r.draft_frame = t
    slider = gr.update(maximum=max(1, r.count - 1), value=t, info=_slider_info(r))
    return gr.update(visible=True), slider, _shown(s, t), describe(r, t), _editor(s, t), _fix_list(r), _fixes_md(r)


def _slider_info(r: RunResult) -> str:
    marked = ", ".join(map(str, sorted(r.fixes)))
    return f"corrected: {marked}" if marked else "pick the frame to correct"


def _editor(s: Session, t: int) -> dict:
    return {"background": viz.overlay(_frame(s, t), s.result.masks[t], alpha=0.35), "layers": [], "composite": None}


def show_frame(s: Session, t):
    """Scrub to frame ``t``: its mask, the brush editor on it and an empty mask-file input (a file
    belongs to the frame it was given for); a correction drawn on another frame is dropped."""
    with user_errors("Showing the frame"), _locked(s):
        r = _need_result(s)
        t = r.check_frame(t)
        if t != r.draft_frame:
            r.draft_frame, r.clicks, r.draft, r.how, r.corner = t, [], None, "", None
        return _shown(s, t), describe(r, t), _editor(s, t), None


def _drawn(s: Session) -> tuple[str, str]:
    r = s.result
    return _shown(s, r.draft_frame), describe(r, r.draft_frame)


def _over(current: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The objects ``new`` marks replace theirs in ``current``; the other objects stay."""
    out = current.copy()
    ids = object_ids(new)
    out[np.isin(out, ids)] = 0
    out[new > 0] = new[new > 0]
    return out


def fix_click(s: Session, x, y, obj, positive):
    with user_errors("Adding the click"), _locked(s):
        r = _need_result(s)
        t = r.check_frame(r.draft_frame or 0)
        h, w = s.clip.out_size
        if x is None or y is None or not (0 <= x < w and 0 <= y < h):
            raise InputError(f"click ({x}, {y}) is outside the {w}×{h} frame {t}")
        x, y, obj = annotate.check_click(x, y, obj, s.clip.out_size)
        clicks, r.corner = annotate.add_point(r.clicks if r.how == "clicks" else [], r.corner, x, y, obj, positive)
        r.draft_frame = t
        if r.corner is None:  # a click, or a box completed
            r.clicks, r.how = clicks, "clicks"
            r.draft = _over(r.masks[t], annotate.labels_from_clicks(_frame(s, t), r.clicks))
        return _drawn(s)


def fix_select(s: Session, obj, positive, evt: gr.SelectData):
    """A click on the shown (possibly enlarged) frame."""
    k = view_scale(s.clip) if s is not None and s.clip is not None else 1.0
    x, y = evt.index[:2]
    return fix_click(s, int(x / k), int(y / k), obj, positive)


def fix_clear(s: Session):
    """Drop the correction being drawn (clicks, strokes or file)."""
    with user_errors("Clear"), _locked(s):
        r = _need_result(s)
        r.clicks, r.draft, r.how, r.corner = [], None, "", None
        return _drawn(s)


def fix_brush(s: Session, editor: dict | None):
    with user_errors("Using the brush strokes"), _locked(s):
        r = _need_result(s)
        t = r.check_frame(r.draft_frame or 0)
        painted = annotate.labels_from_layers((editor or {}).get("layers"), s.clip.out_size)
        if not object_ids(painted):
            raise InputError("no brush strokes found: paint over the object(s) on the frame first")
        r.draft_frame, r.clicks, r.how, r.corner = t, [], "brush strokes", None
        r.draft = _over(r.masks[t], painted)
        return _drawn(s)


def fix_mask(s: Session, path: str | None):
    with user_errors("Reading the mask"), _locked(s):
        r = _need_result(s)
        t = r.check_frame(r.draft_frame or 0)
        if not path:
            raise InputError(f"no mask file was uploaded; upload a PNG mask of frame {t}")
        r.draft_frame, r.clicks, r.how, r.corner = t, [], "the uploaded mask", None
        r.draft = annotate.labels_from_file(path, s.clip.out_size)
        return _drawn(s)


def _j_line(r: RunResult) -> str:
    js = [j for t, labels in enumerate(r.masks) if (j := r.run.j(t, labels)) is not None]
    if not js:
        return ""
    what = "J" if r.run.same_ids else "J of the foreground"
    return f"  \nMean {what} against the DAVIS ground truth now (frames 1–{len(js)}): **{np.mean(js):.3f}**"


def propagate_fix(s: Session, t, direction: str, progress=None):
    """Propagate the correction drawn on frame ``t`` ``direction``; returns the status, the last
    frame propagated (for the live preview, which must not keep showing the old mask), the overlay
    video, the downloads and the refreshed panel."""
    with user_errors("Propagating the correction"), _locked(s):
        r = _need_result(s)
        t = r.check_frame(t)
        if r.draft is None or r.draft_frame != t:
            raise InputError(f"frame {t} has no correction yet: mark it with clicks, the brush or a mask file first")
        if not object_ids(r.draft):
            raise InputError(f"the correction of frame {t} marks no object: mark at least one object")
        (progress or (lambda *a, **k: None))(0, desc=f"propagating {direction} from frame {t}")
        start = time.perf_counter()
        frames = read_frames(s)
        changed = corrections.correct(r, frames, t, r.draft, direction)
        files, live = corrections.write_outputs(r, frames, changed, corrections.last_computed(changed, direction))
        r.clicks, r.draft, r.how, r.corner = [], None, "", None
        status = (f"**Frame {t} corrected**: frames {ranges(changed)} propagated {direction} again in "
                  f"{time.perf_counter() - start:.1f} s; the other frames are unchanged.")  # fmt: skip
        return (status + _j_line(r), live, files[1], files, *refresh(s))


def undo_fix(s: Session, k, progress=None):
    """Remove the correction of frame ``k`` and recompute the frames it governed."""
    with user_errors("Undoing the correction"), _locked(s):
        r = _need_result(s)
        if k is None or k == "":
            raise InputError("choose a corrected frame to undo" if r.fixes else "there is no correction to undo")
        k = r.check_frame(k)
        (progress or (lambda *a, **k: None))(0, desc=f"undoing the correction of frame {k}")
        frames = read_frames(s)
        changed = corrections.undo(r, frames, k)
        files, live = corrections.write_outputs(r, frames, changed, changed[-1] if changed else None)
        if r.draft_frame == k:
            r.clicks, r.draft, r.how, r.corner = [], None, "", None
        status = f"**Correction of frame {k} undone**: frames {ranges(changed)} recomputed from the other annotations."
        return (status + _j_line(r), live if live is not None else gr.skip(), files[1], files, *refresh(s))


# -------------------------------------------------------------------------- layout


def build(limits, state: gr.State, status, live, video, files, object_choices) -> tuple:
    """The correction panel (inside the Segment tab's right column, hidden until a run ends);
    returns ``(refresh, outputs)`` to chain after the run and the loads."""
    with gr.Group(visible=False, elem_id="fix-panel") as panel:
        gr.Markdown(f"### 4 · Correct a frame and propagate again\n{HELP}")
        frame = gr.Slider(0, max(1, limits.max_frames - 1), value=0, step=1, label="Frame", elem_id="fix-frame")
        view = gr.Image(label="Frame and its mask", show_label=False, interactive=False, elem_id="fix-view",
                        buttons=["fullscreen"])  # fmt: skip
        note = gr.Markdown("", elem_id="fix-note")
        with gr.Tabs():
            with gr.Tab("Clicks", id="fix-clicks"):
                obj = gr.Radio(object_choices, value=1, label="Object", elem_id="fix-objects")
                with gr.Row():
                    polarity = gr.Radio(annotate.CLICK_MODES, value="positive", label="Click", scale=2,
                                        info=annotate.CLICK_MODES_HELP)  # fmt: skip
                    clear_btn = gr.Button("Clear the correction", size="sm", scale=1)
                gr.Markdown(CLICK_HINT, elem_classes=["msn-hint"])
                x_num, y_num = gr.Number(visible=False), gr.Number(visible=False)
                click_btn = gr.Button(visible=False)
            with gr.Tab("Brush", id="fix-brush-tab"):
                editor = gr.ImageEditor(
                    label="Paint each object in its colour (a painted object is replaced by the strokes)",
                    elem_id="fix-editor", type="numpy", image_mode="RGBA", format="png", sources=[],
                    transforms=[], layers=False,
                    brush=gr.Brush(colors=[viz.object_colour(i) for i in range(1, annotate.MAX_OBJECTS + 1)],
                                   default_color=viz.object_colour(1), default_size=10, color_mode="fixed"),
                )  # fmt: skip
                brush_btn = gr.Button("Use the brush strokes", size="sm")
            with gr.Tab("Mask file", id="fix-file-tab"):
                mask_file = gr.File(label="This frame's mask (PNG: binary, grey ids or DAVIS palette)",
                                    file_types=[".png"], height=140, elem_id="fix-mask-file")  # fmt: skip
        direction = gr.Radio(DIRECTION_CHOICES, value="forward", label="Propagate", elem_id="fix-direction")
        propagate_btn = gr.Button("Propagate from this frame", variant="primary", elem_id="fix-run")
        fixes_md = gr.Markdown("", elem_id="fix-list-note")
        with gr.Row():
            fix_list = gr.Dropdown([], value=None, label="Corrected frames", scale=3, elem_id="fix-list")
            undo_btn = gr.Button("Undo this correction", size="sm", scale=1, elem_id="fix-undo")

    panel_outputs = [panel, frame, view, note, editor, fix_list, fixes_md]
    drawn = [view, note]
    frame.change(show_frame, [state, frame], [view, note, editor, mask_file], api_name="segment_fix_frame",
                 trigger_mode="always_last", show_progress="minimal")  # fmt: skip
    view.select(fix_select, [state, obj, polarity], drawn, api_visibility="private", trigger_mode="multiple",
                show_progress="minimal")  # fmt: skip
    click_btn.click(fix_click, [state, x_num, y_num, obj, polarity], drawn, api_name="segment_fix_click")
    clear_btn.click(fix_clear, state, drawn, api_name="segment_fix_clear")
    brush_btn.click(fix_brush, [state, editor], drawn, api_name="segment_fix_brush")
    mask_file.upload(fix_mask, [state, mask_file], drawn, api_name="segment_fix_mask")
    outputs = [status, live, video, files, *panel_outputs]

    def _propagate(s, t, d, progress=gr.Progress()):  # noqa: B008
        return propagate_fix(s, t, d, progress)

    def _undo(s, k, progress=gr.Progress()):  # noqa: B008
        return undo_fix(s, k, progress)

    propagate_btn.click(_propagate, [state, frame, direction], outputs, api_name="segment_fix_propagate",
                        concurrency_id="propagate", concurrency_limit=limits.concurrency)  # fmt: skip
    undo_btn.click(_undo, [state, fix_list], outputs, api_name="segment_fix_undo",
                   concurrency_id="propagate", concurrency_limit=limits.concurrency)  # fmt: skip
    return refresh, panel_outputs
