"""Pictures of a propagation run: overlays, captioned panels and Plotly figures.

Images are (H, W, 3) uint8 RGB. The figures read only ``index``, ``guides``,
``candidates`` and ``scores`` of each :class:`msn_core.FrameResult`, so a run can
be kept without its frames::

    runs = {"previous": base_results, "msn": msn_results}
    guide_timeline(runs).show()
    score_heatmap(runs["msn"], baseline=runs["previous"]).show()

One module per job: ``colours`` (palette and line colours), ``images`` (overlays, clicks, captioned
panels), ``figures`` (Plotly figures of the selections), ``method`` (the schematic of MSN);
``from msn_core.viz import X`` reaches all of them.
"""

from __future__ import annotations

from msn_core.viz.colours import object_colour, series_colour
from msn_core.viz.figures import guide_timeline, per_frame_metric, score_bars, score_heatmap, score_matrix
from msn_core.viz.images import Click, caption, draw_clicks, overlay, side_by_side
from msn_core.viz.method import method_figure

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
