"""Bad input everywhere it enters: the Python API, the ``msn`` CLI and the demo.

Each bad file or argument must give a clear :class:`msn_core.MSNError` naming what was
wrong (a one-line message and exit 2 in the CLI, ``gr.Error`` in the demo), never a
hang, a traceback or a half-written output left as if complete. Real frames: the
bundled DAVIS examples, small; real videos written with PyAV.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tracemalloc
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from builders import lying_zip, palette_png, rate_video
from demo_server import serve_demo
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `demos` is not an installed package

import msn_core  # noqa: E402
from msn_core.cli import main  # noqa: E402
from msn_core.config import BackboneConfig, MemoryConfig, MSNConfig, PipelineConfig, TPNConfig  # noqa: E402
from msn_core.errors import InputError  # noqa: E402
from msn_core.io import VideoWriter, example_path, example_sequence, open_video, read_mask  # noqa: E402
from msn_core.limits import Limits  # noqa: E402
from msn_core.tasks import MaskTask  # noqa: E402

SIZE = (72, 128)  # (H, W) of the small real frames used here
EXAMPLE = "dog"



@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MSN_MAX_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def clip():
    """Five real frames of the dog example at 128x72 and its first mask."""
    source, masks = example_sequence(EXAMPLE, max_side=SIZE[1], max_frames=5)
    frames = list(source)
    mask = msn_core.io.resize_labels(read_mask(masks[0]), SIZE)
    assert frames[0].shape == (*SIZE, 3) and mask.any()
    return frames, mask


@pytest.fixture(scope="module")
def pipe():
    cfg = PipelineConfig(
        backbone=BackboneConfig(name="tiny", pretrained=False), msn=MSNConfig(embed_dim=16, hidden=16),
        tpn=TPNConfig(width=8), memory=MemoryConfig(budget=None), max_side=None,
    )  # fmt: skip
    return msn_core.load("tpn", "mask", "msn", weights=None, config=cfg)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    with VideoWriter(path, fps) as w:
        for f in frames:
            w.write(f)
    return path


def write_folder(folder: Path, frames: list[np.ndarray], ext: str = "jpg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.{ext}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder



def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def jpeg(frame: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


# ============================================================================ limits


def test_limits_defaults_and_environment():
    lim = Limits()
    assert (lim.max_frames, lim.max_pixels, lim.max_objects) == (None, 4096 * 4096, 20)
    assert (lim.max_zip_members, lim.max_zip_bytes, lim.max_upload_mb) == (10_000, 2 * 1024**3, 50)
    env = {"MSN_MAX_FRAMES": "300", "MSN_MAX_PIXELS": "8_294_400", "MSN_MAX_OBJECTS": "5", "MSN_MAX_UPLOAD_MB": "20"}
    lim = Limits.from_env(env)
    assert (lim.max_frames, lim.max_pixels, lim.max_objects, lim.max_upload_mb) == (300, 8_294_400, 5, 20)
    assert Limits.from_env({"MSN_MAX_FRAMES": "none"}).max_frames is None
    with pytest.raises(InputError, match="MSN_MAX_PIXELS='lots' is not an integer"):
        Limits.from_env({"MSN_MAX_PIXELS": "lots"})
    with pytest.raises(InputError, match="MSN_MAX_OBJECTS"):
        Limits.from_env({"MSN_MAX_OBJECTS": "-2"})
    with pytest.raises(InputError, match="max_objects must be at most 254"):
        Limits(max_objects=300)
    from demos.limits import Limits as DemoLimits

    demo = DemoLimits.from_env({"MSN_MAX_FRAMES": "20", "MSN_MAX_UPLOAD_MB": "8"})
    assert (demo.max_frames, demo.max_upload_mb) == (20, 8)  # the engine's caps hold in the demo too


def test_limits_are_read_from_the_environment_on_each_call(tmp_path, monkeypatch, clip):
    folder = write_folder(tmp_path / "f", clip[0])
    assert open_video(folder).num_frames == 5
    monkeypatch.setenv("MSN_MAX_FRAMES", "3")
    with pytest.raises(InputError, match=r"has 5 frames; at most 3 are accepted \(MSN_MAX_FRAMES\).*--max-frames"):
        open_video(folder)
    assert len(list(open_video(folder, max_frames=3))) == 3  # asking for fewer frames is fine
    with pytest.raises(InputError, match="max_frames=4 is more than"):
        open_video(folder, max_frames=4)


# ======================================================================= Python API


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory, clip):
    """Broken and hostile files, each with the text its error must contain."""
    d = tmp_path_factory.mktemp("bad")
    good = write_video(d / "good.mp4", clip[0])
    data = good.read_bytes()
    (d / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    (d / "cut.mp4").write_bytes(data[: len(data) // 3])  # fails at once
    (d / "truncated.mp4").write_bytes(data[: len(data) * 9 // 10])  # frame 0 decodes, then the file ends
    (d / "empty.mp4").write_bytes(b"")
    with av.open(str(d / "zero.avi"), "w") as container:  # a header, no frame
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    (d / "photo.mp4").write_bytes(jpeg(clip[0][0]))  # an image renamed .mp4
    (d / "list.mp4").write_text(f"ffconcat version 1.0\nfile '{good}'\n")  # FFmpeg must not follow it
    Image.fromarray(clip[0][0]).save(d / "single.png")
    Image.fromarray(clip[1] * 255).save(d / "mask.png")
    (d / "notes.txt").write_text("not a video")
    return d, {
        "noise.mp4": "not a readable video",
        "cut.mp4": "truncated",
        "truncated.mp4": "ended after 1 of the 5 frames its header lists; the file is truncated",
        "empty.mp4": "not a readable video",
        "zero.avi": "no frames",
        "photo.mp4": "not a video in an accepted container",
        "list.mp4": "not a video in an accepted container",
        "single.png": "is a single image, not a video",
        "notes.txt": "unsupported extension",
        "missing.mp4": "does not exist",
    }


def test_bad_video_files_give_clear_errors(bad_videos):
    folder, cases = bad_videos
    for name, message in cases.items():
        with pytest.raises(InputError) as err:
            list(open_video(folder / name))
        assert name in str(err.value) and message in str(err.value), (name, str(err.value))


def test_grey_rgba_and_16bit_frames_are_read_as_rgb(tmp_path, clip):
    rgb = clip[0][0]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cases = {
        "grey": (grey, np.repeat(grey[..., None], 3, axis=2)),
        "rgba": (np.dstack([rgb, np.full(SIZE, 128, np.uint8)]), rgb),
        "grey16": (grey.astype(np.uint16) * 257, np.repeat(grey[..., None], 3, axis=2)),
        "rgb16": (rgb.astype(np.uint16) * 257, rgb),
    }
    for name, (stored, expected) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        for i in range(2):
            bgr = stored if stored.ndim == 2 else cv2.cvtColor(stored, cv2.COLOR_RGBA2BGRA if stored.shape[2] == 4
                                                               else cv2.COLOR_RGB2BGR)  # fmt: skip
            cv2.imwrite(str(folder / f"{i}.png"), bgr)
        frames = list(open_video(folder))
        assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape == (*SIZE, 3), name
        np.testing.assert_array_equal(frames[0], expected, err_msg=name)


def test_huge_frames_are_refused_from_the_header(tmp_path, clip):
    big = tmp_path / "big"
    big.mkdir()
    Image.new("1", (5000, 4000)).save(big / "0.png")  # 20 MP, a few kB on disk
    with pytest.raises(InputError, match=r"5000x4000 \(20\.0 megapixels\); at most 16\.8 megapixels.*MSN_MAX_PIXELS"):
        open_video(big)
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    Image.new("1", (30000, 30000)).save(bomb / "0.png")  # past Pillow's own bomb guard
    with pytest.raises(InputError, match="declares more than 179 megapixels; at most 16.8"):
        open_video(bomb)
    video = write_video(tmp_path / "v.mp4", clip[0][:2])
    with pytest.raises(InputError, match="128x72 .* at most 0.0 megapixels"):
        open_video(video, limits=Limits(max_pixels=1000))
    Image.new("L", (5000, 4000)).save(tmp_path / "mask.png")
    with pytest.raises(InputError, match="mask .*mask.png' is 5000x4000"):
        read_mask(tmp_path / "mask.png")
    with pytest.raises(InputError, match="frame 0 is 128x72"):  # arrays given to the loop directly
        list(msn_core.iter_propagate(clip[0], clip[1], backbone=None, propagator=None, task=MaskTask([1]),
                                     selector=msn_core.make_selector("previous"), limits=Limits(max_pixels=100)))  # fmt: skip


def test_odd_and_tiny_frame_sizes(tmp_path, clip, pipe):
    odd = [cv2.resize(f, (65, 47)) for f in clip[0][:3]]
    source = open_video(write_folder(tmp_path / "odd", odd, "png"))
    assert source.size == (47, 65) and source.out_size == (46, 64)  # read at the even size below
    mask = cv2.resize(clip[1], (65, 47), interpolation=cv2.INTER_NEAREST)
    results = list(pipe.propagate(source, mask))  # a mask at the video's own odd size is accepted
    assert len(results) == 3 and results[-1].labels.shape == (46, 64)
    for h, w in [(2, 2), (3, 5), (7, 300)]:
        frames = [np.ascontiguousarray(cv2.resize(f, (w, h))) for f in clip[0][:2]]
        labels = np.zeros((h, w), np.uint8)
        labels[0, 0] = 1
        assert [r.labels.shape for r in pipe.propagate(frames, labels)] == [(h, w)] * 2
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.new("RGB", (1, 1)).save(tiny / "0.png")
    with pytest.raises(InputError, match="1x1 is too small; frames must be at least 2x2"):
        open_video(tiny)


def test_a_single_frame_video_gives_its_mask_back(tmp_path, clip, pipe):
    video = write_video(tmp_path / "one.mp4", clip[0][:1])
    results = list(pipe.propagate(str(video), clip[1]))
    assert len(results) == 1 and results[0].guides == []
    np.testing.assert_array_equal(results[0].labels, clip[1])


def test_video_longer_than_the_cap_is_refused_while_reading(tmp_path, clip, pipe, monkeypatch):
    video = write_video(tmp_path / "v.webm", clip[0])  # WebM has no frame count in its header
    source = open_video(video, limits=Limits(max_frames=3))
    with pytest.raises(InputError, match="has more than 3 frames; at most 3 are accepted"):
        list(source)
    monkeypatch.setenv("MSN_MAX_FRAMES", "2")
    seen = []
    with pytest.raises(InputError, match="the video has more than 2 frames"):  # arrays given to the loop
        seen.extend(pipe.propagate(iter(clip[0]), clip[1]))
    assert len(seen) == 2


def test_zip_traversal_too_many_members_and_too_many_bytes(tmp_path, clip):
    frame = jpeg(clip[0][0])
    for member in ["../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "C:/evil.jpg", "a\\..\\evil.jpg"]:
        path = zip_of(tmp_path / "evil.zip", {"00000.jpg": frame, member: frame})
        with pytest.raises(InputError, match="unsafe member"):
            open_video(path)
    many = zip_of(tmp_path / "many.zip", {f"{i:05d}.jpg": frame for i in range(6)})
    with pytest.raises(InputError, match=r"has 6 members; at most 5 are accepted \(MSN_MAX_ZIP_MEMBERS\)"):
        open_video(many, limits=Limits(max_zip_members=5))
    with pytest.raises(InputError, match=r"uncompressed; at most 0 MB are accepted \(MSN_MAX_ZIP_BYTES\)"):
        open_video(many, limits=Limits(max_zip_bytes=len(frame) * 5))
    assert len(list(open_video(many, max_frames=5, limits=Limits(max_zip_bytes=len(frame) * 5)))) == 5


def test_zip_with_broken_members_names_the_member(tmp_path, clip):
    frames = {f"{i:05d}.jpg": jpeg(f) for i, f in enumerate(clip[0][:3])}
    path = tmp_path / "broken.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in frames.items():
            zf.writestr(name, data)
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("00002.jpg")
    start = info.header_offset + 30 + len(info.filename) + 200  # inside 00002.jpg's compressed data
    data[start : start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"broken\.zip.*00002\.jpg.*(CRC|not a readable)"):
        list(open_video(path))


def test_bad_masks(tmp_path, clip, pipe):
    frames, mask = clip
    Image.fromarray(mask * 255).resize((64, 64)).save(tmp_path / "square.png")
    with pytest.raises(InputError, match=r"mask is 64x64 but the frames are 128x72"):
        list(pipe.propagate(frames, read_mask(tmp_path / "square.png")))
    with pytest.raises(InputError, match="no object"):
        list(pipe.propagate(frames, np.zeros(SIZE, np.uint8)))
    with pytest.raises(InputError, match="no object"):
        list(pipe.propagate(frames, np.full(SIZE, 255, np.uint8)))  # only DAVIS void
    (tmp_path / "pal.png").write_bytes(palette_png(np.array([[0, 1], [7, 1]]), [(0, 0, 0), (128, 0, 0)]))
    with pytest.raises(InputError, match="uses palette index 7 but its palette has only 2 colours"):
        read_mask(tmp_path / "pal.png")
    many = (np.arange(SIZE[0] * SIZE[1]).reshape(SIZE) % 26).astype(np.uint8)  # 25 objects
    Image.fromarray(many).save(tmp_path / "many.png")
    with pytest.raises(InputError, match=r"has 25 objects; at most 20 are supported \(MSN_MAX_OBJECTS\)"):
        list(pipe.propagate(frames, tmp_path / "many.png"))
    for bad, message in [
        (np.dstack([mask] * 3), r"must be a non-empty \(H, W\) array"),
        (mask * 0.5, "fractional values"),
        (mask * np.nan, "NaN"),
        (mask.astype(np.int32) * 300, "values 0..300"),
        (mask.astype(str), "dtype <U"),
    ]:
        with pytest.raises(InputError, match=message):
            list(pipe.propagate(frames, bad))


def test_mask_variants_that_are_fine(tmp_path, clip, pipe):
    mask = clip[1]
    Image.fromarray(mask.astype(np.uint16) * 65535).save(tmp_path / "m16.png")  # 16-bit binary
    rgba = np.zeros((*SIZE, 4), np.uint8)
    rgba[..., 3] = mask * 255  # the shape in the alpha channel
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    for name in ("m16.png", "alpha.png"):
        np.testing.assert_array_equal(read_mask(tmp_path / name), mask, err_msg=name)
    assert len(list(pipe.propagate(clip[0][:2], mask.astype(bool)))) == 2


def test_bad_arguments_to_the_loop(clip, pipe):
    frames, mask = clip
    cases = [
        (lambda: pipe.propagate(5, mask), "frames must be an iterable"),
        (lambda: pipe.propagate([f.tolist() for f in frames], mask), "frame 0: expected a uint8"),
        (lambda: pipe.propagate([f[..., 0] for f in frames], mask), "frame 0: expected a uint8"),
        (lambda: pipe.propagate([], mask), "no frames"),
        (lambda: pipe.propagate(frames, mask, selector="oracle", ground_truth=[mask]), "ground_truth ended"),
        (lambda: pipe.propagate(frames, mask, selector="oracle", ground_truth=[mask[:10]] * 5), "ground_truth 0"),
        (lambda: pipe.propagate(frames, mask, memory=MemoryConfig(budget=1, recent=0)), "budget must be >= 2"),
        (lambda: pipe.propagate(b"clip.mp4", mask), "frames must be|frame 0"),
    ]
    for make, message in cases:
        with pytest.raises(InputError, match=message):
            list(make())


def test_load_checks_the_device_like_the_cli():
    with pytest.raises(InputError, match="not a torch device"):
        msn_core.load("tpn", weights=None, device="gpu")
    missing = "no CUDA GPU is visible" if not torch.cuda.is_available() else "CUDA device\\(s\\) are visible"
    with pytest.raises(InputError, match=missing):
        msn_core.load("tpn", weights=None, device=f"cuda:{torch.cuda.device_count()}")


# ============================================================================== CLI


def cli(argv: list[str], capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def error_lines(err: str) -> list[str]:
    """stderr without tqdm's progress redraws."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "frame/s" not in line
            and "propagating" not in line]  # fmt: skip


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, bad_videos, clip):
    folder, cases = bad_videos
    ex = example_path(EXAMPLE)
    mask = ex / "00000.png"
    small = folder / "mask.png"  # 128x72, the size of the bad videos' frames
    Image.fromarray(np.zeros((480, 854), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(tmp_path / "square.png")
    (tmp_path / "pal.png").write_bytes(palette_png(np.array([[0, 1], [7, 1]]), [(0, 0, 0), (128, 0, 0)]))
    Image.fromarray((np.arange(240 * 428).reshape(240, 428) % 26).astype(np.uint8)).save(tmp_path / "many.png")
    (tmp_path / "afile").write_text("x")
    evil = zip_of(tmp_path / "evil.zip", {"00000.jpg": jpeg(clip[0][0]), "../x.jpg": jpeg(clip[0][0])})
    out = tmp_path / "out"
    base = ["--out", out, "--weights", "none"]
    runs = [(["propagate", folder / n, "--mask", small, *base], msg) for n, msg in cases.items()] + [
        (["propagate", evil, "--mask", mask, *base], "unsafe member '../x.jpg'"),
        (["propagate", ex, "--mask", tmp_path / "square.png", *base], "mask size 100x100 differs from the frame size 428x240"),
        (["propagate", ex, "--mask", tmp_path / "empty.png", *base], "differs from the frame size"),
        (["propagate", ex, "--mask", tmp_path / "pal.png", *base], "palette index 7"),
        (["propagate", ex, "--mask", tmp_path / "many.png", *base], "25 objects; at most 20"),
        (["propagate", ex, "--mask", folder / "noise.mp4", *base], "not a readable image"),
        (["propagate", ex, *base], "--mask FIRST.png is required"),
        (["propagate", ex, "--mask", mask, *base, "--budget", "1"], "--budget must be 0"),
        (["propagate", ex, "--mask", mask, *base, "--max-side", "1"], "--max-side must be at least 2"),
        (["propagate", ex, "--mask", mask, *base, "--max-frames", "0"], "--max-frames must be a positive"),
        (["propagate", ex, "--mask", mask, *base, "--device", "gpu"], "not a torch device"),
        (["propagate", ex, "--mask", mask, *base, "--selector", "best"], "unknown selector"),
        (["propagate", ex, "--mask", mask, "--out", tmp_path / "afile", "--weights", "none"], "is a file"),
        (["propagate", ex, "--mask", mask, "--out", ex, "--weights", "none"], "is the input folder"),
        (["propagate", ex, "--mask", mask, *base, "--weights", tmp_path / "afile"], "afile"),
    ]
    if not torch.cuda.is_available():
        runs.append((["propagate", ex, "--mask", mask, *base, "--device", "cuda"], "no CUDA GPU is visible"))
    # non-regular files are refused before anything opens them (a FIFO would block, /dev/zero never ends)
    for name in ("fifo.mp4", "fifo.zip", "fifo.png"):
        os.mkfifo(tmp_path / name)
    (tmp_path / "zero.zip").symlink_to("/dev/zero")
    (tmp_path / "bad\nname.mp4").write_bytes(b"not a video")
    runs += [
        (["propagate", tmp_path / "fifo.mp4", "--mask", mask, *base], "is a named pipe (FIFO), not a regular file"),
        (["propagate", tmp_path / "fifo.zip", "--mask", mask, *base], "is a named pipe (FIFO)"),
        (["propagate", tmp_path / "zero.zip", "--mask", mask, *base], "is a character device"),
        (["propagate", ex, "--mask", tmp_path / "fifo.png", *base], "is a named pipe (FIFO)"),
        (["propagate", ex, "--mask", "/dev/zero", *base], "mask '/dev/zero' is a character device"),
        (["propagate", ex, "--mask", tmp_path, *base], "is a folder; expected a PNG mask file"),
        (["propagate", tmp_path / "bad\nname.mp4", "--mask", mask, *base], "bad\\nname.mp4"),
    ]
    for argv, message in runs:
        rc, err = cli(argv, capsys)
        lines = error_lines(err)
        assert rc == 2, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("msn propagate: error: ") and message in lines[0], (argv, err)
        assert "Traceback" not in err
        if "truncated.mp4" in str(argv[1]):  # frame 0 decoded: it stays, said so, with the record
            assert "stopped at frame 1; frames 00000..00000 are complete" in lines[0]
            assert sorted(p.name for p in out.iterdir()) == ["00000.png", "propagation.json"]
            shutil.rmtree(out)
        assert not out.exists(), argv  # nothing written for a run that could not start


def test_cli_empty_mask_at_the_frames_size(tmp_path, capsys):
    Image.fromarray(np.zeros((240, 428), np.uint8)).save(tmp_path / "empty.png")
    rc, err = cli(["propagate", example_path(EXAMPLE), "--mask", tmp_path / "empty.png", "--out", tmp_path / "o",
                   "--weights", "none"], capsys)  # fmt: skip
    assert rc == 2 and "mask has no object" in err


def test_cli_odd_size_video_keeps_its_size_and_refuses_old_results(tmp_path, capsys, clip):
    odd = write_folder(tmp_path / "odd", [cv2.resize(f, (65, 47)) for f in clip[0][:3]])
    Image.fromarray(cv2.resize(clip[1], (65, 47), interpolation=cv2.INTER_NEAREST) * 255).save(tmp_path / "m.png")
    argv = ["propagate", odd, "--mask", tmp_path / "m.png", "--out", tmp_path / "out", "--weights", "none",
            "--selector", "previous", "--max-side", "64"]  # fmt: skip
    assert cli(argv, capsys)[0] == 0
    masks = sorted((tmp_path / "out").glob("*.png"))
    assert len(masks) == 3 and all(read_mask(p).shape == (47, 65) for p in masks)  # the input's own size
    rc, err = cli(argv, capsys)  # a second run would mix with the first one's frames
    assert rc == 2 and "already holds the results of a run (00000.png, 00001.png, 00002.png, ...)" in err
    assert cli([*argv, "--overwrite"], capsys)[0] == 0


def test_cli_frame_that_breaks_half_way_keeps_what_is_complete(tmp_path, capsys, clip):
    folder = write_folder(tmp_path / "v", clip[0], "png")
    data = (folder / "00003.png").read_bytes()
    (folder / "00003.png").write_bytes(data[:60] + bytes(len(data) - 60))  # header fine, pixels gone
    out = tmp_path / "out"
    Image.fromarray(clip[1] * 255).save(tmp_path / "m.png")
    rc, err = cli(["propagate", folder, "--mask", tmp_path / "m.png", "--out", out,
                   "--weights", "none", "--selector", "previous"], capsys)  # fmt: skip
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1, err
    assert "00003.png' is not a readable image" in lines[0]
    assert "stopped at frame 3; frames 00000..00002 are complete" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png", "propagation.json"]
    record = json.loads((out / "propagation.json").read_text())
    assert record["failed_at"] == 3 and len(record["frames"]) == 3  # no overlay: it would be incomplete


def test_cli_unexpected_failure_is_one_line_with_the_traceback_in_a_file(tmp_path, capsys, monkeypatch):
    import msn_core.commands.propagate as cmd

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cmd, "_check_args", broken)
    rc, err = cli(["propagate", "x.mp4", "--out", tmp_path / "o"], capsys)
    lines = error_lines(err)
    assert rc == 1 and len(lines) == 1 and "internal error: RuntimeError: boom" in lines[0]
    trace = Path(lines[0].split("please report it with ")[1].rstrip(")"))
    assert "Traceback" in trace.read_text() and "boom" in trace.read_text()
    trace.unlink()
    monkeypatch.setenv("MSN_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["propagate", "x.mp4", "--out", str(tmp_path / "o")])


def test_cli_force_stop_mid_write_leaves_no_half_written_file(tmp_path, capsys, monkeypatch, clip):
    """A second Ctrl-C arriving while frame 2 is being written: frames 0..1 and the record stay,
    the overlay (which would be incomplete) and frame 2 do not."""
    import msn_core.commands.propagate as cmd

    write = cmd._write_frame

    def interrupted(out, r, writer, size):
        write(out, r, writer, size)
        if r.index == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "_write_frame", interrupted)
    folder = write_folder(tmp_path / "v", clip[0])
    out = tmp_path / "out"
    Image.fromarray(clip[1] * 255).save(tmp_path / "m.png")
    rc, err = cli(["propagate", folder, "--mask", tmp_path / "m.png", "--out", out,
                   "--weights", "none", "--selector", "previous"], capsys)  # fmt: skip
    assert rc == 130 and "stopped at frame 2; frames 00000..00001 are complete" in err
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "propagation.json"]
    assert json.loads((out / "propagation.json").read_text())["interrupted_at"] == 2


# ============================================================================= demo

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

from demos.limits import Limits as DemoLimits  # noqa: E402

DEMO_LIMITS = DemoLimits(max_frames=4, default_frames=3, max_side=128, max_upload_mb=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_demo(DEMO_LIMITS, tmp_path_factory.mktemp("sessions")) as url:
        yield url


@pytest.fixture
def client(server):
    return gradio_client.Client(server, verbose=False)


def app_error(client, *args, api_name: str) -> str:
    with pytest.raises(gradio_client.exceptions.AppError) as err:
        client.predict(*args, api_name=api_name)
    msg = str(err.value)
    assert "Traceback" not in msg and "/tmp" not in msg and "failed unexpectedly" not in msg, msg
    return msg


pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.usefixtures("one_thread")]


def test_demo_bad_uploads_are_gr_errors(client, bad_videos, tmp_path, clip, monkeypatch):
    folder, _ = bad_videos
    up = gradio_client.handle_file
    for name, message in [("noise.mp4", "'noise.mp4' is not a readable video"), ("cut.mp4", "truncated"),
                          ("zero.avi", "no frames"), ("list.mp4", "not a video in an accepted container")]:  # fmt: skip
        assert message in app_error(client, up(str(folder / name)), api_name="/segment_load_upload"), name
    frame = jpeg(clip[0][0])
    evil = zip_of(tmp_path / "evil.zip", {"00000.jpg": frame, "../../etc/x.jpg": frame})
    assert "unsafe member" in app_error(client, up(str(evil)), api_name="/segment_load_upload")
    many = zip_of(tmp_path / "many.zip", {f"{i:05d}.jpg": frame for i in range(4)})
    monkeypatch.setenv("MSN_MAX_ZIP_MEMBERS", "3")  # the server reads the caps on every request
    assert "has 4 members; at most 3" in app_error(client, up(str(many)), api_name="/segment_load_upload")
    monkeypatch.delenv("MSN_MAX_ZIP_MEMBERS")
    monkeypatch.setenv("MSN_MAX_PIXELS", "5000")
    assert "megapixels" in app_error(client, up(str(many)), api_name="/segment_load_upload")
    monkeypatch.delenv("MSN_MAX_PIXELS")
    info, *_ = client.predict(up(str(folder / "truncated.mp4")), api_name="/segment_load_upload")  # frame 0 is fine
    assert "5 frames" in info
    client.predict(up(str(folder / "mask.png")), api_name="/segment_use_mask")
    assert "truncated" in app_error(client, "tpn", "previous", 4, api_name="/segment_run")


def test_demo_grey_rgba_16bit_and_single_frame_uploads(client, tmp_path, clip):
    rgb = clip[0][0]
    members = {
        "0.png": cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))[1].tobytes(),
        "1.png": cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))[1].tobytes(),
        "2.png": cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)[1].tobytes(),
    }
    info, *_ = client.predict(gradio_client.handle_file(str(zip_of(tmp_path / "mixed.zip", members))),
                              api_name="/segment_load_upload")  # fmt: skip
    assert "3 frames, 128×72" in info
    one = write_video(tmp_path / "one.mp4", clip[0][:1])
    info, *_ = client.predict(gradio_client.handle_file(str(one)), api_name="/segment_load_upload")
    assert "1 frames" in info
    Image.fromarray(clip[1] * 255).save(tmp_path / "m.png")
    client.predict(gradio_client.handle_file(str(tmp_path / "m.png")), api_name="/segment_use_mask")
    msg = app_error(client, "Your video and annotation (Segment tab)", "tpn", "previous", 3, api_name="/compare_run")
    assert "needs at least 2" in msg


def test_demo_bad_masks_are_gr_errors(client, tmp_path):
    client.predict(EXAMPLE, api_name="/segment_load_example")
    up = gradio_client.handle_file
    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(tmp_path / "square.png")
    Image.fromarray(np.zeros((240, 428), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray((np.arange(240 * 428).reshape(240, 428) % 26).astype(np.uint8)).save(tmp_path / "many.png")
    (tmp_path / "pal.png").write_bytes(palette_png(np.array([[0, 1], [7, 1]]), [(0, 0, 0), (128, 0, 0)]))
    for name, message in [("square.png", "another aspect ratio"), ("empty.png", "has no object"),
                          ("many.png", "25 objects; at most 20"), ("pal.png", "palette index 7")]:  # fmt: skip
        assert message in app_error(client, up(str(tmp_path / name)), api_name="/segment_use_mask"), name


def test_demo_handlers_refuse_malformed_api_calls():
    """What a script can send the API that the page never would: still a readable gr.Error."""
    import gradio as gr

    from demos import colourize, segment

    limits = DemoLimits(max_frames=3, default_frames=2, max_side=96)
    session = segment.load_example(EXAMPLE, limits)[0]
    for call, message in [
        (lambda: segment.add_click(session, 5, 5, "x", "positive"), "choose an object between 1 and 5"),
        (lambda: segment.add_click(session, float("nan"), 5, 1, "positive"), "outside"),
        (lambda: list(segment.run(session, "tpn", "previous", float("nan"), limits)), "whole number"),
        (lambda: list(segment.run(session, "xyz", "previous", 2, limits)), "no pipeline for propagator='xyz'"),
        (lambda: list(segment.run(None, "tpn", "previous", 2, limits)), "load a video first"),
        (lambda: list(colourize.run(EXAMPLE, None, np.zeros((54, 96), np.uint8), "previous", 2, limits)),
         "has no colour"),
    ]:  # fmt: skip
        with pytest.raises(gr.Error) as err:
            call()
        assert message in str(err.value) and "unexpectedly" not in str(err.value), str(err.value)



@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_bomb_is_bounded_by_the_bytes_it_produces(tmp_path, clip, method):
    frame = jpeg(clip[0][0])
    bomb = lying_zip(tmp_path / "bomb.zip", frame, method, extra=48 * 2**20)
    assert bomb.stat().st_size < 200_000 and zipfile.ZipFile(bomb).getinfo("00000.jpg").file_size == len(
        frame
    )
    tracemalloc.start()
    try:
        with pytest.raises(
            InputError, match=r"member '00000\.jpg'.*inflates to more than .* bytes its header declares"
        ):
            list(open_video(bomb))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # the decoder (lzma: its 8 MB dictionary) and one chunk, never the 48 MB
    honest = tmp_path / "honest.zip"
    with zipfile.ZipFile(honest, "w", compression=method) as zf:
        zf.writestr("00000.jpg", frame)
        zf.writestr("00001.jpg", frame)
    assert [f.shape for f in open_video(honest)] == [clip[0][0].shape] * 2



def test_cli_never_replaces_an_input_even_with_overwrite(tmp_path, capsys, clip):
    frames, mask = clip
    out = tmp_path / "out"
    out.mkdir()
    video = rate_video(out / "overlay.mp4", frames[:3], Fraction(24))  # a name a run writes
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    before = video.read_bytes()
    rc, err = cli(["propagate", video, "--mask", tmp_path / "m.png", "--out", out, "--weights", "none",
                   "--overwrite"], capsys)  # fmt: skip
    assert rc == 2 and "holds 'overlay.mp4', which is an input of this run" in err
    assert video.read_bytes() == before
    video2 = rate_video(tmp_path / "v.mkv", frames[:3], Fraction(24))
    Image.fromarray(mask * 255).save(out / "00000.png")
    mask_before = (out / "00000.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        rc, err = cli(["propagate", video2, "--mask", out / "00000.png", "--out", out, "--weights", "none", *extra],
                      capsys)  # fmt: skip
        assert rc == 2 and "holds '00000.png', which is an input of this run" in err
        assert (out / "00000.png").read_bytes() == mask_before


def test_cli_video_with_an_extreme_frame_rate_is_written_whole(tmp_path, capsys, clip):
    frames, mask = clip
    Image.fromarray(mask * 255).save(tmp_path / "m.png")
    for rate in (Fraction(1, 60000), Fraction(60000)):
        video = rate_video(tmp_path / "v.mkv", frames[:3], rate)
        out = tmp_path / f"out{rate.denominator}"
        rc, err = cli(["propagate", video, "--mask", tmp_path / "m.png", "--out", out, "--weights", "none",
                       "--selector", "previous"], capsys)  # fmt: skip
        assert rc == 0, err
        assert len(json.loads((out / "propagation.json").read_text())["frames"]) == 3
        with av.open(str(out / "overlay.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 3


def test_cli_oracle_without_ground_truth_is_refused_before_anything_is_made(tmp_path, capsys):
    ex = example_path(EXAMPLE)
    rc, err = cli(["propagate", ex, "--mask", ex / "00000.png", "--out", tmp_path / "o", "--weights", "none",
                   "--selector", "oracle"], capsys)  # fmt: skip
    assert rc == 2 and "needs the ground truth of every frame" in err
    assert not (tmp_path / "o").exists()


def test_cli_full_disk_mid_run_says_where_it_stopped_and_keeps_a_record(tmp_path, capsys, monkeypatch):
    import msn_core.io

    real = msn_core.io.write_mask_png

    def filling(path, labels):
        if Path(path).name == "00002.png":
            raise OSError(28, "No space left on device")
        return real(path, labels)

    monkeypatch.setattr(msn_core.io, "write_mask_png", filling)
    ex, out = example_path(EXAMPLE), tmp_path / "o"
    rc, err = cli(["propagate", ex, "--mask", ex / "00000.png", "--out", out, "--weights", "none",
                   "--selector", "previous", "--max-frames", "4"], capsys)  # fmt: skip
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1, err
    assert "No space left on device (stopped at frame 2; frames 00000..00001 are complete" in lines[0]
    record = json.loads((out / "propagation.json").read_text())
    assert record["failed_at"] == 2 and len(record["frames"]) == 2
    assert sorted(p.name for p in out.glob("*.png")) == ["00000.png", "00001.png"]
