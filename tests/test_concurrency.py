"""Eight demo sessions at once through ``gradio_client``: the same results as one at a
time, nothing crossing between users, and a cancelled run leaves no files behind.

The app runs in-process with four propagation runs allowed at once (a Space may set
``MSN_DEMO_CONCURRENCY``), so the cached pipelines really are shared by concurrent runs.
Each session uses its own example, annotation (ground truth, GrabCut clicks, an uploaded
mask), propagation network and selector.
"""

from __future__ import annotations

import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from demo_server import serve_demo
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `demos` is not an installed package

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

import msn_core  # noqa: E402
from demos import common  # noqa: E402
from demos.limits import Limits  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("one_thread")]

LIMITS = Limits(max_frames=30, default_frames=3, max_side=128, concurrency=4, queue_size=32)
FRAMES = 3
# (example, annotation, propagator, selector): eight users doing eight different things
SESSIONS = [
    ("dog", "truth", "tpn", "msn"),
    ("camel", "truth", "tpn", "previous"),
    ("kite-surf", "clicks", "tpn", "msn"),
    ("dog", "clicks", "stm", "previous"),
    ("camel", "mask", "tpn", "gap5"),
    ("kite-surf", "truth", "stm", "msn"),
    ("dog", "mask", "tpn", "similarity"),
    ("camel", "clicks", "tpn", "msn-top3"),
]



@pytest.fixture(scope="module")
def sessions_root(tmp_path_factory):
    return tmp_path_factory.mktemp("sessions")


@pytest.fixture(scope="module")
def server(sessions_root):
    with serve_demo(LIMITS, sessions_root) as url:
        yield url


@pytest.fixture(scope="module")
def masks_dir(tmp_path_factory):
    """An uploaded mask per 'mask' session: the lower half of the ground truth, as 0/255."""
    folder = tmp_path_factory.mktemp("masks")
    for example in {s[0] for s in SESSIONS if s[1] == "mask"}:
        truth = msn_core.read_mask(msn_core.io.example_path(example) / "00000.png")
        truth[: truth.shape[0] // 2] = 0
        Image.fromarray(truth * 255).save(folder / f"{example}.png")
    return folder


def run_session(url: str, index: int, masks_dir: Path, out: Path) -> dict:
    """One user, start to end, on a fresh client: load, annotate, propagate; what came back."""
    example, how, propagator, selector = SESSIONS[index]
    client = gradio_client.Client(url, verbose=False)
    info, *_ = client.predict(example, api_name="/segment_load_example")
    assert example in info
    if how == "clicks":
        h, w = msn_core.open_video(msn_core.io.example_path(example), max_side=LIMITS.max_side).out_size
        _, note = client.predict(w // 2, h // 2, 1, "positive", api_name="/segment_click")
    elif how == "mask":
        _, note = client.predict(gradio_client.handle_file(str(masks_dir / f"{example}.png")),
                                 api_name="/segment_use_mask")  # fmt: skip
    else:
        note = "ground truth"
    status, _, video, files = client.predict(propagator, selector, FRAMES, api_name="/segment_run")
    assert "Done" in status and f"{FRAMES} frames" in status, status
    zipped = next(f for f in files if f.endswith("_masks.zip"))
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zipped) as zf:
        names = sorted(zf.namelist())
        masks = [np.asarray(Image.open(zf.open(n))) for n in names]
    return {"masks": masks, "note": note, "frames": len(list(msn_core.open_video(video))),
            "session": client.session_hash}  # fmt: skip


def test_eight_sessions_at_once_match_one_at_a_time(server, masks_dir, tmp_path):
    start = time.perf_counter()
    alone = [run_session(server, i, masks_dir, tmp_path / f"alone{i}") for i in range(len(SESSIONS))]
    t_alone = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(SESSIONS)) as pool:
        futures = [pool.submit(run_session, server, i, masks_dir, tmp_path / f"together{i}")
                   for i in range(len(SESSIONS))]  # fmt: skip
        together = [f.result(timeout=300) for f in futures]
    t_together = time.perf_counter() - start
    print(f"\n{len(SESSIONS)} sessions: {t_alone:.1f} s one at a time, {t_together:.1f} s at once "
          f"({LIMITS.concurrency} runs at a time)")  # fmt: skip
    for i, (a, b) in enumerate(zip(alone, together)):
        assert a["frames"] == b["frames"] == FRAMES
        assert len(a["masks"]) == len(b["masks"]) == FRAMES
        for t, (ma, mb) in enumerate(zip(a["masks"], b["masks"])):
            np.testing.assert_array_equal(ma, mb, err_msg=f"session {i} {SESSIONS[i]}, frame {t}")
        assert a["note"] == b["note"]
    # no state crossed: each session got back its own annotation as frame 0, and they differ
    firsts = [r["masks"][0] for r in together]
    for i, (example, how, *_) in enumerate(SESSIONS):
        assert firsts[i].shape == msn_core.open_video(msn_core.io.example_path(example),
                                                      max_side=LIMITS.max_side).out_size  # fmt: skip
        if how == "truth":
            truth = msn_core.io.resize_labels(
                msn_core.read_mask(msn_core.io.example_path(example) / "00000.png"), firsts[i].shape
            )
            np.testing.assert_array_equal(firsts[i], truth, err_msg=f"session {i}")
        if how == "mask":  # only the lower half was marked
            assert firsts[i].any() and not firsts[i][: firsts[i].shape[0] // 2 - 1].any()
    assert len({(f.shape, f.tobytes()) for f in firsts}) == len(SESSIONS)  # eight different annotations
    assert len({r["session"] for r in together}) == len(SESSIONS)


def test_cancelled_run_removes_its_files_and_frees_the_slot(server, sessions_root):
    client = gradio_client.Client(server, verbose=False)
    client.predict("dog", api_name="/segment_load_example")
    job = client.submit("tpn", "msn", LIMITS.max_frames, api_name="/segment_run")
    work = sessions_root / client.session_hash / "segment"
    deadline = time.monotonic() + 120
    writing = lambda: work.is_dir() and any(work.rglob("*.png"))  # noqa: E731  (the first frame's files)
    while not writing() and time.monotonic() < deadline:  # the first update may come before them (the wait)
        time.sleep(0.05)
    assert writing() and not job.done(), "the run wrote no frame within 120 s"
    job.cancel()
    deadline = time.monotonic() + 60
    while (not job.done() or work.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.status().code.name == "CANCELLED"
    assert not work.exists(), sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    assert not [p for p in (sessions_root / client.session_hash).rglob("*") if ".tmp" in p.name]
    status, *_ = client.predict("tpn", "previous", 2, api_name="/segment_run")  # the slot is free again
    assert "Done" in status and work.is_dir()  # a finished run keeps its files (they are served)


def test_sessions_showing_the_same_image_never_see_it_half_written(tmp_path):
    """Gradio caches images under their content hash; two sessions showing the same image write
    the same file. With the demo's fix a reader never sees it truncated (gradio's own
    ``write_bytes`` truncates it under a concurrent download)."""
    from gradio import processing_utils

    common.fix_gradio_image_cache()
    image = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)  # ~1 MB as PNG
    path = Path(processing_utils.save_img_array_to_cache(image, str(tmp_path), format="png"))
    size = path.stat().st_size
    stop = time.monotonic() + 1.0
    short: list[int] = []

    def write() -> None:
        while time.monotonic() < stop:
            processing_utils.save_img_array_to_cache(image, str(tmp_path), format="png")

    def read() -> None:
        while time.monotonic() < stop:
            n = len(path.read_bytes())
            if n != size:
                short.append(n)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for f in [pool.submit(write), pool.submit(write), pool.submit(read), pool.submit(read)]:
            f.result()
    assert not short, f"{len(short)} reads saw a half-written image ({min(short)} of {size} bytes)"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
