"""What the tabs share: the cached pipelines, opening a clip under the limits,
per-session temp folders and friendly errors (a mask run's set-up and J: demos.runs)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

import msn_core
from demos.limits import Limits, device  # noqa: F401 - device: where the networks run, for the tabs
from msn_core.errors import InputError, MSNError
from msn_core.io import resize_labels
from msn_core.limits import Limits as CoreLimits

log = logging.getLogger("msn_demo")

UNTRAINED_NOTICE = (
    "**Trained weights are not available yet**, so this demo runs untrained, seeded networks: "
    "TPN then equals plain optical-flow warping and MSN's scores are random. The interface and the "
    "pipeline are real; the quality of MSN's choices is not yet."
)
SEGMENT_SELECTORS = ["msn", "msn-top3", "previous", "previous-top3", "first", "gap5", "similarity",
                     "similarity-masked", "oracle"]  # fmt: skip
BASELINES = ["previous", "gap5", "first", "similarity", "similarity-masked", "oracle"]
PROPAGATORS = [("TPN", "tpn"), ("STM-1", "stm"), ("TPN + STM-1", "tpn+stm")]
COLOUR_NAMES = ["red", "green", "olive", "blue", "purple"]  # DAVIS palette 1..5
PROPAGATOR_HELP = {
    "tpn": "TPN: warps the guide's mask along the motion to the frame and corrects it; the lighter network.",
    "stm": "STM-1: reads the mask from a memory of the first frame and the guide by matching features; "
    "the better of the two without adaptation.",
    "tpn+stm": "TPN + STM-1: both networks on the same guide, averaged; the best after adaptation, at twice "
    "the cost.",
}


def propagator_help(propagator: str) -> str:
    """The help line under the network choice, for the network that is selected."""
    return PROPAGATOR_HELP.get(propagator, "")


def default_example() -> str | None:
    """The clip the demo opens on: ``dog`` when bundled, else the first example."""
    names = msn_core.list_examples()
    return "dog" if "dog" in names else (names[0] if names else None)


# ------------------------------------------------------------------------ pipelines

_LOCK = threading.Lock()


def on_gpu(fn):
    """Run ``fn`` under ``spaces.GPU`` on Hugging Face ZeroGPU hardware (where the GPU is
    attached only inside such calls); everywhere else ``fn`` is returned unchanged."""
    if os.environ.get("SPACES_ZERO_GPU"):
        try:
            import spaces  # type: ignore[import-not-found]
        except ImportError:
            return fn
        return spaces.GPU(duration=120)(fn)
    return fn


def on_cpu() -> bool:
    """Whether the networks run on a CPU (where a run shows its expected wait)."""
    return not device().startswith("cuda")


_PIPELINES: dict[tuple[str, str, int], tuple[msn_core.Pipeline, str | None]] = {}


def sides_text(limits: Limits) -> str:
    """The long sides the networks run at without adaptation, in words."""
    if limits.process_side:
        return f"{limits.process_side} px"
    return ", ".join(f"{limits.network_side(0, value)} px ({label})" for label, value in PROPAGATORS)


def adapt_help(limits: Limits) -> str:
    """The adaptation slider's help: what it does, what it gained on DAVIS, what it costs."""
    return (
        "0 = off. Fine-tunes the network on your annotated frame before propagating, then runs it at up to "
        f"{limits.adapted_side} px on the long side instead of {sides_text(limits)}. On the DAVIS validation "
        "videos 300 steps gave much better masks than no adaptation. It takes longer than the propagation "
        "itself, even on a GPU, and much longer on a CPU (figures: results/evaluation.md and BENCHMARKS.md "
        "in the project)."
    )


FLIP_HELP = (
    "Also reads every guide mirrored left-right and averages the two: slower per frame; on the DAVIS "
    "validation videos it was more accurate with and without adaptation (figures: results/evaluation.md "
    "in the project, 'Test-time flip')."
)


def with_flip(pipe: msn_core.Pipeline, flip: bool) -> msn_core.Pipeline:
    """``pipe`` itself, or (``flip``) a pipeline on the same cached networks that reads every guide
    mirrored too (test-time flip); the cached pipeline is never changed."""
    return pipe.with_parts(cfg=dataclasses.replace(pipe.cfg, test_flip=True)) if flip else pipe


def get_pipeline(propagator: str, task: str, max_side: int) -> tuple[msn_core.Pipeline, str | None]:
    """A cached pipeline and a notice (None when trained weights were loaded).

    Tries the trained weights (``weights="auto"``); on :class:`msn_core.WeightsError`
    falls back to untrained seeded networks and returns :data:`UNTRAINED_NOTICE`."""
    key = (propagator, task, int(max_side))
    with _LOCK:
        if key not in _PIPELINES:
            cfg = msn_core.PipelineConfig(propagator=propagator, task=task, max_side=int(max_side))
            try:
                pipe, notice = msn_core.load(propagator, task, weights="auto", config=cfg, device=device()), None
            except msn_core.WeightsError as exc:
                log.warning(
                    "no trained weights for %s/%s (%s); using untrained networks", propagator, task, exc
                )
                pipe = msn_core.load(propagator, task, weights=None, config=cfg, device=device())
                notice = UNTRAINED_NOTICE
            _PIPELINES[key] = (pipe, notice)
        return _PIPELINES[key]


# ------------------------------------------------------------------ gradio's image cache


def _save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """``gradio.processing_utils.save_pil_to_cache`` written to a temporary name and renamed.

    Gradio names cached images by their content, so two sessions showing the same image (every
    visitor opening the default example) write the same file; its plain ``write_bytes`` lets one
    session truncate that file while another session's download of it is under way (the
    download ends short: "peer closed connection"). Same content, same name: an existing file is
    kept as it is."""
    from gradio import processing_utils as pu

    data = pu.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / pu.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)  # gradio's delete_cache ages files by their time stamps
        return str(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def fix_gradio_image_cache() -> None:
    """Make gradio cache images atomically (see :func:`_save_pil_to_cache_atomically`); idempotent.
    Called by ``build_demo``; harmless on a gradio that does not have the function."""
    from gradio import processing_utils as pu

    if hasattr(pu, "save_pil_to_cache") and hasattr(pu, "hash_bytes") and hasattr(pu, "encode_pil_to_bytes"):
        pu.save_pil_to_cache = _save_pil_to_cache_atomically


# ---------------------------------------------------------------------------- clips


@dataclass
class Clip:
    """A video as the demo uses it: at most ``limits.max_frames`` frames at most
    ``limits.max_side`` pixels on the long side."""

    path: str  # video file, frame folder or zip
    name: str
    fps: float
    num_frames: int | None  # frames the demo uses (None: unknown, read until max_frames)
    size: tuple[int, int]  # original (H, W)
    out_size: tuple[int, int]  # working (H, W)
    max_side: int
    max_frames: int
    first: np.ndarray  # frame 0 at out_size
    example: str | None = None
    truth: list[str] = field(default_factory=list)  # ground-truth mask PNGs (examples)
    notices: list[str] = field(default_factory=list)

    def frames(self, n: int | None = None) -> Iterator[np.ndarray]:
        """The frames at ``out_size``, at most ``n``."""
        count = self.max_frames if n is None else max(1, min(int(n), self.max_frames))
        return iter(msn_core.open_video(self.path, max_side=self.max_side, max_frames=count))

    def count(self, n: int | None = None) -> int:
        """How many frames a run of ``n`` frames will see (an upper bound if unknown)."""
        try:
            n = self.max_frames if n is None else int(n)
        except (TypeError, ValueError, OverflowError):  # NaN, inf, text
            raise InputError(f"the number of frames must be a whole number, got {n!r}") from None
        return max(1, min(n, self.num_frames or self.max_frames))

    def truth_labels(self, n: int | None = None) -> list[np.ndarray]:
        """Ground-truth id maps at ``out_size`` of the first ``n`` frames ([] if unknown)."""
        paths = self.truth[: self.count(n)]
        return [resize_labels(msn_core.read_mask(p), self.out_size) for p in paths]

    def describe(self) -> str:
        h, w = self.out_size
        frames = f"{self.num_frames} frames" if self.num_frames else "frames"
        where = f"bundled example **{self.example}** (DAVIS-2016)" if self.example else f"**{self.name}**"
        lines = [f"{where}: {frames}, {w}×{h}, {self.fps:g} fps"]
        return "  \n".join(lines + [f"⚠️ {n}" for n in self.notices])


def open_example(name: str, limits: Limits) -> Clip:
    if not name:
        raise InputError(f"pick an example clip: {', '.join(msn_core.list_examples())}")
    source, masks = msn_core.example_sequence(name, max_side=limits.max_side, max_frames=limits.max_frames)
    return _clip(source, limits, example=name, truth=[str(p) for p in masks])


def open_upload(path: str | None, limits: Limits) -> Clip:
    """An uploaded video file or zip of frames, checked against the limits."""
    if not path:
        raise InputError(
            "no file was uploaded; upload a video (mp4, webm, mov, gif, avi, mkv) or a zip of frames"
        )
    p = Path(path)
    if not p.is_file():
        raise InputError(f"the upload '{p.name}' is missing on the server; upload it again")
    size = p.stat().st_size
    if size > limits.max_upload_bytes:
        raise InputError(
            f"'{p.name}' is {size / 2**20:.1f} MB; this demo accepts uploads up to {limits.max_upload_mb} MB"
        )
    if size == 0:
        raise InputError(f"'{p.name}' is empty (0 bytes); upload a video or a zip of frames")
    return _clip(msn_core.open_video(p, max_side=limits.max_side, max_frames=limits.max_frames), limits)


def _clip(source, limits: Limits, example: str | None = None, truth: list[str] | None = None) -> Clip:
    first = source.first_frame()
    notices = []
    if source.out_size != source.size:
        (h, w), (oh, ow) = source.size, source.out_size
        notices.append(
            f"Downscaled from {w}×{h} to {ow}×{oh}: this demo works at most at {limits.max_side} px "
            "on the long side (masks and videos are written at that size)."
        )
    if source.num_frames == limits.max_frames:  # how long the whole video is, for the notice
        uncapped = dataclasses.replace(CoreLimits.from_env(), max_frames=None)
        total = msn_core.open_video(source.path, limits=uncapped).num_frames
    else:
        total = None
    if total is not None and total > limits.max_frames:
        notices.append(f"Only the first {limits.max_frames} of {total} frames are used (the demo's cap).")
    elif source.num_frames is None:
        notices.append(f"The video does not say how long it is; at most {limits.max_frames} frames are used.")
    return Clip(
        path=str(source.path),
        name=source.name,
        fps=source.fps,
        num_frames=source.num_frames,
        size=source.size,
        out_size=source.out_size,
        max_side=limits.max_side,
        max_frames=limits.max_frames,
        first=first,
        example=example,
        truth=truth or [],
        notices=notices,
    )


def fit_image(image: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    """An uploaded image brought to the clip's working size; refuses another aspect ratio."""
    import cv2

    h, w = size
    ih, iw = image.shape[:2]
    if abs(iw / ih - w / h) > 0.02 * (w / h):
        raise InputError(
            f"the {what} is {iw}×{ih} but the video is {w}×{h} (another aspect ratio); "
            "give an image of the video's first frame"
        )
    if (ih, iw) == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if iw > w else cv2.INTER_LINEAR)


# -------------------------------------------------------------------- temp folders

TEMP_ROOT = Path(tempfile.gettempdir()) / "msn_demo"


def session_key(request: gr.Request | None) -> str:
    key = getattr(request, "session_hash", None) if request is not None else None
    return re.sub(r"[^A-Za-z0-9_-]", "", key or "") or f"anon-{uuid.uuid4().hex[:12]}"


def work_dir(request: gr.Request | None, tab: str, max_age_s: int) -> Path:
    """A fresh folder for this session's run in ``tab`` (the previous run's files are removed);
    folders of sessions idle longer than ``max_age_s`` are swept on the way."""
    sweep(max_age_s)
    path = TEMP_ROOT / session_key(request) / tab
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@contextlib.contextmanager
def run_dir(request: gr.Request | None, tab: str, max_age_s: int) -> Iterator[Path]:
    """:func:`work_dir` for one run, removed again when the run does not finish: cancelled
    (the generator is closed), failed or interrupted. A finished run's files stay (they are served)."""
    path = work_dir(request, tab, max_age_s)
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def remove_session(request: gr.Request | None) -> None:
    """Remove every file of a session (called when its page is closed)."""
    key = getattr(request, "session_hash", None) if request is not None else None
    if key:
        shutil.rmtree(TEMP_ROOT / session_key(request), ignore_errors=True)


def sweep(max_age_s: int) -> None:
    if not TEMP_ROOT.is_dir():
        return
    now = time.time()
    for d in TEMP_ROOT.iterdir():
        with contextlib.suppress(OSError):
            if now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)


# -------------------------------------------------------------------------- errors

_PATH = re.compile(r"(?:/[^\s'\"/:]+)+/([^\s'\"/:]+)")
# "[Errno 1094995529] Invalid data found when processing input: 'x.mp4'" (PyAV's, OSError's format):
# the number and the repeated file name are noise to a person
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*([^:;()]*?)\s*(:\s*'[^']*')?(?=[);]|$)")


def scrub(message: str) -> str:
    """Server paths reduced to file names (a user sees the name of what they uploaded), and no
    errno numbers (nor a file name said twice): one readable sentence."""
    message = _PATH.sub(r"\1", message)

    def clean(m: re.Match) -> str:
        text = m[1].strip()
        text = text[:1].lower() + text[1:] if text else "could not be read"
        name = m[2] or ""
        return text if name.lstrip(": ") in message[: m.start()] else text + name

    return _ERRNO.sub(clean, message)


@contextlib.contextmanager
def user_errors(what: str) -> Iterator[None]:
    """Turn any failure into a :class:`gr.Error` a person can read (never a stack trace)."""
    try:
        yield
    except gr.Error:
        raise
    except MSNError as exc:
        raise gr.Error(f"{what}: {scrub(str(exc))}", title="Cannot do that", print_exception=False) from None
    except MemoryError:
        raise gr.Error(
            f"{what}: out of memory; try fewer frames or a smaller video", print_exception=False
        ) from None
    except Exception as exc:
        log.exception("%s failed", what)
        raise gr.Error(
            f"{what} failed unexpectedly ({type(exc).__name__}: {scrub(str(exc))[:300]}). "
            "Try another file or fewer frames.",
            print_exception=False,
        ) from None
