"""Pictures of a propagation run: overlays, captioned panels and Plotly figures.

Images are (H, W, 3) uint8 RGB. The figures read only ``index``, ``guides``,
``candidates`` and ``scores`` of each :class:`msn_core.FrameResult`, so a run can
be kept without its frames::

    runs = {"previous": base_results, "msn": msn_results}
    guide_timeline(runs).show()
    score_heatmap(runs["msn"], baseline=runs["previous"]).show()
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from msn_core.errors import InputError
from msn_core.io import davis_palette, overlay_labels, resize_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "Click",
    "caption",
    "draw_clicks",
    "guide_timeline",
    "method_figure",
    "object_colour",
    "overlay",
    "per_frame_metric",
    "score_bars",
    "score_heatmap",
    "score_matrix",
    "series_colour",
    "side_by_side",
]

_PALETTE = davis_palette()
#: line colours: a baseline in slate, MSN in orange, further series after them
_SERIES = ["#64748b", "#ea580c", "#2563eb", "#16a34a", "#9333ea", "#db2777"]
_MSN_COLOUR = "#ea580c"
_FONT_FAMILY = "Inter, 'Segoe UI', Helvetica, Arial, sans-serif"


class _Result(Protocol):  # what the figures read of a FrameResult
    index: int
    guides: list[int]
    candidates: list[int]
    scores: dict[int, float]


Click = tuple[int, int, int, bool]  # (x, y, object id, positive)


# ------------------------------------------------------------------------ colours


def object_colour(object_id: int) -> str:
    """The DAVIS palette colour of object ``object_id`` as ``#rrggbb`` (what overlays use)."""
    if not 0 <= int(object_id) <= 255:
        raise InputError(f"object_colour: object id must be in 0..255, got {object_id}")
    r, g, b = (int(v) for v in _PALETTE[int(object_id)])
    return f"#{r:02x}{g:02x}{b:02x}"


def series_colour(i: int, name: str = "") -> str:
    """Line colour of the ``i``-th series; anything named like MSN is always orange."""
    if name.lower().startswith("msn"):
        return _MSN_COLOUR
    others = [c for c in _SERIES if c != _MSN_COLOUR]
    return others[i % len(others)]


# ------------------------------------------------------------------------- images


def _rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(f"{what}: expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    return image[..., :3]


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Objects of ``labels`` tinted in their palette colour with a contour; labels
    of another size are resized (nearest) to the frame first."""
    frame = _rgb(frame, "overlay")
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"overlay: labels must be (H, W) object ids, got shape {labels.shape}")
    if labels.shape != frame.shape[:2]:
        labels = resize_labels(labels, frame.shape[:2])
    return overlay_labels(frame, labels, alpha)


def draw_clicks(image: np.ndarray, clicks: Iterable[Click], radius: int | None = None) -> np.ndarray:
    """Annotation clicks as discs in the object's colour with a white ``+`` (positive)
    or ``-`` (negative) and a dark rim, so they read on any background."""
    out = Image.fromarray(_rgb(image, "draw_clicks").copy())
    draw = ImageDraw.Draw(out)
    r = radius or max(5, round(max(out.size) / 70))
    for x, y, obj, positive in clicks:
        fill = object_colour(obj) if positive else "#dc2626"
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline="#111827", width=max(1, r // 4))
        arm, w = round(r * 0.6), max(1, r // 3)
        draw.line((x - arm, y, x + arm, y), fill="white", width=w)
        if positive:
            draw.line((x, y - arm, x, y + arm), fill="white", width=w)
    return np.asarray(out)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def caption(
    image: np.ndarray,
    text: str,
    *,
    bar: tuple[int, int, int] = (24, 24, 27),
    accent: tuple[int, int, int] | None = None,
    size: int | None = None,
) -> np.ndarray:
    """``image`` with a dark title bar above it (and an optional accent stripe)."""
    img = _rgb(image, "caption")
    h, w = img.shape[:2]
    size = size or int(np.clip(round(w / 26), 11, 22))
    bar_h = round(size * 1.9)
    head = Image.new("RGB", (w, bar_h), bar)
    draw = ImageDraw.Draw(head)
    font = _font(size)
    if draw.textlength(text, font=font) > w - size:  # too long: cut and end with an ellipsis
        while len(text) > 1 and draw.textlength(text + "…", font=font) > w - size:
            text = text[:-1]
        text = text.rstrip() + "…"
    draw.text((round(size * 0.6), bar_h // 2), text, fill=(245, 245, 245), font=font, anchor="lm")
    if accent is not None:
        draw.rectangle((0, bar_h - max(2, size // 6), w, bar_h), fill=accent)
    return np.concatenate([np.asarray(head), img], axis=0)


def side_by_side(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    gap: int = 6,
    accents: Sequence[tuple[int, int, int] | None] | None = None,
) -> np.ndarray:
    """Images in a row (each scaled to the first one's height), optionally captioned,
    separated by ``gap`` dark pixels. Output width and height are even (for H.264)."""
    if not images:
        raise InputError("side_by_side: give at least one image")
    if titles is not None and len(titles) != len(images):
        raise InputError(f"side_by_side: {len(images)} images but {len(titles)} titles")
    h = _rgb(images[0], "side_by_side").shape[0]
    panels = []
    for i, img in enumerate(images):
        img = _rgb(img, "side_by_side")
        if img.shape[0] != h:
            w = max(2, round(img.shape[1] * h / img.shape[0]))
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
        if titles is not None:
            img = caption(img, titles[i], accent=accents[i] if accents else None)
        panels.append(img)
    sep = np.full((panels[0].shape[0], gap, 3), 24, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [sep, p]
    out = np.concatenate(row, axis=1)
    pad = ((0, out.shape[0] % 2), (0, out.shape[1] % 2), (0, 0))
    return np.pad(out, pad, mode="edge") if any(p[1] for p in pad) else out


# ------------------------------------------------------------------------ figures


def _layout(fig: go.Figure, title: str, height: int, **kw) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        height=height,
        margin={"l": 56, "r": 20, "t": 56, "b": 44},
        font={"family": _FONT_FAMILY, "size": 12},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hoverlabel={"font": {"family": _FONT_FAMILY}},
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
    _layout(fig, title or "Guide frame chosen for every frame", 330)
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
        return _layout(fig, title or "MSN score per candidate", 360)
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
            marker={"symbol": "circle-open", "size": 13, "color": _MSN_COLOUR, "line": {"width": 3}},
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
    _layout(fig, title or "MSN's score for every candidate at every frame", 380, plot_bgcolor="#f1f5f9")
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
            marker={"color": [_MSN_COLOUR if c in chosen else "#cbd5e1" for c in cands]},
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
    _layout(fig, title or default, 260, bargap=0.25)
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
    _layout(fig, title or f"{name} per frame", 300)
    fig.update_xaxes(title="frame")
    fig.update_yaxes(title=name, range=[0, 1.02] if name == "J" else None)
    return fig


def _box(fig: go.Figure, x0: float, x1: float, y0: float, y1: float, text: str, line: str, fill: str) -> None:
    fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line={"color": line, "width": 2}, fillcolor=fill)
    fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=text, showarrow=False, font={"size": 13})


def _arrow(fig: go.Figure, start: tuple[float, float], end: tuple[float, float], colour: str) -> None:
    fig.add_annotation(x=end[0], y=end[1], ax=start[0], ay=start[1], xref="x", yref="y", axref="x", ayref="y",
                       showarrow=True, arrowhead=3, arrowwidth=2, arrowcolor=colour, text="")  # fmt: skip


def _note(fig: go.Figure, x: float, y: float, text: str, **font) -> None:
    fig.add_annotation(x=x, y=y, text=text, showarrow=False, font={"size": 12, **font})


def method_figure() -> go.Figure:
    """A schematic of MSN: score every frame in the memory pool, propagate from the best."""
    import plotly.graph_objects as go

    fig = go.Figure()
    scores = [0.62, 0.35, 0.41, 0.88, 0.52, 0.47, 0.71]
    best = int(np.argmax(scores))
    w, step, top = 0.9, 1.15, 2.0  # frame width, spacing, bottom of the frame row
    centre = [i * step + w / 2 for i in range(len(scores))]
    for i, s in enumerate(scores):
        chosen = i == best
        colour = _MSN_COLOUR if chosen else "#94a3b8"
        _box(
            fig,
            i * step,
            i * step + w,
            top,
            top + 0.7,
            f"x<sub>{i}</sub>",
            colour,
            "#ffedd5" if chosen else "#f8fafc",
        )
        fig.add_shape(type="rect", x0=i * step + 0.15, x1=i * step + w - 0.15, y0=0.95, y1=0.95 + s * 0.8,
                      line={"width": 0}, fillcolor=colour)  # fmt: skip
        _note(fig, centre[i], 1.07 + s * 0.8, f"{s:.2f}", color="#334155", size=11)
    pool_mid = (len(scores) - 1) * step / 2 + w / 2
    _note(fig, pool_mid, top + 0.95, "<b>memory pool</b>: features of every processed frame, computed once")
    _note(fig, 1.3, 0.3, "<b>MSN</b> scores every candidate<br>against the target", color="#334155")
    tx = len(scores) * step + 0.9  # the target column
    _box(fig, tx, tx + 1.4, top, top + 0.7, "x<sub>t</sub>", "#2563eb", "#dbeafe")
    _note(fig, tx + 0.7, top + 0.95, "<b>target</b>")
    gx = centre[best]
    _box(fig, gx - 0.75, gx + 0.75, 0.0, 0.55, "guide x<sub>g</sub>, y<sub>g</sub>", _MSN_COLOUR, "#ffedd5")
    _box(fig, tx - 0.3, tx + 1.7, 0.0, 0.55, "TPN / STM-1 → y<sub>t</sub>", "#334155", "#ffffff")
    _arrow(fig, (gx, 0.93), (gx, 0.57), _MSN_COLOUR)
    _arrow(fig, (gx + 0.77, 0.27), (tx - 0.32, 0.27), _MSN_COLOUR)
    _arrow(fig, (tx + 0.7, top - 0.02), (tx + 0.7, 0.57), "#2563eb")
    _note(fig, (gx + tx) / 2 + 0.2, 0.4, "best-scoring frame", color=_MSN_COLOUR)
    fig.update_xaxes(visible=False, range=[-0.2, tx + 1.9])
    fig.update_yaxes(visible=False, range=[-0.15, top + 1.2])
    _layout(fig, "How MSN chooses a guide frame", 330, showlegend=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 44, "b": 10})
    return fig
