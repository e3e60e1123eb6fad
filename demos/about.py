"""About tab: what MSN does, a figure, the model card and the DAVIS credit."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

import msn_core
from demos.common import sides_text
from msn_core import viz

PACKAGE = Path(msn_core.__file__).resolve().parent
MODEL_CARD = PACKAGE / "weights" / "README.md"
CREDITS = PACKAGE / "assets" / "examples" / "CREDITS.md"

INTRO = """
### Memory Selection Network for Video Propagation

*Ruizheng Wu, Huaijia Lin, Xiaojuan Qi, Jiaya Jia — ECCV 2020.*

Video propagation carries what is known in one frame — an object mask, or colours — to the
others. Most methods always propagate from the **previous** frame, so one mistake spreads to every
later frame. **MSN** keeps the features of every processed frame in a *memory pool* and, for each new
frame, scores every candidate guide with a small two-stream network: correlation volumes between the
candidate, the target and the annotated first frame, plus their stacked features (the mask MSNs also know
which candidates are frames you annotated or corrected). The best-scoring frame becomes the guide handed
to the propagation network (**TPN** or **STM-1**); the features are computed once per frame, so selection
adds little time.
"""


def _read(path: Path, missing: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return missing


def build(limits) -> None:
    """The About tab's components (inside a ``gr.Tab``)."""
    gr.Markdown(INTRO)
    gr.Plot(viz.method_figure(), label="How MSN chooses a guide", show_label=False)
    with gr.Accordion("Model card (weights)", open=False):
        gr.Markdown(_read(MODEL_CARD, "The model card is not installed with this package."))
    credits = _read(CREDITS, "# Data credit\nDAVIS-2016: https://davischallenge.org")
    gr.Markdown(re.sub(r"^# ", "### ", credits, flags=re.M))  # the file's title as a section heading
    gr.Markdown(
        f"### This demo's limits\nAt most {limits.max_frames} frames per run, frames downscaled to "
        f"{limits.max_side} px on the long side (the networks run at {sides_text(limits)}, or at "
        f"{limits.adapted_side} after adapting to the annotation), uploads up to {limits.max_upload_mb} MB, "
        f"{limits.concurrency} run(s) at a time; your files are deleted when you close the page "
        f"(or after {limits.session_ttl_s // 60} minutes).  \n`msn_core` {msn_core.__version__}.",
        elem_classes=["msn-hint"],
    )
