"""One way for the tests to serve the Gradio demo: in-process, on a free loopback port, the sessions'
files in a pytest temp folder, the Hub skipped (no 25 s of retries on a machine without network)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_demo(limits, sessions_root: Path) -> Iterator[str]:
    """Build and launch the demo with ``limits``; yields its URL and closes it afterwards."""
    from demos import common
    from demos.app import build_demo, launch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "TEMP_ROOT", sessions_root)
        mp.setenv("HF_HUB_OFFLINE", "1")
        demo = build_demo(limits)
        _, url, _ = launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            yield url
        finally:
            demo.close()


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip


def serve_small_demo(tmp_path_factory, default_frames: int = 8) -> contextlib.AbstractContextManager[str]:
    """The demo the browser tests drive: at most 12 frames of 320 px, ``default_frames`` by default."""
    pytest.importorskip("gradio")
    from demos.limits import Limits

    limits = Limits(max_frames=12, default_frames=default_frames, max_side=320)
    return serve_demo(limits, tmp_path_factory.mktemp("sessions"))


@contextlib.contextmanager
def chromium(artifacts: Path) -> Iterator:
    """Debian's chromium, headless, through Playwright (skips where it is not installed)."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api")
    if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str):
    """A new page on ``url`` that records the page's JavaScript errors in ``page.errors``."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="domcontentloaded")
    page.errors = errors
    return page
