"""Hugging Face Space entry point: the project's Gradio demo, unchanged.

On the Space, ``msn_core/`` and ``demos/`` are uploaded beside this file (see push.py);
in the repository they are one folder up. Either way this file only builds and launches
``demos.app.build_demo()``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for root in (HERE, HERE.parent):
    if (root / "demos").is_dir() and (root / "msn_core").is_dir():
        sys.path.insert(0, str(root))
        break

from demos.app import build_demo, launch  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    launch(
        demo,
        host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        port=int(os.environ.get("GRADIO_SERVER_PORT", os.environ.get("PORT", 7860))),
    )
