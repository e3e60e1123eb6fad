"""Segment tab: a video, a first-frame annotation, a propagator and a selector in;
an overlay video, DAVIS palette masks, an mp4 and RGBA cut-outs out."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import cv2
import gradio as gr
import numpy as np

import msn_core
from demos import annotate
from demos.common import (
    COLOUR_NAMES,
    FLIP_HELP,
    PROPAGATORS,
    SEGMENT_SELECTORS,
    Clip,
    adapt_help,
    default_example,
    device,
    on_gpu,
    open_example,
    open_upload,
    run_dir,
    user_errors,
)
from demos.limits import Limits
from demos.runs import default_propagator, start_mask_run
from msn_core import viz
from msn_core.errors import InputError
from msn_core.io import VideoWriter, object_ids, write_mask_png, write_rgba_cutout, zip_directory

VIEW_SIDE = 720  # long side of the annotation view
VIDEO_TYPES = [".mp4", ".webm", ".mov", ".gif", ".avi", ".mkv", ".zip"]
OBJECT_CHOICES = [(f"object {i} ({COLOUR_NAMES[i - 1]})", i) for i in range(1, annotate.MAX_OBJECTS + 1)]


@dataclass
class Session:
    """One user's Segment tab: the clip, the clicks and the current annotation."""

    clip: Clip | None = None
    clicks: list[viz.Click] = field(default_factory=list)
    labels: np.ndarray | None = None
    how: str = ""


# ------------------------------------------------------------------------ handlers


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
    return viz.draw_clicks(img, [(round(x * k), round(y * k), o, p) for x, y, o, p in s.clicks])


def _object_name(o: int) -> str:
    return f"object {o} ({COLOUR_NAMES[o - 1]})" if 1 <= o <= len(COLOUR_NAMES) else f"object {o}"


def describe_annotation(s: Session) -> str:
    if s.clip is None:
        return "Load a video first."
    if s.labels is None or not object_ids(s.labels):
        return "No object marked yet: click on the object (or use a brush, a mask file or the ground truth)."
    total = s.labels.size
    parts = [f"{_object_name(o)}: {100 * (s.labels == o).sum() / total:.1f} %" for o in object_ids(s.labels)]
    return f"**{len(parts)} object(s)** from {s.how}: " + " · ".join(parts)


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


def load_example(name: str, limits: Limits):
    with user_errors("Loading the example"):
        clip = open_example(name, limits)
        s = Session(clip=clip)
        if clip.truth:  # start from the ground truth: one click on Propagate shows the method
            s.labels, s.how = clip.truth_labels(1)[0], "the DAVIS ground truth"
        return _loaded(s, limits)


def load_upload(path: str | None, limits: Limits):
    with user_errors("Reading the upload"):
        return _loaded(Session(clip=open_upload(path, limits)), limits)


def _need_clip(s: Session) -> Clip:
    if s is None or s.clip is None:
        raise InputError("load a video first (pick an example or upload a file)")
    return s.clip


def add_click(s: Session, x: float, y: float, obj: int, positive: str | bool):
    with user_errors("Adding the click"):
        clip = _need_clip(s)
        x, y, obj = annotate.check_click(x, y, obj, clip.out_size)
        pos = positive if isinstance(positive, bool) else str(positive).lower().startswith("pos")
        if s.how != "clicks":
            s.clicks, s.labels = [], None
        s.clicks.append((x, y, obj, pos))
        s.labels, s.how = annotate.labels_from_clicks(clip.first, s.clicks), "clicks"
        return s, preview(s), describe_annotation(s)


def on_select(s: Session, obj: int, positive: str, evt: gr.SelectData):
    """A click on the shown (possibly enlarged) first frame."""
    k = view_scale(s.clip) if s is not None and s.clip is not None else 1.0
    x, y = evt.index[:2]
    return add_click(s, int(x / k), int(y / k), obj, positive)


def undo_click(s: Session):
    with user_errors("Undo"):
        clip = _need_clip(s)
        if s.how == "clicks" and s.clicks:
            s.clicks.pop()
            s.labels = annotate.labels_from_clicks(clip.first, s.clicks) if s.clicks else None
        return s, preview(s), describe_annotation(s)


def clear(s: Session):
    with user_errors("Clear"):
        _need_clip(s)
        s.clicks, s.labels, s.how = [], None, ""
        return s, preview(s), describe_annotation(s)


def use_brush(s: Session, editor: dict | None):
    with user_errors("Using the brush strokes"):
        clip = _need_clip(s)
        labels = annotate.labels_from_layers((editor or {}).get("layers"), clip.out_size)
        if not object_ids(labels):
            raise InputError("no brush strokes found: paint over the object(s) in the Brush editor first")
        s.clicks, s.labels, s.how = [], labels, "brush strokes"
        return s, preview(s), describe_annotation(s)


def use_mask_file(s: Session, path: str | None):
    with user_errors("Reading the mask"):
        clip = _need_clip(s)
        if not path:
            raise InputError("no mask file was uploaded; upload a PNG mask of the first frame")
        s.clicks, s.labels, s.how = [], annotate.labels_from_file(path, clip.out_size), "the uploaded mask"
        return s, preview(s), describe_annotation(s)


def use_truth(s: Session):
    with user_errors("Using the ground truth"):
        clip = _need_clip(s)
        if not clip.truth:
            raise InputError("this video has no ground truth; only the bundled examples do")
        s.clicks, s.labels, s.how = [], clip.truth_labels(1)[0], "the DAVIS ground truth"
        return s, preview(s), describe_annotation(s)


def run(
    s: Session,
    propagator: str,
    selector: str,
    n_frames: float,
    limits: Limits,
    request: gr.Request | None = None,
    progress: gr.Progress | None = None,
    adapt_steps: float = 0,
    flip: bool = False,
):
    """Propagate the annotation; streams a live preview, ends with the video and downloads.
    ``adapt_steps`` > 0 first fine-tunes the network on the annotated frame (msn_core.adapt);
    ``flip`` reads every guide mirrored too (test-time flip)."""
    progress = progress or (lambda *a, **k: None)
    with user_errors("Propagation"), contextlib.ExitStack() as stack:
        clip = _need_clip(s)
        if s.labels is None or not object_ids(s.labels):
            raise InputError("mark at least one object on the first frame before propagating")
        run = yield from start_mask_run(
            clip, s.labels, propagator, n_frames, limits, progress, adapt_steps, flip,
            lambda m: (m, gr.skip(), gr.skip(), gr.skip()),
            oracle="the oracle selector" if selector.startswith("oracle") else "",
        )  # fmt: skip
        total = run.total
        work = stack.enter_context(run_dir(request, "segment", limits.session_ttl_s))
        js: list[float] = []
        start = time.perf_counter()
        results = run.pipe.propagate(
            clip.frames(total),
            s.labels,
            selector=selector,
            ground_truth=run.truth if selector.startswith("oracle") else None,
        )
        with VideoWriter(work / "overlay.mp4", clip.fps) as writer:
            for r in results:
                shown = viz.overlay(r.frame, r.labels)
                writer.write(shown)
                write_mask_png(work / "masks" / f"{r.index:05d}.png", r.labels)
                write_rgba_cutout(work / "cutouts" / f"{r.index:05d}.png", r.frame, r.labels)
                if (j := run.j(r.index, r.labels)) is not None:
                    js.append(j)
                progress((r.index + 1, total), desc=f"frame {r.index + 1} of {total}")
                if r.index % 3 == 0:
                    msg = f"Propagating… frame {r.index + 1} of {total} (guide: {r.guide})"
                    yield msg, shown, gr.skip(), gr.skip()
        n = writer.frames_written
        masks = zip_directory(work / "masks", work / f"{clip.name}_masks.zip")
        cutouts = zip_directory(work / "cutouts", work / f"{clip.name}_cutouts.zip")
        seconds = time.perf_counter() - start
        lines = [
            f"**Done**: {n} frames in {seconds:.1f} s ({seconds / n:.2f} s/frame), "
            f"{dict((v, k) for k, v in PROPAGATORS)[propagator]} with the **{selector}** selector"
            + (", test-time flip." if flip else ".")
        ]
        if run.steps:
            lines.append(
                f"Adapted to the annotation first: {run.steps} steps in {run.adapt_seconds:.1f} s; "
                f"the network ran at {run.network_size(clip)}."
            )
        else:
            lines.append(f"The network ran at {run.network_size(clip)}.")
        if js:
            what = "J" if run.same_ids else "J of the foreground"
            lines.append(
                f"Mean {what} against the DAVIS ground truth (frames 1–{len(js)}): **{np.mean(js):.3f}**"
            )
        if run.notice:
            lines.append(f"⚠️ {run.notice}")
        yield (
            "  \n".join(lines),
            shown,
            str(work / "overlay.mp4"),
            [str(masks), str(work / "overlay.mp4"), str(cutouts)],
        )


# -------------------------------------------------------------------------- layout


@dataclass
class SegmentUI:
    """What other tabs and the app need of the Segment tab."""

    state: gr.State
    example: gr.Dropdown
    loaded: list  # outputs of load_example, for the page-load event


def build(limits: Limits) -> SegmentUI:
    """The Segment tab's components and events (inside a ``gr.Tab``)."""
    examples = msn_core.list_examples()
    state = gr.State(Session(), time_to_live=limits.session_ttl_s)
    start = default_example()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=360):
            gr.Markdown("### 1 · Video")
            with gr.Row():
                example = gr.Dropdown(examples, value=start, label="Bundled example (DAVIS-2016)", scale=3)
                load_btn = gr.Button("Load example", scale=1, min_width=100)
            upload = gr.File(label=f"…or upload a video or a zip of frames (≤ {limits.max_upload_mb} MB)",
                             file_types=VIDEO_TYPES, height=160)  # fmt: skip
            info = gr.Markdown("", elem_classes=["msn-info"])
            gr.Markdown(
                "### 2 · Mark the object(s) on the first frame\n"
                "Click on an object to add a point (GrabCut cuts it out), or paint it, or upload a mask."
            )
            annot = gr.Image(label="First frame", show_label=False, interactive=False, elem_id="seg-annotation",
                             buttons=["fullscreen"])  # fmt: skip
            annot_md = gr.Markdown("")
            with gr.Tabs():
                with gr.Tab("Clicks"):
                    obj = gr.Radio(OBJECT_CHOICES, value=1, label="Object", elem_id="seg-objects")
                    with gr.Row(equal_height=False):
                        polarity = gr.Radio(
                            ["positive", "negative"], value="positive", label="Click", scale=2
                        )
                        with gr.Column(scale=1, min_width=120):
                            undo_btn = gr.Button("Undo click", size="sm")
                            clear_btn = gr.Button("Clear", size="sm")
                    gr.Markdown("Each click is refined with GrabCut. Negative clicks remove background.",
                                elem_classes=["msn-hint"])  # fmt: skip
                    x_num = gr.Number(visible=False)
                    y_num = gr.Number(visible=False)
                    click_btn = gr.Button(visible=False)
                with gr.Tab("Brush"):
                    editor = gr.ImageEditor(
                        label="Paint each object in its colour",
                        elem_id="seg-editor",
                        type="numpy",
                        image_mode="RGBA",
                        format="png",
                        sources=[],
                        transforms=[],
                        layers=False,
                        brush=gr.Brush(
                            colors=[viz.object_colour(i) for i in range(1, annotate.MAX_OBJECTS + 1)],
                            default_color=viz.object_colour(1),
                            default_size=10,
                            color_mode="fixed",
                        ),  # fmt: skip
                    )
                    brush_btn = gr.Button("Use the brush strokes", size="sm")
                with gr.Tab("Mask file"):
                    mask_file = gr.File(label="First-frame mask (PNG: binary, grey ids or DAVIS palette)",
                                        file_types=[".png"], height=160)  # fmt: skip
                with gr.Tab("Ground truth"):
                    truth_btn = gr.Button("Use the example's ground-truth mask", size="sm")
        with gr.Column(scale=1, min_width=360):
            gr.Markdown("### 3 · Propagate")
            with gr.Row():
                propagator = gr.Radio(PROPAGATORS, value=default_propagator(limits), label="Propagation network",
                                      info="TPN + STM-1: both, averaged; the best after adaptation, at twice the cost")  # fmt: skip
                selector = gr.Dropdown(SEGMENT_SELECTORS, value="msn", label="Guide selector",
                                       info="oracle: ground truth needed (examples)")  # fmt: skip
            n_frames = gr.Slider(2, limits.max_frames, value=limits.default_frames, step=1, label="Frames")
            adapt_steps = gr.Slider(
                0, limits.max_adapt_steps, value=limits.adapt_steps_default(device()), step=50,
                label="Adapt to the annotation first (steps)",
                info=adapt_help(limits),
            )  # fmt: skip
            flip = gr.Checkbox(value=True, label="Test-time flip", info=FLIP_HELP)  # it gained with and without adaptation
            with gr.Row():
                run_btn = gr.Button("Propagate", variant="primary", elem_id="seg-run")
                cancel_btn = gr.Button("Cancel", variant="stop")
            status = gr.Markdown("", elem_id="seg-status")
            live = gr.Image(label="Live preview", interactive=False, height=220)
            video = gr.Video(label="Overlay video", interactive=False, elem_id="seg-video")
            files = gr.File(label="Downloads: masks (DAVIS PNG zip) · overlay mp4 · RGBA cut-outs (zip)",
                            file_count="multiple", interactive=False)  # fmt: skip

    loaded = [state, info, annot, editor, truth_btn, n_frames, annot_md]
    edited = [state, annot, annot_md]
    load_btn.click(lambda name: load_example(name, limits), example, loaded, api_name="segment_load_example")
    example.input(lambda name: load_example(name, limits), example, loaded, api_visibility="private")
    upload.upload(lambda path: load_upload(path, limits), upload, loaded, api_name="segment_load_upload")
    annot.select(on_select, [state, obj, polarity], edited, api_visibility="private")
    click_btn.click(add_click, [state, x_num, y_num, obj, polarity], edited, api_name="segment_click")
    undo_btn.click(undo_click, state, edited, api_name="segment_undo")
    clear_btn.click(clear, state, edited, api_name="segment_clear")
    brush_btn.click(use_brush, [state, editor], edited, api_name="segment_use_brush")
    mask_file.upload(use_mask_file, [state, mask_file], edited, api_name="segment_use_mask")
    truth_btn.click(use_truth, state, edited, api_name="segment_use_truth")

    @on_gpu
    def _run(s, prop, sel, n, steps, mirror, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        yield from run(s, prop, sel, n, limits, request, progress, adapt_steps=steps, flip=bool(mirror))

    job = run_btn.click(_run, [state, propagator, selector, n_frames, adapt_steps, flip], [status, live, video, files],
                        api_name="segment_run", concurrency_id="propagate",
                        concurrency_limit=limits.concurrency)  # fmt: skip
    cancel_btn.click(lambda: "Cancelled.", None, status, cancels=[job], api_name="segment_cancel")
    return SegmentUI(state=state, example=example, loaded=loaded)
