"""Whole videos in the demo: the frame cap follows where the networks run (a GPU takes a 10 s clip at
30 fps, a CPU starts lower), frames are streamed from disk, and on a CPU the Segment tab says how long
the run will take, from this run's own timed frames."""

from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("gradio")

from demos import estimate, segment  # noqa: E402
from demos.common import open_upload  # noqa: E402
from demos.estimate import WaitEstimate, duration  # noqa: E402
from demos.limits import FRAMES, Limits, device, frame_caps  # noqa: E402
from msn_core.io import VideoWriter  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing")]


# --------------------------------------------------------------------------- the cap


def test_a_gpu_takes_ten_seconds_at_30_fps_and_a_cpu_starts_lower():
    gpu, cpu = frame_caps("cuda"), frame_caps("cpu")
    assert gpu[0] >= 300 and gpu[1] <= gpu[0]
    assert cpu[1] < gpu[1] and cpu[1] <= cpu[0] <= gpu[0]
    assert frame_caps("cuda:1") == gpu and frame_caps("mps") == cpu
    assert (Limits.for_device("cuda").max_frames, Limits.for_device("cuda").default_frames) == gpu
    assert (Limits.for_device("cpu").max_frames, Limits.for_device("cpu").default_frames) == cpu
    assert Limits.for_device("cuda", max_frames=40).default_frames == 40  # the slider never starts above the cap


def test_the_defaults_follow_the_device_setting(monkeypatch):
    for where in ("cuda", "cpu"):
        monkeypatch.setenv("MSN_DEVICE", where)
        assert device() == where
        assert (Limits().max_frames, Limits().default_frames) == FRAMES[where]
        assert Limits.from_env({}).max_frames == FRAMES[where][0]
    monkeypatch.setenv("MSN_DEVICE", "cuda")
    assert Limits.from_env({"MSN_DEMO_MAX_FRAMES": "90"}).max_frames == 90  # the environment decides first
    assert Limits.from_env({"MSN_MAX_FRAMES": "100"}).max_frames == 100  # and the engine's cap holds
    assert Limits(max_frames=12, default_frames=8).max_frames == 12


def _video(path, n: int, fps: int = 30):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)
    with VideoWriter(path, fps) as w:
        for i in range(n):
            w.write(np.roll(base, i, axis=1))
    return path


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A 10.3 s clip at 30 fps (310 frames, 64x36: quick to decode)."""
    return _video(tmp_path_factory.mktemp("long") / "phone.mp4", 310)


def test_a_ten_second_clip_is_taken_whole_on_a_gpu_and_streamed(long_clip, tmp_path):
    gpu = Limits.for_device("cuda", max_side=64)
    clip = open_upload(str(long_clip), gpu)
    assert clip.max_frames == 300 == clip.num_frames
    assert "Only the first 300 of 310 frames" in clip.describe()
    frames = clip.frames()
    assert isinstance(frames, types.GeneratorType)  # decoded one at a time, not a list in memory
    assert sum(1 for _ in frames) == 300
    whole = open_upload(str(_video(tmp_path / "ten.mp4", 300)), gpu)  # exactly 10 s: all of it, no notice
    assert whole.num_frames == 300 and "Only the first" not in whole.describe()
    cpu = open_upload(str(long_clip), Limits.for_device("cpu", max_side=64))
    assert cpu.num_frames == FRAMES["cpu"][0] and f"first {FRAMES['cpu'][0]} of 310" in cpu.describe()


# --------------------------------------------------------------------------- the wait


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_estimate_is_frames_left_times_the_timed_seconds_per_frame(monkeypatch):
    monkeypatch.setattr(estimate, "_LAST", {})
    clock = Clock()
    wait = WaitEstimate(122, kind="k", clock=clock)
    assert "122 frames to propagate; the expected wait is shown once the first frames are timed" in wait.before()
    wait.frame_done()  # frame 0 (reads the annotation: not timed)
    clock.now += 0.5
    wait.frame_done()
    assert wait.text() is None and wait.seconds_per_frame is None  # one timed frame is not enough
    clock.now += 1.5
    wait.frame_done()
    assert wait.seconds_per_frame == pytest.approx(1.0)
    assert wait.text() == "about **1 min 59 s** left (119 frames × 1.00 s per frame, timed on frames 1–2 of this run)"
    wait.finish()
    later = WaitEstimate(30, kind="k", clock=clock).before()
    assert later == ("30 frames to propagate: about **30 s** (1.00 s per frame, as the last run like this one "
                     "on this machine).")  # fmt: skip
    assert "expected wait is shown once" in WaitEstimate(30, kind="other", clock=clock).before()
    assert [duration(s) for s in (0.2, 45, 60, 200, 3900)] == ["under 1 s", "45 s", "1 min", "3 min 20 s", "1 h 05 min"]


@pytest.mark.usefixtures("offline_hub", "one_thread")
def test_a_cpu_run_shows_its_wait_and_a_gpu_run_does_not(monkeypatch):
    monkeypatch.setattr(estimate, "_LAST", {})
    limits = Limits(max_frames=6, default_frames=6, max_side=214, process_side=214)
    s = segment.load_example("dog", limits)[0]
    segment.use_truth(s)
    monkeypatch.setattr(segment, "on_cpu", lambda: True)
    first = [m[0] for m in segment.run(s, "tpn", "msn", 6, limits)]
    assert first[0] == "6 frames to propagate; the expected wait is shown once the first frames are timed."
    timed = [m for m in first if "left (" in m]
    assert timed and "3 frames ×" in timed[0] and "timed on frames 1–2 of this run" in timed[0], first
    assert first[-1].startswith("**Done**")
    again = [m[0] for m in segment.run(s, "tpn", "msn", 6, limits)]
    assert "as the last run like this one on this machine" in again[0]
    monkeypatch.setattr(segment, "on_cpu", lambda: False)
    gpu = [m[0] for m in segment.run(s, "tpn", "msn", 6, limits)]
    assert not [m for m in gpu if "frames to propagate" in m or "left (" in m]


def test_a_correction_reads_the_run_frames_from_the_video_as_it_uses_them():
    from demos.corrections import RunFrames

    opened, decoded = [], []

    def open_frames(n):
        opened.append(n)
        for t in range(n):
            decoded.append(t)
            yield np.full((2, 2, 3), t, np.uint8)

    frames = RunFrames(open_frames, 10)
    assert len(frames) == 10 and not opened  # nothing is read up front
    part = frames[3:7]
    assert len(part) == 4 and [int(f[0, 0, 0]) for f in part] == [3, 4, 5, 6]
    assert [int(f[0, 0, 0]) for f in part] == [3, 4, 5, 6]  # a slice can be read again (a pass may)
    assert int(frames[-1][0, 0, 0]) == 9 and int(part[1][0, 0, 0]) == 4 and len(frames[8:20]) == 2
    assert max(decoded) == 9 and opened == [10] * 4
    short = RunFrames(lambda n: iter([np.zeros((2, 2, 3), np.uint8)] * 3), 5)
    with pytest.raises(Exception, match="fewer frames than the run had"):
        list(short)


@pytest.mark.usefixtures("offline_hub", "one_thread")
def test_compare_and_colourize_show_the_wait_on_a_cpu(monkeypatch):
    from demos import colourize, compare

    monkeypatch.setattr(estimate, "_LAST", {})
    limits = Limits(max_frames=5, default_frames=5, max_side=160, process_side=160)
    for tab in (compare, colourize):
        monkeypatch.setattr(tab, "on_cpu", lambda: True)
    shown = [m[0] for m in compare.run(None, "dog", "tpn", "previous", 5, limits)]
    assert "5 frames to propagate" in shown[0] and any("timed on frames 1–2 of this run" in m for m in shown)
    shown = [m[0] for m in colourize.run("dog", None, None, "previous", 5, limits)]
    assert "5 frames to propagate" in shown[0] and any("timed on frames 1–2 of this run" in m for m in shown)
