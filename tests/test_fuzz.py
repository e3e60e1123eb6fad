"""Property-based tests (hypothesis) and a fuzz run of generated broken files.

Every input goes through ``open_video`` (all frames decoded), ``read_mask`` or the
propagation loop and must either work or raise :class:`msn_core.MSNError`: never
another exception, a hang or a crash. The fuzz run mutates real files (H.264 mp4,
VP9 webm, GIF, AVI, a zip of JPEGs, a PNG frame folder, palette/grey/colour masks)
and records how many inputs it tried in ``tests/artifacts/fuzz.json`` and the pytest
cache (``msn_core/fuzz``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
import zipfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from builders import lying_zip, palette_png, rate_video
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import msn_core
from msn_core.config import BackboneConfig, MemoryConfig, MSNConfig, PipelineConfig, TPNConfig
from msn_core.errors import MSNError
from msn_core.io import VideoWriter, decode_image, example_sequence, open_video, read_mask, write_mask_png
from msn_core.limits import Limits
from msn_core.tasks import MaskTask, check_labels

FUZZ_INPUTS = 560  # generated files in the fuzz run (the reliability target: at least 500)
LOOP_EVERY = 8  # every 8th input that opens is also propagated through the loop
LIMITS = Limits(max_frames=60, max_pixels=2000 * 2000)  # a mutated header must not make us decode 8K frames
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"



pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe():
    cfg = PipelineConfig(
        backbone=BackboneConfig(name="tiny", pretrained=False), msn=MSNConfig(embed_dim=16, hidden=16),
        tpn=TPNConfig(width=8), memory=MemoryConfig(budget=4, recent=2), max_side=64,
    )  # fmt: skip
    return msn_core.load("tpn", "mask", "msn-top2", weights=None, config=cfg)


@pytest.fixture(scope="module")
def frames():
    source, masks = example_sequence("camel", max_side=64, max_frames=5)
    clip = list(source)
    return clip, msn_core.io.resize_labels(read_mask(masks[0]), clip[0].shape[:2])


def outcome(fn) -> str:
    """'ok' or 'error' (an MSNError); anything else propagates and fails the test."""
    try:
        fn()
    except MSNError:
        return "error"
    return "ok"


@contextlib.contextmanager
def deadline(seconds: int):
    """A hang in Python code becomes a TimeoutError (SIGALRM; main thread only)."""

    def fire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)



# ================================================================ property tests

MODES = ["L", "1", "I;16", "RGB", "RGBA", "LA", "P"]


@HYPOTHESIS
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    mode=st.sampled_from(MODES),
    levels=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    palette_len=st.integers(1, 256),
)
def test_read_mask_gives_ids_or_a_clear_error(h, w, mode, levels, seed, palette_len):
    """Any small PNG mask: an (H, W) uint8 id map (0/1 for binary ones), or InputError."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, (h, w))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.png"
        if mode == "P":
            pal = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(palette_len)]
            path.write_bytes(palette_png(values % 256, pal))
        elif mode == "I;16":
            Image.fromarray((values * 1000 % 65536).astype(np.uint16)).save(path)
        elif mode in ("RGB", "RGBA", "LA"):
            channels = {"RGB": 3, "RGBA": 4, "LA": 2}[mode]
            Image.fromarray((rng.integers(0, levels, (h, w, channels)) * 37 % 256).astype(np.uint8), mode).save(path)
        else:
            Image.fromarray((values * (255 // max(levels - 1, 1)) % 256).astype(np.uint8)).convert(mode).save(path)
        try:
            labels = read_mask(path)
        except MSNError:
            return
    assert labels.shape == (h, w) and labels.dtype == np.uint8
    if mode in ("L", "1", "I;16") and len(np.unique(values)) == 2 and 0 in values:
        assert set(np.unique(labels)) <= {0, 1}  # a binary mask is read as 0/1


@HYPOTHESIS
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_, np.uint16]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    )
)
def test_first_mask_arrays_are_ids_or_refused(arr):
    """check_labels keeps whole ids 0..255 exactly and refuses everything else clearly."""
    try:
        labels = check_labels(arr)
    except MSNError:
        ok = arr.ndim == 2 and arr.size > 0 and (arr.dtype == bool or (
            np.isfinite(arr).all() and (arr == np.round(arr)).all() and arr.min() >= 0 and arr.max() <= 255))
        assert not ok, f"refused a valid id map {arr!r}"
        return
    assert labels.dtype == np.uint8 and labels.shape == arr.shape
    np.testing.assert_array_equal(labels, arr.astype(np.float64))
    ids = [i for i in np.unique(labels) if 0 < i < 255]
    if ids and len(ids) <= 20:
        assert MaskTask.from_labels(arr).object_ids == [int(i) for i in ids]


@HYPOTHESIS
@given(data=st.binary(max_size=300), header=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0"]))
def test_decode_image_of_any_bytes(data, header):
    try:
        img = decode_image(header + data, "x.png")
    except MSNError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # generated names may repeat
@HYPOTHESIS
@given(names=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
@example(names=["²"])  # str.isdigit() but not int(): once crashed the natural sort of frame names
@example(names=["../x", "a/../../y", "/abs", "C:\\win", "ok"])
@example(names=["0", ".."])  # member "..1.png": a plain name that merely starts with ".." (opens)
def test_zip_member_names_are_safe_or_refused(names):
    """Whatever the member names (``..``, absolute, backslashes, unicode), a zip of frames
    opens from inside the archive or is refused; nothing is ever extracted."""
    frame = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for i, name in enumerate(names):
                with contextlib.suppress(ValueError, IndexError):  # names zipfile cannot store (NUL)
                    zf.writestr(f"{name}{i}.png", frame)
            members = zf.namelist()  # as stored ("..1.png" is a plain name, "../1.png" is not)
        try:
            frames = list(open_video(path))
        except MSNError:
            frames = None
        assert sorted(p.name for p in Path(d).iterdir()) == ["f.zip"]
    if frames is not None:
        assert all(f.shape == (4, 4, 3) for f in frames)
        assert not any(".." in n.replace("\\", "/").split("/") for n in members)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(2, 40),
    w=st.integers(2, 40),
    n=st.integers(1, 4),
    n_objects=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_loop_on_random_frames_and_masks(pipe, h, w, n, n_objects, seed):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    mask = rng.integers(0, n_objects + 1, (h, w)).astype(np.uint8)
    try:
        results = list(pipe.propagate(frames, mask))
    except MSNError:
        assert not mask.any()  # the only refusal here: a mask without an object
        return
    assert [r.index for r in results] == list(range(n))
    ids = set(np.unique(mask).tolist()) | {0}
    assert all(r.labels.shape == (h, w) and set(np.unique(r.labels).tolist()) <= ids for r in results)
    if msn_core.io.fit_size((h, w), 64) == (h, w):  # processed at its own size: the annotation comes back
        np.testing.assert_array_equal(results[0].labels, mask)


# ===================================================================== fuzz run


def seed_files(folder: Path, frames: list[np.ndarray], mask: np.ndarray) -> dict[str, Path]:
    """Real, valid files of every kind the readers take, to be mutated."""
    seeds = {}
    for ext in (".mp4", ".webm", ".gif", ".avi"):
        with VideoWriter(folder / f"seed{ext}", 24) as w:
            for f in frames:
                w.write(f)
        seeds[ext] = folder / f"seed{ext}"
    with zipfile.ZipFile(folder / "seed.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, f in enumerate(frames):
            zf.writestr(f"clip/{i:05d}.jpg", cv2.imencode(".jpg", f)[1].tobytes())
    seeds[".zip"] = folder / "seed.zip"
    seeds["frame.png"] = folder / "frame.png"
    cv2.imwrite(str(seeds["frame.png"]), frames[0])
    seeds["frame.jpg"] = folder / "frame.jpg"
    cv2.imwrite(str(seeds["frame.jpg"]), frames[0])
    seeds["mask-palette.png"] = write_mask_png(folder / "mask-palette.png", mask)
    seeds["mask-grey.png"] = folder / "mask-grey.png"
    Image.fromarray(mask * 255).save(seeds["mask-grey.png"])
    seeds["mask-rgb.png"] = folder / "mask-rgb.png"
    Image.fromarray(msn_core.io.davis_palette()[mask]).save(seeds["mask-rgb.png"])
    return seeds


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random corruption of ``data`` and its name."""
    n = len(data)
    kind = rng.choice(["truncate", "flip", "chunk", "insert", "zero", "duplicate", "random", "header"])
    buf = bytearray(data)
    if kind == "truncate":
        return kind, bytes(buf[: int(rng.integers(0, n))])
    if kind == "flip":
        for i in rng.integers(0, n, int(rng.integers(1, 24))):
            buf[i] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(buf)
    if kind == "chunk":
        at, size = int(rng.integers(0, n)), int(rng.integers(1, 256))
        buf[at : at + size] = rng.bytes(min(size, n - at))
        return kind, bytes(buf)
    if kind == "insert":
        at = int(rng.integers(0, n))
        return kind, bytes(buf[:at]) + rng.bytes(int(rng.integers(1, 512))) + bytes(buf[at:])
    if kind == "zero":
        at, size = int(rng.integers(0, n)), int(rng.integers(1, 2048))
        buf[at : at + size] = bytes(min(size, n - at))
        return kind, bytes(buf)
    if kind == "duplicate":
        at, size = int(rng.integers(0, n)), int(rng.integers(1, 1024))
        return kind, bytes(buf[: at + size]) + bytes(buf[at:])
    if kind == "random":
        return kind, rng.bytes(int(rng.integers(0, 4096)))
    head = int(rng.integers(8, 64))  # the real header, then noise: what gets furthest into a parser
    return kind, bytes(buf[:head]) + rng.bytes(int(rng.integers(0, 4096)))


def read_all(path: Path) -> list[np.ndarray]:
    frames = list(open_video(path, limits=LIMITS))
    assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)
    return frames


def read_labels(path: Path) -> np.ndarray:
    labels = read_mask(path, limits=LIMITS)
    assert labels.dtype == np.uint8 and labels.ndim == 2
    return labels


def run_case(run, path: Path, pipe, clip: list[np.ndarray], through_loop: bool) -> str:
    """Read one input; when it reads and ``through_loop``, propagate through it too."""
    result: list = []
    kind = outcome(lambda: result.append(run(path)))
    if kind != "ok" or not through_loop:
        return kind
    if run is read_all:  # frames: propagate a mask of their size
        first = np.zeros(result[0][0].shape[:2], np.uint8)
        first[: first.shape[0] // 2] = 1
        return outcome(lambda: list(pipe.propagate(result[0][:3], first))) + "+loop"
    labels = result[0]  # a mask: propagate it through real frames of its size
    frames = [cv2.resize(f, labels.shape[::-1]) for f in clip[:3]] if min(labels.shape) >= 2 else []
    return outcome(lambda: list(pipe.propagate(frames, labels))) + "+loop"


def test_fuzz_run(tmp_path, frames, pipe, record_property, request):
    rng = np.random.default_rng(2020)
    seeds = seed_files(tmp_path, *frames)
    kinds = list(seeds)
    counts: Counter = Counter()
    slowest = 0.0
    loop_runs = 0
    for i in range(FUZZ_INPUTS):
        kind = kinds[i % len(kinds)]
        how, data = mutate(seeds[kind].read_bytes(), rng)
        case = tmp_path / f"case{i}"
        case.mkdir()
        if kind.startswith("frame."):  # a frame folder with one broken frame among good ones
            for j in range(3):
                cv2.imwrite(str(case / f"{j:05d}{Path(kind).suffix}"), frames[0][j])
            target = case / f"00001{Path(kind).suffix}"
            target.write_bytes(data)
            path, run = case, read_all
        elif kind.startswith("mask"):
            path, run = case / "mask.png", read_labels
            path.write_bytes(data)
        else:
            path, run = case / f"input{kind}", read_all
            path.write_bytes(data)
        start = time.perf_counter()
        try:
            with deadline(30):
                result_kind = run_case(run, path, pipe, frames[0], through_loop=i % LOOP_EVERY == 0)
        except Exception as exc:  # the one thing that must never happen
            pytest.fail(f"input {i} ({kind}, {how}) raised {type(exc).__name__}: {exc}")
        loop_runs += result_kind.endswith("+loop")
        slowest = max(slowest, time.perf_counter() - start)
        counts[(kind, result_kind)] += 1
        counts[result_kind.split("+")[0]] += 1
    total = sum(v for k, v in counts.items() if isinstance(k, tuple))
    summary = {
        "inputs": total,
        "worked": counts["ok"],
        "clear_errors": counts["error"],
        "also_through_the_loop": loop_runs,
        "slowest_s": round(slowest, 3),
        "by_kind": {f"{k[0]} {k[1]}": v for k, v in sorted(k for k in counts.items() if isinstance(k[0], tuple))},
    }
    print(f"\nfuzz run: {total} generated inputs, {counts['ok']} worked, {counts['error']} refused with "
          f"MSNError, 0 other exceptions; {loop_runs} also went through the loop; slowest {slowest:.2f} s")  # fmt: skip
    record_property("fuzz_inputs", total)
    if getattr(request.config, "cache", None) is not None:  # absent under -p no:cacheprovider
        request.config.cache.set("msn_core/fuzz", summary)
    with contextlib.suppress(OSError):
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "fuzz.json").write_text(json.dumps(summary, indent=1))
    assert total >= 500
    assert counts["ok"] > 0 and counts["error"] > 0  # both outcomes were exercised
    assert slowest < 30


# ================================================================ hostile families



def test_hostile_families_end_in_a_result_or_a_clear_refusal(tmp_path, frames):
    """Zip bombs whose headers lie (every method, several sizes), non-regular files (FIFOs under every
    extension, devices, symlinks to them) and videos at extreme frame rates, each read in full and
    written out as an overlay: every one works or raises MSNError, within the deadline."""
    clip = frames[0]
    jpeg = cv2.imencode(".jpg", clip[0])[1].tobytes()
    cases: list[tuple[str, Path]] = []
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        for extra in (1, 4096, 2**20, 32 * 2**20):
            cases.append(("zip bomb", lying_zip(tmp_path / f"bomb{method}_{extra}.zip", jpeg, method, extra)))
    for ext in (".mp4", ".zip", ".gif", ".png"):
        os.mkfifo(tmp_path / f"fifo{ext}")
        cases.append(("non-regular", tmp_path / f"fifo{ext}"))
        (tmp_path / f"zero{ext}").symlink_to("/dev/zero")
        cases.append(("non-regular", tmp_path / f"zero{ext}"))
    cases += [("non-regular", Path("/dev/null")), ("non-regular", Path("/dev/zero"))]
    for rate in (Fraction(1, 60000), Fraction(1, 1001), Fraction(1, 3), Fraction(60000)):
        cases.append(("frame rate", rate_video(tmp_path / f"rate{rate.numerator}_{rate.denominator}.mkv", clip, rate)))
    counts: Counter = Counter()

    def read_and_write(path: Path) -> None:
        source = open_video(path, limits=LIMITS)
        with VideoWriter(tmp_path / "overlay.mp4", source.fps) as w:
            for f in source:
                w.write(f)

    for family, path in cases:
        with deadline(30):
            kind = outcome(lambda p=path: read_labels(p) if p.suffix == ".png" else read_and_write(p))
        counts[(family, kind)] += 1
    assert counts[("zip bomb", "error")] == 16  # each inflates past its declared size, by 1 byte or 32 MB
    assert counts[("frame rate", "ok")] == 4 and counts[("non-regular", "error")] == 10
    print("\nhostile families: " + ", ".join(f"{f} {k}: {n}" for (f, k), n in sorted(counts.items())))
    with contextlib.suppress(OSError):
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "hostile.json").write_text(json.dumps({f"{f} {k}": n for (f, k), n in counts.items()}))
