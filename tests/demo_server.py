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
