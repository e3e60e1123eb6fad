"""The MSN demo: ``python -m demos.app`` (or ``make demo``) serves it at http://127.0.0.1:7860.

``build_demo()`` only wires the tabs together; each tab is a small module
(segment, compare, colourize, about) calling the public ``msn_core`` API.
"""

from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from demos import about, annotate, colourize, compare, segment
from demos.common import default_example, fix_gradio_image_cache, get_pipeline, remove_session
from demos.limits import Limits
from msn_core import viz
from msn_core.config import default_propagator

HOST, PORT = "127.0.0.1", 7860
THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="slate", neutral_hue="slate")
CSS = """
.msn-banner { border-left: 4px solid #ea580c; background: #fff7ed; padding: 8px 14px !important;
              border-radius: 6px; }
#seg-objects label span::before, #fix-objects label span::before { content: "■"; font-size: 1.35em;
    margin-right: 4px; vertical-align: -2px; }
#seg-objects label.selected span::before, #fix-objects label.selected span::before { text-shadow: 0 0 0 1px white; }
.msn-hint { color: #475569; font-size: 0.92em; }
.msn-info { font-size: 0.92em; }
#msn-title h1 { margin-bottom: 0; }
""" + "".join(  # each object choice's swatch in the colour its overlay uses
    f"#seg-objects label:nth-of-type({i}) span::before, #fix-objects label:nth-of-type({i}) span::before "
    f"{{ color: {viz.object_colour(i)}; }}\n"
    for i in range(1, annotate.MAX_OBJECTS + 1)
)


def weights_banner(max_side: int) -> str:
    """The page-load notice: empty when trained weights are in use."""
    try:
        _, notice = get_pipeline(default_propagator("mask"), "mask", max_side)  # loaded once, kept for runs
    except Exception as exc:  # the page must still open; runs will report the error
        logging.getLogger("msn_demo").exception("loading the default pipeline failed")
        return f"⚠️ The networks could not be loaded: {type(exc).__name__}. Runs will show the error."
    return f"⚠️ {notice}" if notice else ""


def _banner_update(limits: Limits):
    def update():
        text = weights_banner(limits.network_side(0, default_propagator("mask")))
        return gr.update(value=text, visible=bool(text))

    return update


def build_demo(limits: Limits | None = None) -> gr.Blocks:
    """The whole demo, with its queue configured; launch it with :func:`launch`."""
    limits = limits or Limits.from_env()
    fix_gradio_image_cache()  # concurrent sessions showing the same image (see demos.common)
    start = default_example()
    with gr.Blocks(
        title="MSN · Memory Selection Network",
        delete_cache=(600, limits.session_ttl_s),
        analytics_enabled=False,
    ) as demo:
        gr.Markdown(
            "# Memory Selection Network for video propagation\n"
            "Propagate object masks or colours through a video, and see **which earlier frame guided each "
            "frame, and why** (Wu, Lin, Qi, Jia, ECCV 2020).",
            elem_id="msn-title",
        )
        banner = gr.Markdown("", elem_classes=["msn-banner"], elem_id="msn-banner", visible=False)
        with gr.Tabs():
            with gr.Tab("Segment", id="segment"):
                seg = segment.build(limits)
            with gr.Tab("Compare", id="compare"):
                compare.build(limits, seg.state)
            with gr.Tab("Colourize", id="colourize"):
                colourize.build(limits)
            with gr.Tab("About", id="about"):
                about.build(limits)
        demo.load(_banner_update(limits), None, banner, api_visibility="private")
        if start:  # open on a bundled example, ground truth marked: one click on Propagate
            demo.load(lambda: segment.load_example(start, limits), None, seg.loaded, api_visibility="private")
        demo.unload(remove_session)
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    demo.msn_limits = limits  # read by launch()
    return demo


def launch(demo: gr.Blocks, *, host: str = HOST, port: int | None = PORT, **kwargs):
    """Start the server with the demo's theme, CSS and upload cap; returns (app, local_url, share_url)."""
    limits: Limits = getattr(demo, "msn_limits", None) or Limits()
    return demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=limits.max_upload_bytes,
        theme=THEME,
        css=CSS,
        footer_links=["api", "gradio"],
        **kwargs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demos.app", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("MSN_DEMO_HOST", HOST), help=f"default {HOST}")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("MSN_DEMO_PORT", PORT)), help=f"default {PORT}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    limits = Limits.from_env()
    print("Loading the networks (the first start takes longest)…", flush=True)
    weights_banner(limits.network_side(0, default_propagator("mask")))
    launch(build_demo(limits), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
