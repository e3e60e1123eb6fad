"""Shared fixtures: a DAVIS folder (the real one, else the bundled clips in its layout) and a short
real mp4 made from it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest
from davis_data import NEEDS_DAVIS, real_davis

from msn_core.config import DATA_DIR_ENV, default_data_dir
from msn_core.io import examples_as_davis

TMP_VIDEO_FRAMES = 24
TMP_VIDEO_FPS = 24
TMP_VIDEO_SIZE = (180, 320)  # (H, W)


@pytest.fixture(scope="session")
def real_davis_dir() -> Path:
    """The DAVIS-2016 root (``$MSN_DATA_DIR`` or ../shared/data/davis2016); skips if absent."""
    path = real_davis()
    if path is None:
        pytest.skip(f"{NEEDS_DAVIS} (or set ${DATA_DIR_ENV}; nothing at '{default_data_dir()}')")
    return path


@pytest.fixture(scope="session")
def davis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAVIS-layout root: DAVIS-2016 when present, else the bundled example clips (camel, dog,
    kite-surf; 30 frames at 428x240) copied into that layout, so the tests of the mechanics also run
    on a lone clone. Tests that need the real data (its sequences, sizes, lengths) take
    ``real_davis_dir`` instead."""
    return real_davis() or examples_as_davis(tmp_path_factory.mktemp("davis-examples"))


@pytest.fixture(scope="session")
def tmp_video(davis_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real H.264 mp4 written with PyAV: the first 24 frames of DAVIS ``dog`` (of the bundled
    clip without DAVIS), 320x180 (W x H), 24 fps."""
    frames = sorted((davis_dir / "JPEGImages" / "480p" / "dog").glob("*.jpg"))[:TMP_VIDEO_FRAMES]
    path = tmp_path_factory.mktemp("video") / "dog.mp4"
    h, w = TMP_VIDEO_SIZE
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(TMP_VIDEO_FPS), options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for index, file in enumerate(frames):
            rgb = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
            frame = av.VideoFrame.from_ndarray(
                cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA), format="rgb24"
            )
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: on a shared 2-core machine oversubscribed threads are 30x
    slower. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def offline_hub():
    """No 25 s of Hub retries on a machine without network (unless HF_HUB_OFFLINE is set already).
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("offline_hub")``."""
    import os

    with pytest.MonkeyPatch.context() as mp:
        if "HF_HUB_OFFLINE" not in os.environ:
            mp.setenv("HF_HUB_OFFLINE", "1")
        yield
