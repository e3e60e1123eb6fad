"""Shared helpers for the benchmark scripts: real DAVIS frames as a stream, timers, memory."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

import msn_core
from msn_core.config import default_data_dir

RESULTS = Path(__file__).resolve().parent / "results"
SEQUENCES = ("dog", "camel", "kite-surf", "horsejump-high", "soapbox")  # validation sequences


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-dir", default=None, help="DAVIS root (default: $MSN_DATA_DIR or ../shared/data/davis2016)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", default="auto", help="'auto' (bundled/Hub) or 'none' (same architecture, untrained)")
    return p


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def weights_arg(value: str):
    return None if value == "none" else value


def sequence_frames(data_dir, name: str, limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The frames (original 854x480) of one DAVIS sequence and its first mask."""
    source, masks = msn_core.davis_sequence(data_dir or default_data_dir(), name)
    frames = list(itertools.islice(source, limit))
    return frames, msn_core.read_mask(masks[0])


def looped(data_dir, name: str, n: int) -> Iterator[np.ndarray]:
    """``n`` real frames streamed from disk, the sequence played forwards then backwards
    (ping-pong, so motion stays continuous), decoded one at a time."""
    source, _ = msn_core.davis_sequence(data_dir or default_data_dir(), name)
    paths = list(source.frame_paths)
    order = paths + paths[-2:0:-1]
    from PIL import Image

    for i in range(n):
        yield np.asarray(Image.open(order[i % len(order)]).convert("RGB"))


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {dev}"


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1))
    print(f"saved {path}")
    return path


def timed_run(pipe, frames, first, selector: str, skip: int = 3) -> list[float]:
    """Seconds per frame for frames ``skip``.. (the first ones warm up caches)."""
    return [r.seconds for r in pipe.propagate(frames, first, selector=selector)][skip:]
