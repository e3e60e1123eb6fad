"""Colourize tab: the first frame's colours carried through a video with a baseline
selector and with MSN, side by side, with PSNR when the original colours are known."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import cv2
import gradio as gr
import numpy as np

import msn_core
from demos.common import (
    Clip,
    default_example,
    fit_image,
    get_pipeline,
    on_cpu,
    on_gpu,
    open_example,
    open_upload,
    run_dir,
    user_errors,
)
from demos.estimate import WaitEstimate
from demos.limits import Limits
from demos.segment import VIDEO_TYPES
from msn_core import viz
from msn_core.errors import InputError
from msn_core.io import VideoWriter
from msn_core.metrics import psnr

BASELINES = [("previous frame", "previous"), ("gap 5", "gap5"), ("first frame", "first"),
             ("feature similarity", "similarity")]  # fmt: skip
SLATE, ORANGE, GREY, GREEN = (100, 116, 139), (234, 88, 12), (82, 82, 91), (22, 163, 74)


def is_grey(frame: np.ndarray, tolerance: int = 6) -> bool:
    """True when a frame carries no colour (channels equal up to compression noise)."""
    f = frame.astype(np.int16)
    spread = np.maximum(np.abs(f[..., 0] - f[..., 1]), np.abs(f[..., 1] - f[..., 2]))
    return float(np.percentile(spread, 99)) <= tolerance


def grey(frame: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _frames(clip: Clip, n: int, reference: np.ndarray | None) -> Iterator[np.ndarray]:
    frames = clip.frames(n)
    first = next(frames)
    yield first if reference is None else reference
    yield from frames


def run(
    example: str,
    upload: str | None,
    reference: np.ndarray | None,
    baseline: str,
    n_frames: float,
    limits: Limits,
    request: gr.Request | None = None,
    progress: gr.Progress | None = None,
):
    """Colour propagation twice (baseline, MSN); ends with the video, a still, PSNR and a summary."""
    progress = progress or (lambda *a, **k: None)
    with user_errors("Colourization"), contextlib.ExitStack() as stack:
        clip = open_upload(upload, limits) if upload else open_example(example, limits)
        if reference is not None:
            reference = np.asarray(reference)
            if reference.ndim == 2:  # a grey image: no colour to carry, said below
                reference = np.repeat(reference[..., None], 3, axis=2)
            reference = fit_image(reference[..., :3].astype(np.uint8), clip.out_size, "coloured first frame")
            if is_grey(reference):
                raise InputError("the coloured first frame has no colour; give a colour image of frame 0")
        known = not is_grey(clip.first)  # a colour video: its own colours are the ground truth
        if not known and reference is None:
            raise InputError("this video is greyscale: add a coloured first frame (frame 0 in colour)")
        progress(0, desc="loading the networks")
        pipe, notice = get_pipeline("tpn", "color", limits.network_side(0, "tpn", "color"))
        total = clip.count(n_frames)
        if total < 2:
            raise InputError("colourization needs at least 2 frames")
        work = stack.enter_context(run_dir(request, "colourize", limits.session_ttl_s))
        base_it = pipe.propagate(_frames(clip, total, reference), selector=baseline)
        msn_it = pipe.propagate(_frames(clip, total, reference), selector="msn")
        name = dict((v, k) for k, v in BASELINES).get(baseline, baseline)
        titles = ["Input (grey)", f"Without MSN ({name})", "With MSN"] + (
            ["Original colours"] if known else []
        )
        accents = [GREY, SLATE, ORANGE, GREEN]
        p_base: list[float] = []
        p_msn: list[float] = []
        wait = WaitEstimate(total, ("colourize", baseline)) if on_cpu() else None
        if wait is not None:
            yield wait.before(), gr.skip(), gr.skip(), gr.skip()
        start = time.perf_counter()
        panel = None
        with VideoWriter(work / "colourize.mp4", clip.fps) as writer:
            for rb, rm in zip(base_it, msn_it):
                panels = [grey(rm.frame), rb.colors, rm.colors] + ([rm.frame] if known else [])
                panel = viz.side_by_side(panels, titles, accents=accents[: len(panels)])
                writer.write(panel)
                if known and rm.index > 0:
                    p_base.append(psnr(rb.colors, rm.frame))
                    p_msn.append(psnr(rm.colors, rm.frame))
                progress((rm.index + 1, total), desc=f"frame {rm.index + 1} of {total} (both runs)")
                left, first = wait.tick() if wait is not None else (None, False)
                if rm.index % 3 == 0 or first:
                    msg = f"Colourizing… frame {rm.index + 1} of {total}" + (f"; {left}." if left else "")
                    yield msg, panel, gr.skip(), gr.skip()
        if wait is not None:
            wait.finish()
        n = writer.frames_written
        seconds = time.perf_counter() - start
        lines = [f"**Done**: {n} frames, both runs, in {seconds:.1f} s. The still shows the last frame."]
        if known:
            fig = viz.per_frame_metric({name: p_base, "MSN": p_msn}, frames=range(1, n), name="PSNR (dB)")
            lines.append(
                f"Mean PSNR against the original colours (frames 1–{n - 1}): {name} **{np.mean(p_base):.2f} dB** · "
                f"MSN **{np.mean(p_msn):.2f} dB**"
            )
        else:
            fig = None
            lines.append("The original colours are unknown (greyscale video), so there is no PSNR.")
        if notice:
            lines.append(f"⚠️ {notice}")
        yield "  \n".join(lines), panel, str(work / "colourize.mp4"), fig


def build(limits: Limits) -> None:
    """The Colourize tab's components and events (inside a ``gr.Tab``)."""
    examples = msn_core.list_examples()
    gr.Markdown(
        "Carry the first frame's colours through the video. The networks see only lightness; a colour video "
        "is turned grey first, so its own colours measure the result (PSNR).",
        elem_classes=["msn-hint"],
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            example = gr.Dropdown(examples, value=default_example(), label="Bundled example (DAVIS-2016)")
            upload = gr.File(label="…or upload a colour or greyscale video (used instead of the example)",
                             file_types=VIDEO_TYPES, height=160)  # fmt: skip
            reference = gr.Image(label="Coloured first frame (optional; needed for a greyscale video)",
                                 type="numpy", sources=["upload", "clipboard"], height=200)  # fmt: skip
        with gr.Column(scale=1, min_width=300):
            baseline = gr.Dropdown(BASELINES, value="previous", label="Without MSN: baseline selector")
            n_frames = gr.Slider(2, limits.max_frames, value=limits.default_frames, step=1, label="Frames")
            with gr.Row():
                run_btn = gr.Button("Colourize", variant="primary", elem_id="col-run")
                cancel_btn = gr.Button("Cancel", variant="stop")
            status = gr.Markdown("", elem_id="col-status")
    still = gr.Image(label="Frame by frame (live), then the last frame", show_label=False, interactive=False)
    video = gr.Video(label="Side by side", show_label=False, interactive=False, loop=True)
    plot = gr.Plot(label="PSNR per frame")

    @on_gpu
    def _run(ex, up, ref, base, n, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        yield from run(ex, up, ref, base, n, limits, request, progress)

    job = run_btn.click(_run, [example, upload, reference, baseline, n_frames], [status, still, video, plot],
                        api_name="colourize_run", concurrency_id="propagate",
                        concurrency_limit=limits.concurrency)  # fmt: skip
    cancel_btn.click(lambda: "Cancelled.", None, status, cancels=[job], api_name="colourize_cancel")
