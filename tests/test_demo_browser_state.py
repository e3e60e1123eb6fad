"""What a user sees of the demo's state and messages, in a real browser (Debian chromium through
Playwright): a failed or removed upload, the Compare tab's "your video" with nothing uploaded, error
toasts without errno noise, the network help, and quick clicks on the first frame.
The same through the API: test_demo_state.py."""

from __future__ import annotations

import time

import numpy as np
import pytest
from demo_server import chromium, serve_small_demo
from test_demo_browser import ARTIFACTS, displayed_point, shot

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("offline_hub")]

TOAST = ".toast-body.error"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_small_demo(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium(ARTIFACTS) as browser:
        yield browser


@pytest.fixture
def page(browser, server):
    """A fresh session on the page as it opens: the bundled example, its ground truth marked."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_text("from the DAVIS ground truth").wait_for(timeout=60_000)
    page.errors = errors
    yield page
    context.close()


def toast_with(page, text: str) -> str:
    """The text of the error toast that says ``text`` (waited for)."""
    toast = page.locator(TOAST).filter(has_text=text).first
    toast.wait_for(timeout=60_000)
    return toast.inner_text()


def test_a_failed_upload_says_so_and_propagate_runs_nothing(page, tmp_path):
    bad = tmp_path / "holiday.mp4"  # not a video: PyAV's "invalid data" error, errno and all
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    page.locator("#seg-upload input[type=file]").set_input_files(str(bad))
    text = toast_with(page, "is not a readable video")
    assert "Errno" not in text and "1094995529" not in text and text.count("holiday.mp4") == 1, text
    page.locator("#seg-info").get_by_text("could not be read").wait_for(timeout=30_000)
    assert page.locator("#seg-annotation img").count() == 0  # the example's frame is gone
    assert "No video" in page.locator("#seg-annotation-note").inner_text()

    page.locator("#seg-run").click()
    text = toast_with(page, "no usable video")
    assert "'holiday.mp4' could not be read" in text, text
    page.wait_for_timeout(1500)
    status = page.locator("#seg-status").inner_text()
    assert "Propagating" not in status and "Done" not in status, status  # nothing ran
    assert page.locator("#seg-video video").count() == 0
    assert all("Errno" not in t for t in page.locator(TOAST).all_inner_texts())
    shot(page, "10_failed_upload.png")
    assert not page.errors, page.errors


def test_removing_the_upload_resets_the_tab(page, tmp_video):
    page.locator("#seg-upload input[type=file]").set_input_files(str(tmp_video))
    page.locator("#seg-annotation-note").get_by_text("No object marked yet").wait_for(timeout=60_000)
    assert page.locator("#seg-annotation img").count() == 1 and "dog" in page.locator("#seg-info").inner_text()

    page.locator('#seg-upload button[aria-label="Clear"]').click()  # the upload's ×
    page.locator("#seg-annotation-note").get_by_text("No video: upload a video").wait_for(timeout=30_000)
    assert page.locator("#seg-annotation img").count() == 0  # no frame, no mask
    assert "pick a bundled example" in page.locator("#seg-info").inner_text()
    page.locator("#seg-run").click()
    toast_with(page, "load a video first")
    assert "Done" not in page.locator("#seg-status").inner_text()
    shot(page, "11_upload_removed.png")
    assert not page.errors, page.errors


def test_compare_your_video_refuses_the_bundled_clip(page):
    from demos.compare import SEGMENT_SOURCE

    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-source input").click()
    page.get_by_role("option", name=SEGMENT_SOURCE).click()
    page.locator("#cmp-run").click()
    text = toast_with(page, "nothing was uploaded")
    assert "bundled example 'dog'" in text and "pick 'dog' in the Video list" in text, text
    page.wait_for_timeout(1500)
    assert "Done" not in page.locator("#cmp-status").inner_text()
    assert page.locator("#cmp-video video").count() == 0
    shot(page, "12_compare_refuses.png")
    assert not page.errors, page.errors


def test_network_help_describes_the_selected_network(page):
    info = page.locator("#seg-propagator .info-text")
    selected = page.locator("#seg-propagator label.selected").inner_text().strip()
    assert info.inner_text().startswith(f"{selected}:"), (selected, info.inner_text())
    for label in ("TPN", "STM-1", "TPN + STM-1", "TPN"):
        page.locator(f'#seg-propagator label[data-testid="{label}-radio-label"]').click()
        page.wait_for_function(
            "([el, label]) => el.innerText.startsWith(label + ':')", arg=[info.element_handle(), label], timeout=10_000
        )
    text = info.inner_text()
    assert text.startswith("TPN:") and "STM" not in text, text
    assert not page.errors, page.errors


def test_quick_clicks_on_the_first_frame_all_count(page, monkeypatch):
    """A click made while the previous one is still being cut out is queued, not dropped."""
    import msn_core
    from demos import annotate

    cut = annotate.labels_from_clicks

    def slow(frame, clicks):  # each click takes a while, as GrabCut does on a large frame
        time.sleep(1.5)
        return cut(frame, clicks)

    monkeypatch.setattr(annotate, "labels_from_clicks", slow)  # the server runs in this process
    _, masks = msn_core.example_sequence("dog")
    truth = msn_core.read_mask(masks[0])
    ys, xs = np.nonzero(truth)
    h, w = truth.shape
    img = page.locator("#seg-annotation img")
    points = [displayed_point(img, fx / w, fy / h) for fx, fy in
              ((np.median(xs), np.median(ys)), (np.percentile(xs, 30), np.median(ys)))]  # fmt: skip
    for x, y in points:  # the second click lands while the first is still being processed
        page.mouse.click(x, y)
        page.wait_for_timeout(200)
    page.locator("#seg-annotation-note").get_by_text("from 2 clicks").wait_for(timeout=30_000)
    page.wait_for_timeout(2000)
    assert "from 2 clicks" in page.locator("#seg-annotation-note").inner_text()
    assert not page.locator(TOAST).count()
    shot(page, "13_quick_clicks.png")
    assert not page.errors, page.errors


def test_a_box_drawn_on_the_first_frame_cuts_out_the_object(page):
    """Box mode: two clicks on opposite corners around the dog give its mask, drawn inside the box."""
    import msn_core

    _, masks = msn_core.example_sequence("dog")
    truth = msn_core.read_mask(masks[0])
    ys, xs = np.nonzero(truth)
    h, w = truth.shape
    img = page.locator("#seg-annotation img")
    page.locator("#seg-click-mode").get_by_text("box", exact=True).click()
    page.mouse.click(*displayed_point(img, max(0, xs.min() - 4) / w, max(0, ys.min() - 4) / h))
    page.locator("#seg-annotation-note").get_by_text("click the opposite corner").wait_for(timeout=30_000)
    page.mouse.click(*displayed_point(img, min(w - 1, xs.max() + 4) / w, min(h - 1, ys.max() + 4) / h))
    note = page.locator("#seg-annotation-note")
    note.get_by_text("from 1 box").wait_for(timeout=30_000)
    share = float(note.inner_text().split("object 1 (red):")[1].split("%")[0])
    assert abs(share - 100 * (truth > 0).mean()) < 4, share  # about the dog's area (10.7 %)
    assert not page.locator(TOAST).count()
    shot(page, "14_box.png")
    assert not page.errors, page.errors
