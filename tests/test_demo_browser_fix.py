"""Correcting a frame after a run, in a real browser (Debian chromium through Playwright): run on the
bundled example, scrub to frame 10, upload a mask for it, propagate forward again, and check that
frame 10 shows the correction, the frames before it are unchanged and the live preview no longer
shows the old mask; then correct frame 5 both ways and undo that correction. Through the API and on
the slicing itself: test_demo_fix.py."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from demo_server import chromium, open_page, serve_small_demo
from PIL import Image
from test_demo_browser import ARTIFACTS, RUN_TIMEOUT_MS, shot

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("offline_hub")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_small_demo(tmp_path_factory, default_frames=12) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with chromium(ARTIFACTS) as browser:
        yield open_page(browser, server)


def masks_download(page) -> list[np.ndarray]:
    """The masks of the Segment tab's masks zip, as the page offers it for download."""
    hrefs = page.locator("#seg-files a[href]").evaluate_all("links => links.map(a => a.href)")
    href = next(h for h in hrefs if h.split("?")[0].endswith("_masks.zip"))
    with zipfile.ZipFile(io.BytesIO(page.request.get(href).body())) as zf:
        return [np.asarray(Image.open(zf.open(n))) for n in sorted(zf.namelist())]


def shown(page, where: str = "#fix-view") -> np.ndarray:
    src = page.locator(f"{where} img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))


def redness(img: np.ndarray, region: np.ndarray) -> float:
    """Mean red minus green over ``region`` (object 1 is drawn in the DAVIS palette's red)."""
    px = img[region].astype(int)
    return float((px[:, 0] - px[:, 1]).mean())


def upload_correction(page, panel, t: int, mask: np.ndarray, path) -> None:
    number = page.locator("#fix-frame input[type=number]")
    number.fill(str(t))
    number.press("Enter")
    page.locator("#fix-note").get_by_text(f"Frame {t}").wait_for(timeout=30_000)
    Image.fromarray(mask).save(path)
    panel.get_by_role("tab", name="Mask file").click()
    # the tab's file box mounts on the click: a file set before it shows can miss its upload handler
    page.locator("#fix-mask-file").first.wait_for(state="visible", timeout=30_000)
    page.locator("#fix-mask-file input[type=file]").set_input_files(str(path))
    page.locator("#fix-note").get_by_text("Correction drawn (the uploaded mask").wait_for(timeout=30_000)


def test_correct_frame_10_and_propagate_forward_in_the_browser(page, tmp_path):
    page.get_by_text("from the DAVIS ground truth").wait_for(timeout=60_000)
    page.locator("#seg-run").click()
    page.locator("#seg-status").get_by_text("Done").wait_for(timeout=RUN_TIMEOUT_MS)
    panel = page.locator("#fix-panel").first  # gradio puts a group's id on two nested divs
    panel.wait_for(state="visible", timeout=30_000)
    before = masks_download(page)
    assert len(before) == 12
    live_before = shown(page, "#seg-live")  # the run's last frame, 11, with its mask

    h, w = before[10].shape
    fix = np.zeros((h, w), np.uint8)
    fix[: h // 3, : w // 3] = 1  # a box in the top-left corner, nothing like the dog
    upload_correction(page, panel, 10, fix, tmp_path / "frame10.png")
    page.locator("#fix-direction").get_by_text("forward", exact=False).first.click()
    page.locator("#fix-run").click()
    page.locator("#seg-status").get_by_text("Frame 10 corrected").wait_for(timeout=RUN_TIMEOUT_MS)
    assert "frames 10–11 propagated forward" in page.locator("#seg-status").inner_text()
    page.locator("#fix-note").get_by_text("corrected here, propagated forward").wait_for(timeout=30_000)
    page.locator("#fix-list-note").get_by_text("10").wait_for(timeout=30_000)

    view = shown(page)  # frame 10 shows the box in object 1's red, and no longer the dog
    k = view.shape[1] / w
    box = view[: round(k * h / 3) - 2, : round(k * w / 3) - 2].astype(int)
    assert (box[..., 0] - box[..., 1]).mean() > 40, box.mean((0, 1))
    after = masks_download(page)
    np.testing.assert_array_equal(after[10], fix)
    for t in range(10):
        np.testing.assert_array_equal(after[t], before[t])
    # the live preview shows frame 11 as it is now, not the run's old mask
    live = shown(page, "#seg-live")
    gone, new = (before[11] == 1) & (after[11] != 1), (after[11] == 1) & (before[11] != 1)
    assert max(gone.sum(), new.sum()) > 200, (gone.sum(), new.sum())
    if gone.sum() > 200:
        assert redness(live, gone) < redness(live_before, gone) - 20
    if new.sum() > 200:
        assert redness(live, new) > redness(live_before, new) + 20
    shot(page, "06_segment_corrected.png")
    assert not page.locator(".toast-body.error").count()
    assert not page.errors, page.errors


def test_correct_frame_5_both_ways_then_undo_it_in_the_browser(page, tmp_path):
    panel = page.locator("#fix-panel").first
    panel.wait_for(state="visible", timeout=30_000)  # after the frame-10 correction above
    before = masks_download(page)
    h, w = before[5].shape
    fix = np.zeros((h, w), np.uint8)
    fix[-h // 3 :, -w // 3 :] = 1  # the bottom-right corner
    upload_correction(page, panel, 5, fix, tmp_path / "frame5.png")
    page.locator("#fix-direction").get_by_text("both", exact=True).click()
    page.locator("#fix-run").click()
    page.locator("#seg-status").get_by_text("Frame 5 corrected").wait_for(timeout=RUN_TIMEOUT_MS)
    # between the run's annotation (0) and the correction of frame 10: frames 1-9
    assert "frames 1–9 propagated both" in page.locator("#seg-status").inner_text()
    both = masks_download(page)
    np.testing.assert_array_equal(both[5], fix)
    for t in (0, 10, 11):
        np.testing.assert_array_equal(both[t], before[t])
    page.locator("#fix-list-note").get_by_text("(both)").wait_for(timeout=30_000)

    page.locator("#fix-list input").click()
    page.get_by_role("option", name="frame 5 (both)").click()
    page.locator("#fix-undo").click()
    page.locator("#seg-status").get_by_text("Correction of frame 5 undone").wait_for(timeout=RUN_TIMEOUT_MS)
    assert "frames 1–9 recomputed" in page.locator("#seg-status").inner_text()
    undone = masks_download(page)
    for t in (0, 10, 11):
        np.testing.assert_array_equal(undone[t], before[t], err_msg=f"frame {t}")
    # frames 1-9 from frame 0's forward pass again, now reading frame 10's correction as memory too (so
    # not exactly the masks they had before it was made): frame 5's correction is gone from them
    for t in range(1, 10):
        assert not np.array_equal(undone[t], both[t]), t
    assert "(both)" not in page.locator("#fix-list-note").inner_text()
    shot(page, "07_segment_undone.png")
    assert not page.locator(".toast-body.error").count()
    assert not page.errors, page.errors
