"""Compare tab: one video run with a baseline selector and with MSN, side by side,
with the guide timeline, MSN's score heatmap, per-frame J and a frame inspector."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

import msn_core
from demos.common import (
    BASELINES,
    FLIP_HELP,
    PROPAGATORS,
    Clip,
    adapt_help,
    default_example,
    device,
    on_cpu,
    on_gpu,
    open_example,
    run_dir,
    user_errors,
)
from demos.estimate import WaitEstimate
from demos.limits import Limits
from demos.runs import default_propagator, start_mask_run, strip
from msn_core import metrics, viz
from msn_core.config import PipelineConfig
from msn_core.errors import InputError
from msn_core.io import VideoWriter, object_ids

SEGMENT_SOURCE = "Your video and annotation (Segment tab)"
NAMES = {
    "previous": "previous frame",
    "gap5": "gap 5",
    "first": "first frame",
    "similarity": "feature similarity",
    "similarity-masked": "masked similarity",
    "oracle": "oracle",
}
VIEW_SIDE = 480  # long side of each panel in the frame view
BLUE, ORANGE, SLATE = (37, 99, 235), (234, 88, 12), (100, 116, 139)


@dataclass
class Comparison:
    """One user's last comparison: the light frame results and where the frames are."""

    baseline: str = ""
    base: list[msn_core.FrameResult] = field(default_factory=list)
    msn: list[msn_core.FrameResult] = field(default_factory=list)
    j_base: list[float] = field(default_factory=list)
    j_msn: list[float] = field(default_factory=list)
    frames_dir: str = ""


def _source(seg_session, source: str, limits: Limits) -> tuple[Clip, np.ndarray]:
    if source == SEGMENT_SOURCE:
        clip, labels = getattr(seg_session, "clip", None), getattr(seg_session, "labels", None)
        if clip is not None and clip.example:  # the bundled clip the page opened on: nothing was uploaded
            raise InputError(
                f"nothing was uploaded: the Segment tab holds the bundled example '{clip.example}', not your "
                f"video; upload one there and mark it, or pick '{clip.example}' in the Video list here"
            )
        if clip is None or labels is None or not object_ids(labels):
            raise InputError(
                "the Segment tab has no video with a marked object yet; upload one and mark it there"
            )
        return clip, labels
    clip = open_example(source, limits)
    return clip, clip.truth_labels(1)[0]


def frame_title(name: str, r: msn_core.FrameResult) -> str:
    """A panel's title in the comparison video, in characters its font draws (it has no arrows)."""
    return f"{name} · frame {r.index}" + (f", guide {r.guide}" if r.guides else "")


def _pick_frame(cmp: Comparison) -> int:
    """A frame worth looking at first: the first one where MSN did not take the previous frame."""
    for r in cmp.msn[1:]:
        if r.guide is not None and r.guide != r.index - 1:
            return r.index
    return 1


def frame_view(cmp: Comparison | None, t: float):
    """The target frame beside the guide MSN chose, MSN's scores at that frame and a caption."""
    with user_errors("Showing the frame"):
        if cmp is None or len(cmp.msn) < 2:
            raise InputError("run a comparison first")
        t = int(np.clip(round(t), 1, len(cmp.msn) - 1))
        r, b = cmp.msn[t], cmp.base[t]
        g, bg = r.guide, b.guide
        folder = Path(cmp.frames_dir)
        if not (folder / f"{t:05d}.jpg").is_file():
            raise InputError("this comparison's frames were cleaned up; run it again")

        def frame(i: int) -> np.ndarray:  # small frames enlarged so the panel reads well
            im = Image.open(folder / f"{i:05d}.jpg").convert("RGB")
            k = VIEW_SIDE / max(im.size)
            return np.asarray(im.resize((round(im.width * k), round(im.height * k))) if k > 1 else im)

        score = r.scores.get(g, float("nan"))
        image = viz.side_by_side(
            [frame(t), frame(g)],
            [f"Target · frame {t}", f"MSN's guide · frame {g} · score {score:.3f}"],
            accents=[BLUE, ORANGE],
        )
        ranked = sorted(r.candidates, key=lambda c: -r.scores.get(c, -np.inf))
        name = NAMES.get(cmp.baseline, cmp.baseline)
        lines = [
            f"**Frame {t}**: MSN chose **frame {g}** (score {score:.3f}, best of {len(r.candidates)} candidates)."
        ]
        if bg == g:
            lines.append(f"The {name} baseline chose the same frame.")
        elif bg in r.scores:
            lines.append(
                f"The {name} baseline used **frame {bg}**, which MSN scored {r.scores[bg]:.3f} "
                f"(rank {ranked.index(bg) + 1} of {len(ranked)})."
            )
        else:
            lines.append(f"The {name} baseline used frame {bg}.")
        if cmp.j_msn and t - 1 < len(cmp.j_msn):
            lines.append(f"J at this frame: {name} {cmp.j_base[t - 1]:.3f} · MSN {cmp.j_msn[t - 1]:.3f}")
        if r.quality:  # an audited run: every candidate's IoU against the ground truth
            best = max(r.quality, key=lambda c: (r.quality[c], c))
            lines.append(
                f"True IoU of MSN's guide **{r.quality[g]:.3f}**; the best candidate was frame {best} "
                f"({r.quality[best]:.3f}), the median {np.median(list(r.quality.values())):.3f}."
            )
        bars = viz.score_bars(r, baseline_guide=bg, baseline_name=name)
        return image, bars, "  \n".join(lines)


def _audit_line(results: list[msn_core.FrameResult]) -> str:
    """What scoring every candidate against the ground truth says of MSN's picks."""
    a = metrics.selection_audit(results)
    rho = "n/a" if np.isnan(a["rank_correlation"]) else f"{a['rank_correlation']:+.2f}"
    return (
        f"Every candidate scored against the ground truth (IoU of the mask it propagates): MSN's guides "
        f"**{100 * a['chosen']:.1f}**, the best candidate {100 * a['best']:.1f}, a random one "
        f"{100 * a['random']:.1f}; MSN picked the best at {a['chosen_is_best']:.0%} of frames; its scores "
        f"follow the true order with Spearman's rho {rho} (0 = chance)."
    )


def _no_truth_figure():
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text="Per-frame J needs ground truth: pick a bundled example", showarrow=False,
                       x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14, "color": "#64748b"})  # fmt: skip
    fig.update_layout(template="plotly_white", height=300, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def run(
    seg_session,
    source: str,
    propagator: str,
    baseline: str,
    n_frames: float,
    limits: Limits,
    request: gr.Request | None = None,
    progress: gr.Progress | None = None,
    adapt_steps: float = 0,
    flip: bool = False,
    audit: bool = False,
):
    """Both runs frame by frame; ends with the video, the figures, the slider and the frame view.
    ``adapt_steps`` > 0 first fine-tunes the network on the annotated frame (once; both runs use
    the adapted copy, at ``limits.adapted_side``); ``flip``: both runs read every guide mirrored too
    (test-time flip); ``audit``: the MSN run also scores every candidate against the ground truth
    (bundled examples), shown beside MSN's scores."""
    progress = progress or (lambda *a, **k: None)
    with user_errors("Comparison"), contextlib.ExitStack() as stack:
        clip, labels = _source(seg_session, source, limits)
        if audit and not clip.truth:
            raise InputError(
                "scoring every candidate needs the ground truth of every frame: use a bundled example, "
                "or untick 'Score every candidate against the ground truth'"
            )
        if clip.count(n_frames) < 2:
            raise InputError("the comparison needs at least 2 frames")
        run = yield from start_mask_run(
            clip, labels, propagator, n_frames, limits, progress, adapt_steps, flip,
            lambda m: (m,) + (gr.skip(),) * 9,
            oracle="the oracle baseline" if baseline.startswith("oracle") else "",
        )  # fmt: skip
        total, truth = run.total, run.truth
        work = stack.enter_context(run_dir(request, "compare", limits.session_ttl_s))
        (work / "msn").mkdir()
        gt = truth if baseline.startswith("oracle") else None
        base_it = run.pipe.propagate(clip.frames(total), labels, selector=baseline, ground_truth=gt)
        msn_it = run.pipe.propagate(clip.frames(total), labels, selector="msn", ground_truth=truth if audit else None,
                                    audit=audit)  # fmt: skip
        cmp = Comparison(baseline=baseline, frames_dir=str(work / "msn"))
        name = NAMES.get(baseline, baseline)
        kind = ("compare", propagator, baseline, run.side, bool(flip), bool(audit))
        wait = WaitEstimate(total, kind) if on_cpu() else None
        if wait is not None:
            yield (wait.before(),) + (gr.skip(),) * 9
        start = time.perf_counter()
        with VideoWriter(work / "compare.mp4", clip.fps) as writer:
            for rb, rm in zip(base_it, msn_it):
                ob, om = viz.overlay(rb.frame, rb.labels), viz.overlay(rm.frame, rm.labels)
                Image.fromarray(om).save(work / "msn" / f"{rm.index:05d}.jpg", quality=90)
                writer.write(viz.side_by_side([ob, om], [frame_title(name, rb), frame_title("MSN", rm)],
                                              accents=[SLATE, ORANGE]))  # fmt: skip
                cmp.base.append(strip(rb))
                cmp.msn.append(strip(rm))
                if (jm := run.j(rm.index, rm.labels)) is not None:
                    cmp.j_base.append(run.j(rb.index, rb.labels))
                    cmp.j_msn.append(jm)
                progress((rm.index + 1, total), desc=f"frame {rm.index + 1} of {total} (both runs)")
                left, first = wait.tick() if wait is not None else (None, False)
                if rm.index % 3 == 0 or first:
                    yield (f"Comparing… frame {rm.index + 1} of {total}" + (f"; {left}." if left else ""),) + (
                        gr.skip(),) * 9  # fmt: skip
        if wait is not None:
            wait.finish()
        n = len(cmp.msn)
        if n < 2:
            raise InputError("the video has a single frame; the comparison needs at least 2")
        seconds = time.perf_counter() - start
        runs = {name: cmp.base, "MSN": cmp.msn}
        timeline = viz.guide_timeline(runs)
        heatmap = viz.score_heatmap(cmp.msn, baseline=cmp.base, baseline_name=name)
        if cmp.j_msn:
            jfig = viz.per_frame_metric({name: cmp.j_base, "MSN": cmp.j_msn}, frames=range(1, n), name="J")
        else:
            jfig = _no_truth_figure()
        changed = sum(r.guide != r.index - 1 for r in cmp.msn[1:])
        lines = [
            f"**Done**: {n} frames, both runs, in {seconds:.1f} s. MSN chose a guide other than the previous frame "
            f"for **{changed} of {n - 1}** frames."
        ]
        adapted = f"adapted to the annotation first ({run.steps} steps), " if run.steps else ""
        flipped = ", with test-time flip." if flip else "."
        lines.append(f"The network ran {adapted}at {run.network_size(clip)}{flipped}")
        if cmp.j_msn:
            lines.append(f"Mean J: {name} **{np.mean(cmp.j_base):.3f}** · MSN **{np.mean(cmp.j_msn):.3f}**")
        if audit:
            lines.append(_audit_line(cmp.msn))
        if run.notice:
            lines.append(f"⚠️ {run.notice}")
        t0 = _pick_frame(cmp)
        image, bars, caption = frame_view(cmp, t0)
        slider = gr.update(minimum=1, maximum=n - 1, value=t0, interactive=True)
        yield ("  \n".join(lines), str(work / "compare.mp4"), timeline, heatmap, jfig, slider, image, bars, caption,
               cmp)  # fmt: skip


def build(limits: Limits, seg_state: gr.State) -> None:
    """The Compare tab's components and events (inside a ``gr.Tab``)."""
    examples = msn_core.list_examples()
    state = gr.State(None, time_to_live=limits.session_ttl_s)
    gr.Markdown(
        "The same video twice: once with a **baseline** guide selector, once with **MSN**. The plots show "
        "which memory frame each step used and how MSN scored every candidate.",
        elem_classes=["msn-hint"],
    )
    with gr.Row(equal_height=True):
        source = gr.Dropdown([*examples, SEGMENT_SOURCE], value=default_example() or SEGMENT_SOURCE, label="Video",
                             scale=3, elem_id="cmp-source")  # fmt: skip
        propagator = gr.Radio(PROPAGATORS, value=default_propagator(limits), label="Propagation network", scale=2)
        baseline = gr.Dropdown(
            [(NAMES[b], b) for b in BASELINES], value="previous", label="Baseline selector", scale=2
        )
        n_frames = gr.Slider(
            2, limits.max_frames, value=limits.default_frames, step=1, label="Frames", scale=2
        )
    adapt_steps = gr.Slider(
        0, limits.max_adapt_steps, value=limits.adapt_steps_default(device()), step=50,
        label="Adapt to the annotation first (steps)", info=adapt_help(limits),
    )  # fmt: skip
    with gr.Row():
        flip = gr.Checkbox(value=PipelineConfig.test_flip, label="Test-time flip (both runs)", info=FLIP_HELP)
        audit = gr.Checkbox(
            value=False, label="Score every candidate against the ground truth", elem_id="cmp-audit",
            info="Bundled examples only. Propagates from every frame in the memory pool, as the oracle does "
            "(one propagation per candidate, so many times slower), to show beside MSN's scores how good each "
            "guide really was.",
        )  # fmt: skip
    with gr.Row():
        run_btn = gr.Button("Compare", variant="primary", elem_id="cmp-run")
        cancel_btn = gr.Button("Cancel", variant="stop")
    status = gr.Markdown("", elem_id="cmp-status")
    video = gr.Video(label="Baseline (left) and MSN (right)", show_label=False, interactive=False, loop=True,
                     elem_id="cmp-video")  # fmt: skip
    with gr.Row():
        timeline = gr.Plot(label="Guide timeline")
        heatmap = gr.Plot(label="MSN score heatmap")
    jplot = gr.Plot(label="Per-frame J")
    gr.Markdown("### Inspect a frame")
    slider = gr.Slider(1, max(2, limits.default_frames - 1), value=1, step=1, label="Target frame",
                       interactive=False, elem_id="cmp-slider")  # fmt: skip
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            view = gr.Image(label="Target and the guide MSN chose", show_label=False, interactive=False,
                            elem_id="cmp-view", buttons=["download"])  # fmt: skip
        with gr.Column(scale=2):
            caption = gr.Markdown("")
            bars = gr.Plot(label="MSN's scores at this frame")

    @on_gpu
    def _run(seg, src, prop, base, n, steps, mirror, check, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        yield from run(seg, src, prop, base, n, limits, request, progress, adapt_steps=steps, flip=bool(mirror),
                       audit=bool(check))  # fmt: skip

    outputs = [status, video, timeline, heatmap, jplot, slider, view, bars, caption, state]
    job = run_btn.click(_run, [seg_state, source, propagator, baseline, n_frames, adapt_steps, flip, audit], outputs, api_name="compare_run",
                        concurrency_id="propagate", concurrency_limit=limits.concurrency)  # fmt: skip
    cancel_btn.click(lambda: "Cancelled.", None, status, cancels=[job], api_name="compare_cancel")
    slider.input(frame_view, [state, slider], [view, bars, caption], api_name="compare_frame",
                 trigger_mode="always_last")  # fmt: skip
