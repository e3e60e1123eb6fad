"""SIGINT (Ctrl-C) and SIGTERM to a running ``msn propagate``: the frames written so far
stay intact and valid, the command says where it stopped, exits 130 (143), and leaves
no temporary file. A real subprocess on a bundled DAVIS example."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from msn_core.io import example_path, open_video, read_mask

EXAMPLE = "camel"  # 30 frames


def start(out: Path) -> subprocess.Popen:
    folder = example_path(EXAMPLE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "msn_core.cli", "propagate", str(folder), "--mask", str(folder / "00000.png"),
         "--out", str(out), "--weights", "none", "--max-side", "96"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def wait_for_frames(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(list(out.glob("[0-9]*.png"))) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {n} frames written (exit {proc.poll()}): {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)


def check_stopped(proc: subprocess.Popen, out: Path, code: int) -> int:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the command did not stop within 60 s of the signal")
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    record = json.loads((out / "propagation.json").read_text())
    done = record["interrupted_at"]
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:05d}.png" for i in range(done)] + ["overlay.mp4", "propagation.json"], names
    assert 3 <= done < 30 and len(record["frames"]) == done
    last = f"{done - 1:05d}"
    assert f"interrupted: stopped at frame {done}; frames 00000..{last} and overlay.mp4 are complete" in err
    first = read_mask(example_path(EXAMPLE) / "00000.png")
    for i in range(done):  # every frame written is a whole, readable mask of the video's size
        labels = read_mask(out / f"{i:05d}.png")
        assert labels.shape == first.shape and set(np.unique(labels)) <= {0, 1}
    assert (read_mask(out / "00000.png") == first).mean() > 0.98  # the annotation, through the 96 px pass
    assert sum(1 for _ in open_video(out / "overlay.mp4")) == done  # the overlay is complete, not cut off
    assert not [p for p in out.iterdir() if p.name.startswith(".") or ".tmp" in p.name]
    return done


def test_sigint_keeps_the_frames_written_so_far(tmp_path):
    out = tmp_path / "out"
    proc = start(out)
    wait_for_frames(proc, out, 3)
    proc.send_signal(signal.SIGINT)
    check_stopped(proc, out, 130)


def test_sigterm_stops_the_same_way(tmp_path):
    out = tmp_path / "out"
    proc = start(out)
    wait_for_frames(proc, out, 3)
    proc.send_signal(signal.SIGTERM)
    check_stopped(proc, out, 143)
