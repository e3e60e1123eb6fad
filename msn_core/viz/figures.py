"""Plotly figures of a run's selections: the guide chosen for every frame, MSN's scores per
candidate, per-frame metrics. They read only ``index``, ``guides``, ``candidates`` and ``scores`` of
each frame result, so a run can be kept without its frames."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from msn_core.errors import InputError
from msn_core.viz.colours import FONT_FAMILY, MSN_COLOUR, series_colour

if TYPE_CHECKING:
    import plotly.graph_objects as go


class _Result(Protocol):  # what the figures read of a FrameResult
    index: int
    guides: list[int]
    candidates: list[int]
    scores: dict[int, float]


def layout(fig: go.Figure, title: str, height: int, **kw) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        height=height,
        margin={"l": 56, "r": 20, "t": 56, "b": 44},
        font={"family": FONT_FAMILY, "size": 12},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hoverlabel={"font": {"family": FONT_FAMILY}},
        **kw,
    )
    return fig


def _check_results(results: Sequence[_Result], what: str) -> list[_Result]:
    results = list(results)
    if not results:
        raise InputError(f"{what}: no frame results to plot")
    return results


def guide_timeline(runs: Mapping[str, Sequence[_Result]], *, title: str | None = None) -> go.Figure:
    """Which memory frame each run chose as the guide of every frame.

    ``runs`` maps a name (e.g. a selector label) to its frame results; the
    dotted diagonal is the previous frame, the bottom edge the first frame.
    Extra guides of top-K runs are drawn as small dots."""
    import plotly.graph_objects as go

    if not runs:
        raise InputError("guide_timeline: give at least one run")
    fig = go.Figure()
    last = 1
    for i, (name, results) in enumerate(runs.items()):
        results = _check_results(results, f"guide_timeline '{name}'")
        steps = [r for r in results if r.guides]
        last = max(last, max(r.index for r in results))
        colour = series_colour(i, name)
        fig.add_trace(
            go.Scatter(
                x=[r.index for r in steps],
                y=[r.guides[0] for r in steps],
                customdata=[[r.scores.get(r.guides[0], math.nan), len(r.candidates)] for r in steps],
                mode="lines+markers",
                name=name,
                line={"color": colour, "width": 2.5 if name.lower().startswith("msn") else 2, "shape": "hv"},
                marker={"size": 7, "color": colour, "line": {"color": "white", "width": 1}},
                hovertemplate=f"<b>{name}</b><br>frame %{{x}} ← guide %{{y}}<br>score %{{customdata[0]:.3f}}"
                " of %{customdata[1]} candidates<extra></extra>",
            )
        )
        extra = [(r.index, g) for r in steps for g in r.guides[1:]]
        if extra:
            fig.add_trace(
                go.Scatter(
                    x=[t for t, _ in extra],
                    y=[g for _, g in extra],
                    mode="markers",
                    name=f"{name} (other top-K)",
                    marker={"size": 5, "color": colour, "opacity": 0.45},
                    hovertemplate=f"{name}: frame %{{x}} also uses %{{y}}<extra></extra>",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=[1, last],
            y=[0, last - 1],
            mode="lines",
            name="t − 1 (previous frame)",
            line={"color": "#94a3b8", "dash": "dot", "width": 1},
            hoverinfo="skip",
        )
    )
    layout(fig, title or "Guide frame chosen for every frame", 330)
    fig.update_xaxes(title="target frame t", range=[0.5, last + 0.5], zeroline=False)
    fig.update_yaxes(title="guide frame", range=[-0.7, last - 0.3], zeroline=False)
    return fig


def score_matrix(results: Sequence[_Result]) -> tuple[list[int], list[int], np.ndarray]:
    """(targets, candidates, z): ``z[i, j]`` is the score of candidate ``candidates[i]``
    at target ``targets[j]``, NaN where that frame was not a candidate."""
    results = [r for r in _check_results(results, "score_matrix") if r.candidates]
    targets = [r.index for r in results]
    cands = sorted({c for r in results for c in r.candidates})
    row = {c: i for i, c in enumerate(cands)}
    z = np.full((len(cands), len(targets)), np.nan)
    for j, r in enumerate(results):
        for c, s in r.scores.items():
            if c in row:
                z[row[c], j] = s
    return targets, cands, z


def score_heatmap(
    results: Sequence[_Result],
    *,
    baseline: Sequence[_Result] | None = None,
    baseline_name: str = "baseline",
    title: str | None = None,
) -> go.Figure:
    """MSN's score for every candidate (rows) at every target frame (columns), with
    the chosen guide circled; ``baseline`` adds the other run's choices as crosses."""
    import plotly.graph_objects as go

    targets, cands, z = score_matrix(results)
    fig = go.Figure()
    if not targets:
        fig.add_annotation(
            text="no frame was propagated", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        return layout(fig, title or "MSN score per candidate", 360)
    fig.add_trace(
        go.Heatmap(
            x=targets,
            y=cands,
            z=[[None if np.isnan(v) else float(v) for v in row] for row in z],
            colorscale="Viridis",
            hoverongaps=False,
            colorbar={"title": {"text": "score", "side": "right"}, "thickness": 12, "len": 0.9},
            hovertemplate="target %{x} · candidate %{y}<br>score %{z:.3f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    picked = [(r.index, r.guides[0]) for r in results if r.guides]
    fig.add_trace(
        go.Scatter(
            x=[t for t, _ in picked],
            y=[g for _, g in picked],
            mode="markers",
            name="MSN's guide",
            marker={"symbol": "circle-open", "size": 13, "color": MSN_COLOUR, "line": {"width": 3}},
            hovertemplate="MSN: frame %{x} ← %{y}<extra></extra>",
        )
    )
    if baseline is not None:
        base = [(r.index, r.guides[0]) for r in baseline if r.guides]
        fig.add_trace(
            go.Scatter(
                x=[t for t, _ in base],
                y=[g for _, g in base],
                mode="markers",
                name=f"{baseline_name}'s guide",
                marker={"symbol": "x", "size": 8, "color": "#0f172a", "line": {"width": 1, "color": "white"}},
                hovertemplate=f"{baseline_name}: frame %{{x}} ← %{{y}}<extra></extra>",
            )
        )
    layout(fig, title or "MSN's score for every candidate at every frame", 380, plot_bgcolor="#f1f5f9")
    fig.update_xaxes(title="target frame t", showgrid=False, zeroline=False)
    fig.update_yaxes(title="candidate guide frame", showgrid=False, zeroline=False)
    return fig


def score_bars(
    result: _Result,
    *,
    baseline_guide: int | None = None,
    baseline_name: str = "baseline",
    title: str | None = None,
) -> go.Figure:
    """One frame's candidate scores as bars: MSN's guide in orange, the rest grey,
    the baseline's choice marked. An audited result (``quality``: each candidate's quality against
    the ground truth) adds that quality as dots on a second axis, so the bars can be read against
    how good each guide really was."""
    import plotly.graph_objects as go

    cands = list(result.candidates)
    if not cands:
        raise InputError(f"score_bars: frame {result.index} has no candidates (it is the annotated frame)")
    scores = [result.scores.get(c, math.nan) for c in cands]
    chosen = set(result.guides)
    fig = go.Figure(
        go.Bar(
            x=cands,
            y=scores,
            marker={"color": [MSN_COLOUR if c in chosen else "#cbd5e1" for c in cands]},
            hovertemplate="candidate %{x}<br>score %{y:.3f}<extra></extra>",
            name="score",
            showlegend=False,
        )
    )
    finite = [s for s in scores if math.isfinite(s)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = max((hi - lo) * 0.25, 0.02)
    if baseline_guide is not None and baseline_guide in cands:
        fig.add_annotation(
            x=baseline_guide,
            y=result.scores.get(baseline_guide, lo),
            text=f"{baseline_name}",
            showarrow=True,
            arrowhead=2,
            ay=-28,
            font={"color": series_colour(0), "size": 11},
            arrowcolor=series_colour(0),
        )
    quality = getattr(result, "quality", None) or {}
    audited = all(c in quality for c in cands)
    ious = [100 * quality[c] for c in cands] if audited else []
    if audited:
        fig.add_trace(
            go.Scatter(
                x=cands,
                y=ious,
                mode="markers",
                marker={"color": "#0f766e", "size": 8, "symbol": "diamond"},
                name="IoU against the ground truth",
                hovertemplate="candidate %{x}<br>IoU %{y:.2f} %<extra></extra>",
                yaxis="y2",
            )
        )
    default = f"MSN's score for each candidate of frame {result.index}" + (" and its true IoU" if audited else "")
    layout(fig, title or default, 260, bargap=0.25)
    fig.update_xaxes(title="candidate guide frame", dtick=1 if len(cands) <= 30 else None)
    fig.update_yaxes(title="score", range=[max(0.0, lo - pad), hi + pad])
    if audited:  # a few points of margin, so that differences of a tenth of a point look as small as they are
        span = [max(0.0, min(ious) - 5.0), min(100.0, max(ious) + 5.0)]
        fig.update_layout(
            yaxis2={"title": "IoU (%)", "overlaying": "y", "side": "right", "showgrid": False, "range": span},
            margin={"r": 56},  # room for the second axis; the rest as _layout set it
        )
    return fig


def per_frame_metric(
    series: Mapping[str, Sequence[float]],
    *,
    frames: Sequence[int] | None = None,
    name: str = "J",
    title: str | None = None,
) -> go.Figure:
    """A per-frame quality curve for each run (J, PSNR, ...); legend entries show the mean."""
    import plotly.graph_objects as go

    if not series:
        raise InputError("per_frame_metric: give at least one series")
    lengths = {len(v) for v in series.values()}
    if len(lengths) != 1:
        raise InputError(f"per_frame_metric: series have different lengths {sorted(lengths)}")
    n = lengths.pop()
    x = list(frames) if frames is not None else list(range(1, n + 1))
    if len(x) != n:
        raise InputError(f"per_frame_metric: {len(x)} frame numbers for {n} values")
    fig = go.Figure()
    for i, (label, values) in enumerate(series.items()):
        vals = np.asarray(values, dtype=float)
        finite = vals[np.isfinite(vals)]
        mean = (
            f"{finite.mean():.3f}"
            if name == "J" and finite.size
            else f"{finite.mean():.2f}"
            if finite.size
            else "–"
        )
        colour = series_colour(i, label)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=vals.tolist(),
                mode="lines+markers",
                name=f"{label} (mean {mean})",
                line={"color": colour, "width": 2.5 if label.lower().startswith("msn") else 2},
                marker={"size": 5, "color": colour},
                hovertemplate=f"{label}: frame %{{x}} · {name} %{{y:.3f}}<extra></extra>",
            )
        )
    layout(fig, title or f"{name} per frame", 300)
    fig.update_xaxes(title="frame")
    fig.update_yaxes(title=name, range=[0, 1.02] if name == "J" else None)
    return fig
