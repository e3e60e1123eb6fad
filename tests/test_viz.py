"""msn_core.viz: overlays, captioned panels and the Plotly figures, on real frames
and on the results of a real (tiny, seeded) propagation run."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import msn_core
from msn_core import viz
from msn_core.config import BackboneConfig, MemoryConfig, MSNConfig, PipelineConfig, TPNConfig
from msn_core.errors import InputError
from msn_core.propagation import FrameResult


@pytest.fixture(scope="module")
def example():
    source, masks = msn_core.example_sequence("dog", max_frames=6)
    return list(source), [msn_core.read_mask(p) for p in masks]


@pytest.fixture(scope="module")
def runs(example):
    """Two real runs (previous frame, MSN) of a tiny seeded pipeline over 6 real frames,
    with a budget of 3 candidates so some frames leave the pool."""
    frames, masks = example
    cfg = PipelineConfig(
        backbone=BackboneConfig(name="tiny", pretrained=False),
        msn=MSNConfig(embed_dim=16, hidden=16),
        tpn=TPNConfig(width=8),
        memory=MemoryConfig(budget=3, recent=1),
        max_side=128,
    )
    pipe = msn_core.load("tpn", weights=None, config=cfg)
    return {
        "previous": list(pipe.propagate(frames, masks[0], selector="previous")),
        "msn": list(pipe.propagate(frames, masks[0], selector="msn")),
    }


def fake(index: int, scores: dict[int, float], guides: list[int] | None = None) -> FrameResult:
    best = sorted(scores, key=lambda c: -scores[c])
    return FrameResult(index, None, None, None, guides or best[:1], sorted(scores), scores, "msn")  # type: ignore[arg-type]


# -------------------------------------------------------------------------- images


def test_object_colours_are_the_davis_palette():
    assert viz.object_colour(1) == "#800000" and viz.object_colour(2) == "#008000"
    with pytest.raises(InputError):
        viz.object_colour(300)
    assert viz.series_colour(0, "MSN") == viz.series_colour(5, "msn-top3") != viz.series_colour(0, "previous")


def test_overlay_tints_only_the_object_and_resizes_labels(example):
    frame, labels = example[0][0], example[1][0]
    out = viz.overlay(frame, labels, alpha=0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[labels == 0][:1000], frame[labels == 0][:1000])  # background untouched
    inside = labels > 0
    assert np.abs(out[inside].astype(int) - frame[inside].astype(int)).mean() > 10
    half = labels[::2, ::2]  # a label map of another size is brought to the frame's
    assert viz.overlay(frame, half).shape == frame.shape
    with pytest.raises(InputError, match="labels must be"):
        viz.overlay(frame, np.zeros((2, 3, 4), np.uint8))


def test_draw_clicks_marks_positive_and_negative_points(example):
    frame = example[0][0]
    out = viz.draw_clicks(frame, [(100, 100, 1, True), (200, 50, 1, False)])
    assert out.shape == frame.shape
    assert not np.array_equal(out[100, 100], frame[100, 100]) and not np.array_equal(
        out[50, 200], frame[50, 200]
    )
    np.testing.assert_array_equal(out[0:20, 0:20], frame[0:20, 0:20])


def test_caption_and_side_by_side_make_even_captioned_rows(example):
    a = example[0][0]  # 240x428
    b = a[::2, ::2]  # another size: scaled to a's height
    row = viz.side_by_side([a, b], ["left", "a very long title " * 10], gap=5)
    assert row.shape[0] % 2 == 0 and row.shape[1] % 2 == 0
    assert row.shape[0] > a.shape[0]  # the title bar
    assert row.shape[1] >= 2 * a.shape[1] + 5
    capped = viz.caption(a, "frame 3", accent=(234, 88, 12))
    assert capped.shape[1] == a.shape[1] and capped.shape[0] > a.shape[0]
    np.testing.assert_array_equal(capped[-a.shape[0] :], a)
    with pytest.raises(InputError, match="titles"):
        viz.side_by_side([a, b], ["one"])
    with pytest.raises(InputError):
        viz.side_by_side([])


# ------------------------------------------------------------------------- figures


def test_score_matrix_places_scores_and_leaves_gaps():
    results = [
        fake(0, {}, guides=[]),
        fake(1, {0: 0.4}),
        fake(2, {0: 0.2, 1: 0.9}),
        fake(3, {1: 0.5, 2: 0.7}),
    ]
    targets, cands, z = viz.score_matrix(results)
    assert targets == [1, 2, 3] and cands == [0, 1, 2]
    assert z[0, 0] == 0.4 and z[1, 1] == 0.9 and z[2, 2] == 0.7
    assert math.isnan(z[0, 2]) and math.isnan(z[2, 0])  # frame 0 left the pool; frame 2 not yet in it


def test_figures_from_a_real_run(runs):
    timeline = viz.guide_timeline(runs)
    traces = {t.name: t for t in timeline.data}
    assert list(traces["previous"].y) == [r.guide for r in runs["previous"][1:]]
    assert list(traces["msn"].y) == [r.guide for r in runs["msn"][1:]]
    assert traces["msn"].line.color == viz.series_colour(0, "msn")

    heat = viz.score_heatmap(runs["msn"], baseline=runs["previous"], baseline_name="previous")
    z = np.array(heat.data[0].z, dtype=float)
    assert z.shape == (len({c for r in runs["msn"] for c in r.candidates}), 5)
    assert np.nanmin(z) >= 0 and np.nanmax(z) <= 1 and np.isnan(z).any()  # budget 3: gaps
    chosen = heat.data[1]
    assert list(chosen.x) == [1, 2, 3, 4, 5] and list(chosen.y) == [r.guide for r in runs["msn"][1:]]
    assert heat.data[2].name == "previous's guide"

    r = runs["msn"][4]
    bars = viz.score_bars(r, baseline_guide=3)
    assert list(bars.data[0].x) == r.candidates
    colours = list(bars.data[0].marker.color)
    assert colours[r.candidates.index(r.guide)] != colours[[c for c in r.candidates if c != r.guide][0]]
    with pytest.raises(InputError, match="annotated frame"):
        viz.score_bars(runs["msn"][0])
    assert len(bars.data) == 1  # no audit, no true quality
    audited = dataclasses.replace(r, quality={c: 0.5 + 0.01 * c for c in r.candidates})
    both = viz.score_bars(audited, baseline_guide=3)
    dots = both.data[1]
    assert dots.yaxis == "y2" and list(dots.x) == r.candidates and list(dots.y) == [50 + c for c in r.candidates]
    assert both.layout.yaxis2.overlaying == "y" and "true IoU" in both.layout.title.text


def test_per_frame_metric_shows_the_means():
    fig = viz.per_frame_metric({"previous": [0.8, 0.6], "MSN": [0.9, 0.7]}, frames=[1, 2], name="J")
    assert [t.name for t in fig.data] == ["previous (mean 0.700)", "MSN (mean 0.800)"]
    assert list(fig.data[1].y) == [0.9, 0.7]
    psnr = viz.per_frame_metric({"MSN": [30.0, 31.0]}, name="PSNR (dB)")
    assert psnr.data[0].name == "MSN (mean 30.50)" and list(psnr.data[0].x) == [1, 2]
    with pytest.raises(InputError, match="different lengths"):
        viz.per_frame_metric({"a": [1.0], "b": [1.0, 2.0]})
    with pytest.raises(InputError):
        viz.guide_timeline({})


def test_method_figure_highlights_the_best_guide():
    fig = viz.method_figure()
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "memory pool" in texts and "TPN / STM-1" in texts
    assert fig.to_json()  # serialisable for gr.Plot
