"""Segment tab: a video, a first-frame annotation, a propagator and a selector in;
an overlay video, DAVIS palette masks, an mp4 and RGBA cut-outs out."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import gradio as gr
import numpy as np

import msn_core
from demos import annotate, segment_fix
from demos.common import (
    COLOUR_NAMES,
    FLIP_HELP,
    PROPAGATORS,
    SEGMENT_SELECTORS,
    adapt_help,
    default_example,
    device,
    on_cpu,
    on_gpu,
    propagator_help,
    run_dir,
    user_errors,
)
from demos.corrections import RunResult
from demos.estimate import WaitEstimate
from demos.limits import Limits
from demos.runs import default_propagator, start_mask_run
from demos.segment_state import (  # noqa: F401 - the handlers are part of this tab's interface
    Session,
    _need_clip,
    add_click,
    clear,
    describe_annotation,
    load_example,
    load_upload,
    on_select,
    preview,
    remove_upload,
    undo_click,
    use_brush,
    use_mask_file,
    use_truth,
    view_scale,
)
from msn_core import viz
from msn_core.config import PipelineConfig
from msn_core.errors import InputError
from msn_core.io import VideoWriter, object_ids, write_mask_png, write_rgba_cutout, zip_directory

VIDEO_TYPES = [".mp4", ".webm", ".mov", ".gif", ".avi", ".mkv", ".zip"]
OBJECT_CHOICES = [(f"object {i} ({COLOUR_NAMES[i - 1]})", i) for i in range(1, annotate.MAX_OBJECTS + 1)]


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
        s.result = None  # its files are about to be replaced
        run = yield from start_mask_run(
            clip, s.labels, propagator, n_frames, limits, progress, adapt_steps, flip,
            lambda m: (m, gr.skip(), gr.skip(), gr.skip()),
            oracle="the oracle selector" if selector.startswith("oracle") else "",
        )  # fmt: skip
        total = run.total
        work = stack.enter_context(run_dir(request, "segment", limits.session_ttl_s))
        js: list[float] = []
        frame_masks: list[np.ndarray] = []
        wait = WaitEstimate(total, (propagator, selector, run.side, bool(flip))) if on_cpu() else None
        if wait is not None:
            yield wait.before(), gr.skip(), gr.skip(), gr.skip()
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
                frame_masks.append(r.labels)
                write_rgba_cutout(work / "cutouts" / f"{r.index:05d}.png", r.frame, r.labels)
                if (j := run.j(r.index, r.labels)) is not None:
                    js.append(j)
                progress((r.index + 1, total), desc=f"frame {r.index + 1} of {total}")
                left, first = wait.tick() if wait is not None else (None, False)
                if r.index % 3 == 0 or first:
                    msg = f"Propagating… frame {r.index + 1} of {total} (guide: {r.guide})"
                    yield (msg + (f"; {left}." if left else "")), shown, gr.skip(), gr.skip()
        if wait is not None:
            wait.finish()
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
        s.result = RunResult(run, selector, frame_masks, [0] * len(frame_masks), {0: s.labels.copy()}, work, clip.name,
                             clip.fps)  # fmt: skip
        lines.append("Scrub to any frame below to correct it and propagate again from there.")
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
                             file_types=VIDEO_TYPES, height=160, elem_id="seg-upload")  # fmt: skip
            info = gr.Markdown("", elem_classes=["msn-info"], elem_id="seg-info")
            gr.Markdown(
                "### 2 · Mark the object(s) on the first frame\n"
                "Click on an object to add a point (the click net cuts it out) or draw a box around it, or paint it, "
                "or upload a mask."
            )
            annot = gr.Image(label="First frame", show_label=False, interactive=False, elem_id="seg-annotation",
                             buttons=["fullscreen"])  # fmt: skip
            annot_md = gr.Markdown("", elem_id="seg-annotation-note")
            with gr.Tabs():
                with gr.Tab("Clicks"):
                    obj = gr.Radio(OBJECT_CHOICES, value=1, label="Object", elem_id="seg-objects")
                    with gr.Row(equal_height=False):
                        polarity = gr.Radio(annotate.CLICK_MODES, value="positive", label="Click", scale=2,
                                            info=annotate.CLICK_MODES_HELP, elem_id="seg-click-mode")  # fmt: skip
                        with gr.Column(scale=1, min_width=120):
                            undo_btn = gr.Button("Undo click", size="sm")
                            clear_btn = gr.Button("Clear", size="sm")
                    gr.Markdown("Each click refines the mask: positive clicks add what was missed, negative ones remove background.",
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
                network = default_propagator(limits)
                propagator = gr.Radio(PROPAGATORS, value=network, label="Propagation network",
                                      info=propagator_help(network), elem_id="seg-propagator")  # fmt: skip
                selector = gr.Dropdown(SEGMENT_SELECTORS, value="msn", label="Guide selector",
                                       info="oracle: ground truth needed (examples)")  # fmt: skip
            n_frames = gr.Slider(2, limits.max_frames, value=limits.default_frames, step=1, label="Frames")
            adapt_steps = gr.Slider(
                0, limits.max_adapt_steps, value=limits.adapt_steps_default(device()), step=50,
                label="Adapt to the annotation first (steps)",
                info=adapt_help(limits),
            )  # fmt: skip
            flip = gr.Checkbox(value=PipelineConfig.test_flip, label="Test-time flip", info=FLIP_HELP)  # as the CLI
            with gr.Row():
                run_btn = gr.Button("Propagate", variant="primary", elem_id="seg-run")
                cancel_btn = gr.Button("Cancel", variant="stop")
            status = gr.Markdown("", elem_id="seg-status")
            live = gr.Image(label="Live preview", interactive=False, height=220, elem_id="seg-live")
            video = gr.Video(label="Overlay video", interactive=False, elem_id="seg-video")
            files = gr.File(label="Downloads: masks (DAVIS PNG zip) · overlay mp4 · RGBA cut-outs (zip)",
                            file_count="multiple", interactive=False, elem_id="seg-files")  # fmt: skip
            refresh_fix, fix_panel = segment_fix.build(limits, state, status, live, video, files, OBJECT_CHOICES)

    loaded = [state, info, annot, editor, truth_btn, n_frames, annot_md]
    edited = [state, annot, annot_md]
    def _fix(event):  # the correction panel follows the session's run (none after a load)
        event.then(refresh_fix, state, fix_panel, api_visibility="private")

    _fix(load_btn.click(lambda name: load_example(name, limits), example, loaded, api_name="segment_load_example"))
    _fix(example.input(lambda name: load_example(name, limits), example, loaded, api_visibility="private"))
    def _upload(path):
        yield from load_upload(path, limits)

    _fix(upload.upload(_upload, upload, loaded, api_name="segment_load_upload"))
    _fix(upload.clear(remove_upload, None, loaded, api_name="segment_remove_upload"))
    propagator.change(lambda p: gr.update(info=propagator_help(p)), propagator, propagator, api_visibility="private")
    # every click counts: one made while the previous is still being cut out is queued (run one at a time,
    # each reads the clicks before it) instead of dropped; no progress overlay on the image, which would
    # take the click
    annot.select(on_select, [state, obj, polarity], edited, api_visibility="private", trigger_mode="multiple",
                 show_progress="minimal")  # fmt: skip
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
    _fix(job)
    cancel_btn.click(lambda: "Cancelled.", None, status, cancels=[job], api_name="segment_cancel")
    return SegmentUI(state=state, example=example, loaded=loaded)
