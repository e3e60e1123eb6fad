"""Writing results: atomic files, browser-playable videos, overlays, cut-outs, zips."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from msn_core.errors import InputError
from msn_core.io._common import VOID_LABEL, atomic_write, shape_str
from msn_core.io.masks import davis_palette
from msn_core.io.resize import restore_labels

_PALETTE = davis_palette()

# extension -> (container format, codec, pixel format, codec options, container options)
_FORMATS: dict[str, tuple[str, str, str, dict[str, str], dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, {"movflags": "+faststart"}),
    ".mov": ("mov", "libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, {"movflags": "+faststart"}),
    ".mkv": ("matroska", "libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, {}),
    ".avi": ("avi", "libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, {}),
    ".webm": (
        "webm",
        "libvpx-vp9",
        "yuv420p",
        {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
        {},
    ),
    ".gif": ("gif", "gif", "pal8", {}, {}),
}


def _as_rgb(frame: np.ndarray, what: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise InputError(f"{what}: frames must be uint8 RGB, got dtype {frame.dtype}")
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise InputError(f"{what}: frames must be (H, W, 3) RGB, got shape {frame.shape}")
    return frame[..., :3]


# the frame rates the encoders and players take; a video's own rate outside them (a broken header,
# a time-lapse of one frame a day) is written at the nearest bound, so the frames are all kept
FPS_RANGE = (Fraction(1, 1000), Fraction(1000))


def _fps_fraction(fps) -> Fraction:
    """``fps`` as a positive Fraction, clamped into ``FPS_RANGE``."""
    try:
        rate = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError) as exc:
        raise InputError(f"fps must be a positive number, got {fps!r}") from exc
    if rate <= 0:
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return min(max(rate, FPS_RANGE[0]), FPS_RANGE[1])


def _quantize(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB -> (indices, (256, 4) ARGB palette): a per-frame 256-colour palette for GIF."""
    im = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    rgb = np.zeros((256, 3), np.uint8)
    pal = np.array(im.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    rgb[: len(pal)] = pal
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), rgb], axis=1)
    return np.array(im, np.uint8), argb


class VideoWriter:
    """Context manager writing RGB uint8 frames to a video, atomically.

    The extension picks the format: .mp4/.mov/.mkv/.avi -> H.264 (libx264,
    yuv420p; mp4/mov with faststart, playable in browsers), .webm -> VP9, .gif.
    Odd frame sizes are padded by one pixel (edge copy) to even ones. A frame rate outside
    ``FPS_RANGE`` is written at the nearest bound (``fps`` holds the rate used).
    ``size`` (H, W) defaults to the first frame's.
    """

    def __init__(self, path: str | Path, fps, size: tuple[int, int] | None = None, crf: int | None = None):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in _FORMATS:
            raise InputError(
                f"cannot write video '{self.path}': unsupported extension '{ext}'; accepted: {', '.join(_FORMATS)}"
            )
        self.fps = _fps_fraction(fps)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.crf = crf
        self.frames_written = 0
        self._atomic = None
        self._container = None
        self._stream = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_write(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def _open(self, size: tuple[int, int]) -> None:
        fmt, codec, pix_fmt, options, container_options = _FORMATS[self.path.suffix.lower()]
        options = dict(options)
        if self.crf is not None and "crf" in options:
            options["crf"] = str(int(self.crf))
        h, w = size
        self._even = (h + h % 2, w + w % 2)
        self._container = av.open(str(self._tmp), mode="w", format=fmt, options=container_options)
        stream = self._container.add_stream(codec, rate=self.fps, options=options)
        stream.width, stream.height = self._even[1], self._even[0]
        stream.pix_fmt = pix_fmt
        if codec == "libvpx-vp9":
            stream.bit_rate = 0
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame."""
        if self._atomic is None:
            raise InputError(
                f"VideoWriter '{self.path}': write() called outside its 'with' block; "
                "use it as: with VideoWriter(path, fps) as w: w.write(frame)"
            )
        frame = _as_rgb(frame, f"VideoWriter '{self.path}'")
        if self._container is None:
            self.size = self.size or frame.shape[:2]
            self._open(self.size)
        if frame.shape[:2] != self._even:
            if frame.shape[:2] != self.size:
                raise InputError(
                    f"VideoWriter '{self.path}': frame {self.frames_written} is {shape_str(frame.shape)}, "
                    f"the video is {shape_str(self.size)}; all frames must have one size"
                )
            pad = ((0, self._even[0] - frame.shape[0]), (0, self._even[1] - frame.shape[1]), (0, 0))
            frame = np.pad(frame, pad, mode="edge")
        if self._stream.pix_fmt == "pal8":
            out = av.VideoFrame.from_ndarray(_quantize(frame), format="pal8")
        else:
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        out.pts = self.frames_written
        out.time_base = 1 / self.fps
        for packet in self._stream.encode(out):
            self._container.mux(packet)
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        atomic, self._atomic = self._atomic, None
        container, self._container = self._container, None
        try:
            if exc_type is None and container is None:
                raise InputError(f"VideoWriter '{self.path}': no frames were written")
            if container is not None:
                try:
                    if exc_type is None:
                        for packet in self._stream.encode(None):
                            container.mux(packet)
                finally:
                    with contextlib.suppress(Exception) if exc_type is not None else contextlib.nullcontext():
                        container.close()
        except BaseException as err:
            atomic.__exit__(type(err), err, err.__traceback__)
            raise
        atomic.__exit__(exc_type, exc, tb)


def overlay_labels(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend palette colours over the objects of ``labels`` (same H, W as ``frame``)
    with opacity ``alpha`` and draw a 1-px contour in each object's colour."""
    frame = _as_rgb(frame, "overlay_labels")
    labels = np.asarray(labels)
    if labels.shape != frame.shape[:2]:
        raise InputError(
            f"overlay_labels: labels are {shape_str(labels.shape)} but the frame is {shape_str(frame.shape)}; "
            "use restore_labels() first"
        )
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"overlay_labels: alpha must be in [0, 1], got {alpha}")
    labels = labels.astype(np.uint8, copy=False)
    out = frame.copy()
    rows, cols = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
    if rows.size:  # only the objects' box changes (with a 1-px margin: a contour looks at its neighbours)
        box = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
        _overlay_box(out[box], frame[box], labels[box], alpha)
    return out


def _overlay_box(out: np.ndarray, frame: np.ndarray, labels: np.ndarray, alpha: float) -> None:
    """:func:`overlay_labels` on one box of the frame, into ``out``."""
    objects = labels > 0
    colour = _PALETTE[labels]
    blend = (1.0 - alpha) * frame[objects].astype(np.float32) + alpha * colour[objects].astype(np.float32)
    out[objects] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    edge = np.zeros_like(objects)
    vertical = labels[1:, :] != labels[:-1, :]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge &= objects
    out[edge] = colour[edge]


def write_overlay_video(
    path: str | Path,
    frames_iter: Iterable[np.ndarray],
    labels_iter: Iterable[np.ndarray],
    fps,
    alpha: float = 0.5,
) -> int:
    """Write an overlay video of frames and their labels (labels of another size are
    brought to the frame's size). Both must have the same length. Returns the count."""
    frames, labels_it = iter(frames_iter), iter(labels_iter)
    done = object()
    with VideoWriter(path, fps) as writer:
        while True:
            frame, labels = next(frames, done), next(labels_it, done)
            if frame is done and labels is done:
                break
            if frame is done or labels is done:
                raise InputError(
                    f"write_overlay_video '{path}': {writer.frames_written} frames were paired, then the "
                    f"{'frames' if frame is done else 'labels'} ended; give as many labels as frames"
                )
            labels = restore_labels(labels, frame.shape[:2])
            writer.write(overlay_labels(frame, labels, alpha))
    return writer.frames_written


def rgba_cutout(frame: np.ndarray, labels: np.ndarray, object_id: int | None = None) -> np.ndarray:
    """(H, W, 4) uint8: the frame with alpha 255 on object ``object_id`` (all objects
    when None; void 255 is never an object) and 0 elsewhere."""
    frame = _as_rgb(frame, "rgba_cutout")
    labels = np.asarray(labels)
    if labels.shape != frame.shape[:2]:
        raise InputError(
            f"rgba_cutout: labels are {shape_str(labels.shape)} but the frame is {shape_str(frame.shape)}"
        )
    if object_id is None:
        keep = (labels > 0) & (labels != VOID_LABEL)
    else:
        if not 0 < int(object_id) < VOID_LABEL:
            raise InputError(f"rgba_cutout: object_id must be in 1..254, got {object_id}")
        keep = labels == int(object_id)
    return np.dstack([frame, np.where(keep, 255, 0).astype(np.uint8)])


def write_rgba_cutout(
    path: str | Path, frame: np.ndarray, labels: np.ndarray, object_id: int | None = None
) -> Path:
    """Write :func:`rgba_cutout` as a PNG, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"write_rgba_cutout '{path}': the file must end in .png (the format with alpha)")
    rgba = rgba_cutout(frame, labels, object_id)
    with atomic_write(path) as tmp:
        Image.fromarray(rgba, mode="RGBA").save(tmp, format="PNG")
    return path


def zip_directory(src_dir: str | Path, zip_path: str | Path) -> Path:
    """Zip every file under ``src_dir`` (paths relative to it), atomically."""
    src, zip_path = Path(src_dir), Path(zip_path)
    if not src.is_dir():
        raise InputError(f"zip_directory: '{src}' is not a folder")
    target = zip_path.resolve()
    with atomic_write(zip_path) as tmp:
        skip = {target, tmp.resolve()}
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(p for p in src.rglob("*") if p.is_file()):
                if file.resolve() not in skip:
                    zf.write(file, file.relative_to(src).as_posix())
    return zip_path
