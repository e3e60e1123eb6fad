"""The ``msn`` command end to end on a bundled example (tiny untrained networks are
not used here: the real EfficientNet-Lite0 backbone with seeded heads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from prose import MEASURED

from msn_core.cli import main
from msn_core.io import example_path, open_video, read_mask


@pytest.fixture(scope="module")
def example():
    return example_path("dog")


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("propagate", "evaluate-masks", "export-hub"):
        assert cmd in out


@pytest.mark.parametrize("command", [[], ["propagate"], ["evaluate-masks"], ["export-hub"], ["train"], ["evaluate"]])
def test_help_holds_no_measured_figures(command, capsys):
    """Help points to results/ and BENCHMARKS.md for figures instead of quoting them."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "-h, --help" in text
    assert not MEASURED.search(text), MEASURED.search(text)
    for old_help in ("takes about four minutes", "J&F from about 60 to about 78", "(~2x the time)", "90 s"):
        assert MEASURED.search(old_help), old_help  # what this test is meant to catch


def test_propagate_writes_masks_overlay_and_record(tmp_path, example):
    out = tmp_path / "out"
    rc = main([
        "propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(out),
        "--weights", "none", "--max-frames", "6", "--selector", "msn-top2",
    ])
    assert rc == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(6)]
    first = read_mask(example / "00000.png")
    for p in pngs:
        m = read_mask(p)
        assert m.shape == first.shape and set(np.unique(m)) <= {0, 1}
    video = open_video(out / "overlay.mp4")
    assert sum(1 for _ in video) == 6
    record = json.loads((out / "propagation.json").read_text())
    assert record["selector"] == "msn-top2" and len(record["frames"]) == 6
    assert record["frames"][3]["guides"] and len(record["frames"][3]["scores"]) == 3
    assert not list(out.glob("*.tmp*"))  # no half-written file left behind


def test_colour_propagation_writes_jpegs(tmp_path, example):
    out = tmp_path / "col"
    rc = main(["propagate", str(example), "--task", "color", "--out", str(out), "--weights", "none",
               "--max-frames", "3", "--no-video", "--selector", "previous"])
    assert rc == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["00000.jpg", "00001.jpg", "00002.jpg"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["propagate", "{bad}", "--mask", "{mask}", "--out", "{out}", "--weights", "none"], "not a readable video"),
        (["propagate", "{ex}", "--out", "{out}", "--weights", "none"], "--mask"),
        (["propagate", "{ex}", "--mask", "{mask}", "--out", "{out}", "--selector", "best"], "accepted"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, example, args, message):
    bad = tmp_path / "random.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    subs = {"bad": bad, "mask": example / "00000.png", "out": tmp_path / "o", "ex": example}
    argv = [a.format(**subs) for a in args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "msn_core.cli", *argv], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_writing_in_a_thread_gives_the_same_files(tmp_path, example, monkeypatch, one_thread):
    """Frames written behind the loop (the default) and in the loop's own thread: the same PNGs, the same
    overlay frames handed to the encoder, in the same order, and the same record (but for the seconds).
    (The encoded mp4 is not compared byte for byte: libx264 here is not bit-exact from one run to the
    next, even on identical frames.)"""
    import hashlib

    import msn_core.commands.propagate as cmd
    from msn_core.io import VideoWriter

    encode, handed = VideoWriter.write, []

    def write(self, frame):
        handed.append(hashlib.sha1(np.ascontiguousarray(frame).tobytes()).hexdigest())
        encode(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write)
    outs, frames, default = {}, {}, 4  # writing behind the loop, 4 frames deep, against in the loop
    for depth in (default, 0):
        monkeypatch.setattr(cmd, "WRITE_BEHIND", depth)
        outs[depth] = out = tmp_path / f"out{depth}"
        assert main(["propagate", str(example), "--mask", str(example / "00000.png"), "--out", str(out),
                     "--weights", "none", "--max-frames", "8", "--max-side", "128"]) == 0  # fmt: skip
        frames[depth], handed = handed, []
    behind, inline = outs[default], outs[0]
    assert frames[default] == frames[0] and len(frames[0]) == 8
    names = sorted(p.name for p in behind.iterdir())
    assert names == sorted(p.name for p in inline.iterdir()) and len(names) == 10
    for name in names[:-2]:
        assert (behind / name).read_bytes() == (inline / name).read_bytes(), name
    assert sum(1 for _ in open_video(behind / "overlay.mp4")) == 8

    def record(out):
        r = json.loads((out / "propagation.json").read_text())
        return [{**f, "seconds": 0} for f in r.pop("frames")], {**r, "video": None}

    assert record(behind) == record(inline)
