"""A schematic of the method (MSN picks the guide from the memory pool) as a Plotly figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from msn_core.viz.colours import MSN_COLOUR
from msn_core.viz.figures import layout

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
        colour = MSN_COLOUR if chosen else "#94a3b8"
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
    _box(fig, gx - 0.75, gx + 0.75, 0.0, 0.55, "guide x<sub>g</sub>, y<sub>g</sub>", MSN_COLOUR, "#ffedd5")
    _box(fig, tx - 0.3, tx + 1.7, 0.0, 0.55, "TPN / STM-1 → y<sub>t</sub>", "#334155", "#ffffff")
    _arrow(fig, (gx, 0.93), (gx, 0.57), MSN_COLOUR)
    _arrow(fig, (gx + 0.77, 0.27), (tx - 0.32, 0.27), MSN_COLOUR)
    _arrow(fig, (tx + 0.7, top - 0.02), (tx + 0.7, 0.57), "#2563eb")
    _note(fig, (gx + tx) / 2 + 0.2, 0.4, "best-scoring frame", color=MSN_COLOUR)
    fig.update_xaxes(visible=False, range=[-0.2, tx + 1.9])
    fig.update_yaxes(visible=False, range=[-0.15, top + 1.2])
    layout(fig, "How MSN chooses a guide frame", 330, showlegend=False)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 44, "b": 10})
    return fig
