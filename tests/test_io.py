"""msn_core.io on real DAVIS frames and real video files (PyAV)."""

from __future__ import annotations

import inspect
import itertools
import os
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from msn_core.errors import InputError
from msn_core.io import (
    VideoSource,
    VideoWriter,
    atomic_write,
    check_mask,
    davis_palette,
    davis_sequence,
    example_path,
    example_sequence,
    fit_size,
    labels_from_palette_or_binary,
    list_davis_sequences,
    list_examples,
    open_video,
    overlay_labels,
    read_mask,
    resize_frame,
    resize_labels,
    restore_labels,
    rgba_cutout,
    write_mask_png,
    write_overlay_video,
    write_rgba_cutout,
    zip_directory,
)

# what the conftest ``tmp_video`` fixture writes
TMP_VIDEO_FRAMES, TMP_VIDEO_FPS, TMP_VIDEO_SIZE = 24, 24, (180, 320)


def _frames(davis_dir: Path, n: int, max_side: int = 160, name: str = "dog") -> list[np.ndarray]:
    source, _ = davis_sequence(davis_dir, name, max_side=max_side, max_frames=n)
    return list(source)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- DAVIS


def test_davis_sequence_matches_readme(real_davis_dir):
    names = list_davis_sequences(real_davis_dir)
    assert len(names) >= 15 and names == sorted(names) and "dog" in names  # 15 here; 50 in the archive
    source, masks = davis_sequence(real_davis_dir, "dog")
    assert isinstance(source, VideoSource)
    assert source.num_frames == 60 and len(masks) == 60  # README table: dog 60
    assert source.size == (480, 854) and source.out_size == (480, 854) and source.fps == 24.0
    assert source.name == "dog" and masks[0].name == "00000.png" and masks[-1].name == "00059.png"
    first = source.first_frame()
    assert first.shape == (480, 854, 3) and first.dtype == np.uint8
    labels = read_mask(masks[0])
    assert labels.shape == (480, 854) and set(np.unique(labels)) == {0, 1}  # 0/255 file -> {0, 1}
    check_mask(labels, first.shape)


def test_davis_sequence_max_frames_limits_masks(davis_dir):
    source, masks = davis_sequence(davis_dir, "kite-surf", max_side=214, max_frames=5)
    frames = list(source)
    assert len(frames) == 5 == source.num_frames and len(masks) == 5
    assert frames[0].shape == (120, 214, 3)


def test_davis_errors_list_what_exists(davis_dir, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list_davis_sequences(tmp_path / "nope")
    with pytest.raises(InputError, match="JPEGImages/480p"):
        list_davis_sequences(tmp_path)
    with pytest.raises(InputError, match=r"not found.*available: .*dog"):
        davis_sequence(davis_dir, "no-such-sequence")


def test_examples_are_davis_like_and_small():
    names = list_examples()
    assert names == ["camel", "dog", "kite-surf"]
    root = example_path("dog").parent
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 4 * 1024 * 1024
    assert "Perazzi" in (root / "CREDITS.md").read_text()
    for name in names:
        source, masks = example_sequence(name)
        assert source.num_frames == 30 and len(masks) == 30 and source.size == (240, 428)
        assert Image.open(masks[0]).mode == "P"
        check_mask(read_mask(masks[0]), source.first_frame().shape, masks[0])
    with pytest.raises(InputError, match="available: camel, dog, kite-surf"):
        example_path("cat")


# ------------------------------------------------------------------------- videos


def test_fixture_video_reads_back(tmp_video):
    source = open_video(tmp_video)
    assert source.name == "dog" and source.fps == TMP_VIDEO_FPS
    assert source.num_frames == TMP_VIDEO_FRAMES and source.size == TMP_VIDEO_SIZE
    frames = list(source)
    assert len(frames) == TMP_VIDEO_FRAMES and frames[0].shape == (*TMP_VIDEO_SIZE, 3)
    assert len(list(source)) == TMP_VIDEO_FRAMES  # iterable again (re-opens)


@pytest.mark.parametrize(
    ("ext", "encoder"), [(".mp4", "libx264"), (".webm", "libvpx-vp9"), (".gif", "gif"), (".avi", "libx264")]
)
def test_video_round_trip(davis_dir, tmp_path, ext, encoder):
    if not _has_encoder(encoder):
        pytest.skip(f"this PyAV build has no {encoder} encoder")
    frames = _frames(davis_dir, 8)
    path = tmp_path / f"clip{ext}"
    with VideoWriter(path, 24) as writer:
        for frame in frames:
            writer.write(frame)
    source = open_video(path)
    back = list(source)
    assert len(back) == len(frames) and back[0].shape == frames[0].shape
    # GIF stores delays in 1/100 s: 24 fps becomes 4 cs = 25 fps
    assert source.fps == pytest.approx(24, abs=1.01 if ext == ".gif" else 1e-6)
    assert max(_mad(a, b) for a, b in zip(frames, back)) < 8
    assert _leftovers(tmp_path) == [path.name]


def test_mp4_is_h264_faststart_and_keeps_fractional_fps(davis_dir, tmp_path):
    path = tmp_path / "ntsc.mp4"
    with VideoWriter(path, Fraction(30000, 1001)) as writer:
        for frame in _frames(davis_dir, 4):
            writer.write(frame)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable while downloading
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == Fraction(30000, 1001)
    assert open_video(path).fps == pytest.approx(29.97, abs=0.001)


def test_odd_frame_size_is_padded_to_even(tmp_path):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (91, 161, 3), dtype=np.uint8)
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 10) as writer:
        writer.write(frame)
        writer.write(frame)
    source = open_video(path)
    assert source.size == (92, 162) and len(list(source)) == 2


def test_rotated_phone_video_is_turned_upright(tmp_path):
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:8, :8] = (255, 0, 0)  # marker at the top-left
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # what phones write for a portrait clip: show rotated clockwise
        out = av.VideoFrame.from_ndarray(frame, format="rgb24")
        out.pts = 0
        for packet in [*stream.encode(out), *stream.encode(None)]:
            container.mux(packet)
    source = open_video(path, max_side=32)
    assert source.size == (64, 32) and source.out_size == (32, 16)
    upright = open_video(path).first_frame()
    ys, xs = np.nonzero(upright[..., 0] > 128)
    assert upright.shape == (64, 32, 3) and ys.mean() < 8 and xs.mean() > 24  # top-left -> top-right


def test_streaming_is_lazy(davis_dir, tmp_path):
    path = tmp_path / "long.mp4"
    source, _ = davis_sequence(davis_dir, "dog", max_side=96)
    n = source.num_frames  # 60 (30 in the bundled clip)
    with VideoWriter(path, 24) as writer:
        for frame in source:  # streamed from the folder into the encoder
            writer.write(frame)
    video = open_video(path)
    assert video.num_frames == n >= 10
    frames = iter(video)
    assert inspect.isgenerator(frames)
    assert len(list(itertools.islice(frames, 2))) == 2
    assert inspect.getgeneratorstate(frames) == inspect.GEN_SUSPENDED  # nothing beyond frame 2 decoded yet
    assert sum(1 for _ in frames) == n - 2
    assert len(list(open_video(path, max_frames=7))) == 7


# ------------------------------------------------------------------ folders and zips


def test_folder_of_png_sorted_naturally_with_grey_rgba_and_16bit(davis_dir, tmp_path):
    frames = _frames(davis_dir, 4, max_side=96)
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(frames[0]).save(folder / "f1.png")
    Image.fromarray(frames[1]).convert("RGBA").save(folder / "f2.png")
    grey = cv2.cvtColor(frames[2], cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey).save(folder / "f3.png")
    cv2.imwrite(str(folder / "f10.png"), cv2.cvtColor(frames[3], cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    source = open_video(folder)
    assert [p.name for p in source.frame_paths] == ["f1.png", "f2.png", "f3.png", "f10.png"]
    back = list(source)
    assert all(f.dtype == np.uint8 and f.shape == frames[0].shape for f in back)
    assert np.array_equal(back[0], frames[0]) and np.array_equal(back[1], frames[1])
    assert np.array_equal(back[2], np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(back[3], frames[3])  # 16-bit -> 8-bit exactly (x257 then >>8)
    assert source.fps == 24.0 and source.num_frames == 4


def test_davis_like_folder_uses_jpegs_not_masks():
    source = open_video(example_path("dog"))
    assert source.num_frames == 30 and all(p.suffix == ".jpg" for p in source.frame_paths)


def test_zip_of_frames(davis_dir, tmp_path):
    files = sorted((davis_dir / "JPEGImages" / "480p" / "camel").glob("*.jpg"))[:3]
    path = tmp_path / "camel.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for index, file in enumerate(files):
            zf.write(file, f"clip/{index}.jpg")
        zf.writestr("clip/readme.txt", "not a frame")
    source = open_video(path, max_side=214)
    full_size = cv2.imread(str(files[0])).shape[:2]  # 480x854 in DAVIS, 240x428 in the bundled clip
    assert source.name == "camel" and source.num_frames == 3 and source.size == full_size
    back = list(source)
    assert len(back) == 3 and back[0].shape == (120, 214, 3)
    full = open_video(path).first_frame()
    assert np.array_equal(full, cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB))


# ------------------------------------------------------------------------ errors


def test_random_bytes_named_mp4(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"noise\.mp4.*not a readable video.*accepted: a video file \(\.mp4"):
        open_video(path)


def test_zero_frame_and_truncated_videos(tmp_video, tmp_path):
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    with pytest.raises(InputError, match=r"empty\.avi.*no frames"):
        open_video(empty)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(tmp_video.read_bytes()[:300])
    with pytest.raises(InputError, match=r"truncated\.mp4"):
        open_video(truncated)


def test_other_bad_paths(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_video(tmp_path / "missing.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"unsupported extension '\.txt'.*\.webm.*\.zip"):
        open_video(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"holds no frames.*\.jpg"):
        open_video(tmp_path / "empty")
    Image.new("RGB", (8, 8)).save(tmp_path / "one.png")
    with pytest.raises(InputError, match="single image"):
        open_video(tmp_path / "one.png")
    with pytest.raises(InputError, match="max_side"):
        open_video(tmp_path / "empty", max_side=0)
    with pytest.raises(InputError, match="max_frames"):
        open_video(tmp_path / "empty", max_frames="3")


def test_folder_with_mixed_sizes_names_the_file(tmp_path):
    Image.new("RGB", (64, 48)).save(tmp_path / "00000.jpg")
    Image.new("RGB", (64, 48)).save(tmp_path / "00001.jpg")
    Image.new("RGB", (80, 48)).save(tmp_path / "00002.jpg")
    with pytest.raises(InputError, match=r"'00002\.jpg' is 80x48 but '00000\.jpg' is 64x48"):
        open_video(tmp_path)


@pytest.mark.parametrize("member", ["../evil.jpg", "/abs/evil.jpg", "a/../../evil.jpg"])
def test_zip_path_traversal_is_rejected(tmp_path, member):
    path = tmp_path / "evil.zip"
    buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("00000.jpg", buf)
        zf.writestr(member, buf)
    with pytest.raises(InputError, match="unsafe member"):
        open_video(path)


def test_zip_with_too_many_members_is_rejected(tmp_path, monkeypatch):
    import msn_core.io.sources as sources

    monkeypatch.setattr(sources, "MAX_ZIP_MEMBERS", 3)
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(4):
            zf.writestr(f"{i}.jpg", b"x")
    with pytest.raises(InputError, match="4 members; at most 3"):
        open_video(path)


def test_mask_size_mismatch_and_empty_mask():
    with pytest.raises(InputError, match=r"mask size 100x50 differs from the frame size 854x480"):
        check_mask(np.ones((50, 100), np.uint8), (480, 854, 3))
    with pytest.raises(InputError, match="no object"):
        check_mask(np.zeros((4, 4), np.uint8), (4, 4))
    with pytest.raises(InputError, match="no object"):
        check_mask(np.full((4, 4), 255, np.uint8), (4, 4))  # only void


# ------------------------------------------------------------------------- masks


def test_palette_mask_round_trip_with_three_objects_and_void(tmp_path):
    labels = np.zeros((48, 64), np.uint8)
    labels[5:15, 5:15], labels[20:30, 20:40], labels[35:45, 50:60] = 1, 2, 3
    labels[4, 5:15] = 255  # DAVIS void stays 255
    path = write_mask_png(tmp_path / "m.png", labels)
    with Image.open(path) as im:
        assert im.mode == "P" and np.array_equal(np.array(im.getpalette()).reshape(-1, 3), davis_palette())
    assert np.array_equal(read_mask(path), labels)


@pytest.mark.parametrize("high", [255, 1])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_binary_masks_become_0_1(tmp_path, high, mode):
    labels = np.zeros((20, 30), np.uint8)
    labels[5:10, 5:20] = 1
    Image.fromarray(labels * high).convert(mode).save(tmp_path / "b.png")
    assert np.array_equal(read_mask(tmp_path / "b.png"), labels)


def test_colour_masks():
    pal = davis_palette()
    ids = np.array([[0, 2, 2], [3, 0, 2]], np.uint8)
    assert np.array_equal(labels_from_palette_or_binary(pal[ids]), ids)  # DAVIS colours keep their index
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 2], rgb[1, 0], rgb[1, 1] = (10, 200, 30), (250, 0, 250), (10, 200, 30)
    assert np.array_equal(labels_from_palette_or_binary(rgb), [[0, 0, 1], [2, 1, 0]])  # first appearance
    grey_ids = np.array([[0, 1], [2, 3]], np.uint8)
    assert np.array_equal(labels_from_palette_or_binary(grey_ids), grey_ids)
    with_void = np.array([[0, 1], [255, 2]], np.uint8)
    assert np.array_equal(labels_from_palette_or_binary(with_void), with_void)  # void stays 255
    levels = np.array([[0, 128], [255, 128]], np.uint8)
    assert np.array_equal(labels_from_palette_or_binary(levels), [[0, 1], [2, 1]])  # grey order
    with pytest.raises(InputError, match="at most 254"):
        labels_from_palette_or_binary(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))


def test_bad_mask_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_mask(tmp_path / "none.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"junk\.png.*not a readable image"):
        read_mask(tmp_path / "junk.png")
    with pytest.raises(InputError, match="0..255"):
        write_mask_png(tmp_path / "big.png", np.full((4, 4), 300, np.int32))
    assert _leftovers(tmp_path) == ["junk.png"]


# ------------------------------------------------------------------------ resizing


def test_max_side_resize_and_restore(davis_dir):
    source, masks = davis_sequence(davis_dir, "dog", max_side=200, max_frames=1)
    assert source.size in ((480, 854), (240, 428)) and source.out_size == (112, 200)  # DAVIS, bundled clip
    frame = source.first_frame()
    labels = read_mask(masks[0])
    small = resize_labels(labels, frame.shape[:2])
    assert small.shape == (112, 200) and set(np.unique(small)) <= {0, 1}
    back = restore_labels(small, source.size)
    assert back.shape == source.size and set(np.unique(back)) <= {0, 1}
    assert (back == labels).mean() > 0.97
    assert resize_frame(frame, source.size).shape == (*source.size, 3)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(2, 5000), w=st.integers(2, 5000), max_side=st.one_of(st.none(), st.integers(2, 4000)))
def test_fit_size_properties(h, w, max_side):
    oh, ow = fit_size((h, w), max_side)
    assert oh % 2 == 0 and ow % 2 == 0
    assert oh <= max(h, 2) and ow <= max(w, 2)  # never upscales (2 px is the floor)
    if max_side is not None:
        assert max(oh, ow) <= max(max_side, 2)
    if min(oh, ow) >= 20:
        assert abs(oh / ow - h / w) / (h / w) < 0.15


# ------------------------------------------------------------------------- writers


def test_atomic_writes_leave_nothing_on_error(davis_dir, tmp_path):
    frames = _frames(davis_dir, 3, max_side=96)
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "half.mp4", 24) as writer:
            writer.write(frames[0])
            writer.write(frames[1])
            raise RuntimeError("boom")
    with pytest.raises(InputError, match="frame 1 is"):
        with VideoWriter(tmp_path / "sizes.mp4", 24) as writer:
            writer.write(frames[0])
            writer.write(frames[0][:50])
    with pytest.raises(InputError, match="no frames"):
        with VideoWriter(tmp_path / "none.mp4", 24):
            pass
    with pytest.raises(InputError, match="outside its 'with' block; use it as: with VideoWriter"):
        VideoWriter(tmp_path / "nowith.mp4", 24).write(frames[0])
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("fail")
    assert _leftovers(tmp_path) == []
    with atomic_write(tmp_path / "ok.bin") as tmp:
        tmp.write_bytes(b"done")
    assert _leftovers(tmp_path) == ["ok.bin"] and (tmp_path / "ok.bin").read_bytes() == b"done"
    assert oct((tmp_path / "ok.bin").stat().st_mode & 0o777) == oct(0o644)


def test_overlay_and_cutout(davis_dir, tmp_path):
    source, masks = davis_sequence(davis_dir, "dog", max_side=160, max_frames=3)
    frames = list(source)
    labels = [resize_labels(read_mask(m), source.out_size) for m in masks]
    vis = overlay_labels(frames[0], labels[0])
    assert vis.shape == frames[0].shape and vis.dtype == np.uint8
    assert np.array_equal(vis[labels[0] == 0], frames[0][labels[0] == 0])  # background untouched
    assert not np.array_equal(vis[labels[0] == 1], frames[0][labels[0] == 1])
    rgba = rgba_cutout(frames[0], labels[0])
    assert rgba.shape == (*frames[0].shape[:2], 4)
    assert np.array_equal(rgba[..., 3] == 255, labels[0] == 1) and np.array_equal(rgba[..., :3], frames[0])
    assert not rgba_cutout(frames[0], labels[0], object_id=2)[..., 3].any()
    path = write_rgba_cutout(tmp_path / "cut.png", frames[0], labels[0])
    assert np.array_equal(np.array(Image.open(path)), rgba)
    full_size = [restore_labels(x, (240, 426)) for x in labels]  # labels at another size are brought back
    assert write_overlay_video(tmp_path / "overlay.mp4", frames, full_size, 24) == 3
    assert open_video(tmp_path / "overlay.mp4").num_frames == 3
    with pytest.raises(InputError, match="labels ended"):
        write_overlay_video(tmp_path / "short.mp4", frames, labels[:2], 24)
    assert not (tmp_path / "short.mp4").exists()
    with pytest.raises(InputError, match="restore_labels"):
        overlay_labels(frames[0], labels[0][:10])


def test_zip_directory_round_trip(tmp_path):
    src = tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    path = zip_directory(src, src / "all.zip")  # the zip itself is not zipped into itself
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["a.txt", "sub/b.txt"] and zf.read("sub/b.txt") == b"b"
    assert sorted(os.listdir(src)) == ["a.txt", "all.zip", "sub"]


def _overlay_reference(frame, labels, alpha=0.5):
    """overlay_labels as it was, over the whole frame (the box version must give the same pixels)."""
    from msn_core.io.masks import davis_palette

    palette = davis_palette()
    objects = labels > 0
    colour = palette[labels]
    out = frame.copy()
    blend = (1.0 - alpha) * frame[objects].astype(np.float32) + alpha * colour[objects].astype(np.float32)
    out[objects] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    edge = np.zeros_like(objects)
    vertical, horizontal = labels[1:, :] != labels[:-1, :], labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge &= objects
    out[edge] = colour[edge]
    return out


def test_overlay_on_the_objects_box_is_the_whole_frame_overlay():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cases = [np.zeros((37, 53), np.uint8)]  # no object: the frame itself
    for top, left, h, w in [(0, 0, 5, 7), (30, 45, 7, 8), (10, 12, 1, 1), (0, 20, 37, 3), (5, 0, 9, 53)]:
        labels = np.zeros((37, 53), np.uint8)
        labels[top : top + h, left : left + w] = rng.choice([1, 2, 255], (h, w))
        cases.append(labels)
    cases.append(rng.choice([0, 0, 0, 1, 3], (37, 53)).astype(np.uint8))
    for labels in cases:
        for alpha in (0.5, 0.3, 1.0):
            assert np.array_equal(overlay_labels(frame, labels, alpha), _overlay_reference(frame, labels, alpha))
