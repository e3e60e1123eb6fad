"""The demo in a real browser (Debian chromium through Playwright): open the page,
annotate with a click, propagate, compare, colourize, and save screenshots.

Screenshots go to ``$MSN_TEST_ARTIFACTS`` (default: ``<tmp>/msn_demo_screenshots``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from demo_server import chromium, open_page, serve_small_demo

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("offline_hub")]

ARTIFACTS = Path(os.environ.get("MSN_TEST_ARTIFACTS", Path(tempfile.gettempdir()) / "msn_demo_screenshots"))
RUN_TIMEOUT_MS = 180_000



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_small_demo(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with chromium(ARTIFACTS) as browser:
        yield open_page(browser, server)


def displayed_point(img, fx: float, fy: float) -> tuple[float, float]:
    """Page coordinates of the point at fractions (fx, fy) of the picture an <img> shows
    (the element may be larger than the picture: object-fit contain / scale-down)."""
    box = img.bounding_box()
    nw, nh, fit = img.evaluate("i => [i.naturalWidth, i.naturalHeight, getComputedStyle(i).objectFit]")
    scale = min(box["width"] / nw, box["height"] / nh)
    if fit == "scale-down":
        scale = min(scale, 1.0)
    dw, dh = nw * scale, nh * scale
    left, top = box["x"] + (box["width"] - dw) / 2, box["y"] + (box["height"] - dh) / 2
    return left + fx * dw, top + fy * dh


def shot(page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_segment_click_and_propagate_in_the_browser(page):
    img = page.locator("#seg-annotation img")
    img.wait_for(state="visible", timeout=60_000)  # the page opens on a bundled example
    page.get_by_text("from the DAVIS ground truth").wait_for(timeout=30_000)
    shot(page, "01_segment_loaded.png")

    page.get_by_role("tab", name="Brush").click()  # a brush stroke in gr.ImageEditor
    canvas = page.locator("#seg-editor canvas").first
    canvas.wait_for(state="visible", timeout=30_000)
    box = canvas.bounding_box()
    x0, y0 = box["x"] + 0.45 * box["width"], box["y"] + 0.5 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 25):
        page.mouse.move(x0 + 3 * i, y0 + (i % 4))
    page.mouse.up()
    page.get_by_role("button", name="Use the brush strokes").click()
    page.get_by_text("from brush strokes: object 1 (red)").wait_for(timeout=30_000)
    page.get_by_role("tab", name="Clicks").click()

    import msn_core

    _, masks = msn_core.example_sequence("dog")
    truth = msn_core.read_mask(masks[0])
    ys, xs = np.nonzero(truth)
    h, w = truth.shape
    for fx, fy in ((np.median(xs), np.median(ys)), (np.percentile(xs, 30), np.median(ys))):
        x, y = displayed_point(img, fx / w, fy / h)
        page.mouse.click(x, y)
        page.wait_for_timeout(500)
    page.get_by_text("from 2 clicks").wait_for(timeout=30_000)
    assert page.get_by_text("1 object(s)").count()

    page.locator("#seg-run").click()
    page.locator("#seg-status").get_by_text("Done").wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.locator("#seg-video video").count() == 1
    status = page.locator("#seg-status").inner_text()
    mean_j = float(re.search(r"Mean J against the DAVIS ground truth \(frames [^)]*\): ([0-9.]+)", status)[1])
    assert mean_j > 0.5, status  # two clicks + GrabCut + propagation follow the dog
    assert not page.locator(".toast-body.error").count()
    path = shot(page, "02_segment_done.png")
    assert path.stat().st_size > 10_000
    assert not page.errors, page.errors


def test_compare_view_in_the_browser(page):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-audit input[type=checkbox]").check()  # score every candidate against the truth
    page.locator("#cmp-run").click()
    page.locator("#cmp-status").get_by_text("Done").wait_for(timeout=RUN_TIMEOUT_MS)
    assert "Every candidate scored against the ground truth" in page.locator("#cmp-status").inner_text()
    page.locator("#cmp-view img").wait_for(state="visible", timeout=30_000)
    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=30_000)
    assert page.locator(".js-plotly-plot").count() >= 4  # timeline, heatmap, J, scores
    shot(page, "03_compare.png")
    assert not page.errors, page.errors


def test_colourize_and_about_in_the_browser(page):
    page.get_by_role("tab", name="Colourize").click()
    page.locator("#col-run").click()
    page.locator("#col-status").get_by_text("Done").wait_for(timeout=RUN_TIMEOUT_MS)
    assert "PSNR" in page.locator("#col-status").inner_text()
    shot(page, "04_colourize.png")
    page.get_by_role("tab", name="About").click()
    page.get_by_text("Perazzi").first.wait_for(timeout=10_000)
    shot(page, "05_about.png")
    assert not page.errors, page.errors
