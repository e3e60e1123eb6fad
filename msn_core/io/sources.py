"""Reading frames lazily from a video file, a folder of images or a zip of images."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import av
import cv2
import numpy as np
from PIL import Image

from msn_core.errors import InputError
from msn_core.io._common import (
    IMAGE_EXTS,
    MAX_ZIP_MEMBERS,
    VIDEO_EXTS,
    ZIP_EXTS,
    accepted_inputs,
    natural_key,
    shape_str,
)
from msn_core.io.resize import check_max_side, fit_size, resize_frame

DEFAULT_FPS = 24.0
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # one image inside a zip (guards against zip bombs)
_IMREAD = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION


class VideoSource:
    """Frames of one video, decoded one at a time on iteration (each iteration
    re-opens the input). Yields (h, w, 3) uint8 RGB at ``out_size``.

    Attributes: ``path``, ``name``, ``fps``, ``num_frames`` (None if unknown),
    ``size`` (H, W) of the original frames, ``out_size`` (H, W) after the
    ``max_side`` cap, ``frame_paths`` (the image files of a folder, else None).
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        num_frames: int | None,
        size: tuple[int, int],
        max_side: int | None = None,
        max_frames: int | None = None,
        frame_paths: list[Path] | None = None,
    ) -> None:
        _check_args(max_side, max_frames)
        self.path = Path(path)
        self.name = self.path.stem if self.path.suffix.lower() in VIDEO_EXTS + ZIP_EXTS else self.path.name
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        self.max_side = max_side
        self.max_frames = None if max_frames is None else int(max_frames)
        self.out_size = fit_size(self.size, max_side)
        if num_frames is not None and self.max_frames is not None:
            num_frames = min(num_frames, self.max_frames)
        self.num_frames = num_frames
        self.frame_paths = frame_paths[: self.max_frames] if frame_paths is not None else None

    def _raw_frames(self) -> Iterator[np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._raw_frames()
        try:
            for index, frame in enumerate(frames, start=1):
                yield resize_frame(frame, self.out_size)
                if self.max_frames is not None and index >= self.max_frames:
                    break  # stop before decoding a frame that is not wanted
        finally:
            frames.close()

    def first_frame(self) -> np.ndarray:
        """The first frame at ``out_size``."""
        frames = iter(self)
        try:
            return next(frames)
        except StopIteration:
            raise InputError(f"'{self.path}' has no frames") from None
        finally:
            frames.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path='{self.path}', fps={self.fps:g}, num_frames={self.num_frames}, "
            f"size={self.size}, out_size={self.out_size})"
        )


def _check_args(max_side, max_frames) -> None:
    check_max_side(max_side)
    if max_frames is not None and (
        isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1
    ):
        raise InputError(f"max_frames must be a positive integer or None, got {max_frames!r}")


# ------------------------------------------------------------------------- images


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB (grey, alpha and 16-bit handled)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _IMREAD) if data else None
    if img is None:
        raise InputError(f"'{name}' is not a readable image (accepted: {', '.join(IMAGE_EXTS)})")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _image_size(fp, name: str) -> tuple[int, int]:
    try:
        with Image.open(fp) as im:
            return im.size[1], im.size[0]
    except Exception as exc:
        raise InputError(
            f"'{name}' is not a readable image ({exc}); accepted: {', '.join(IMAGE_EXTS)}"
        ) from exc


def _pick_frames(names: list[str]) -> list[str]:
    """Image names that are frames. A DAVIS-like folder holds ``*.jpg`` frames next
    to ``*.png`` masks: when both kinds are present, only the JPEGs are frames."""
    images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_EXTS]
    jpegs = [n for n in images if PurePosixPath(n).suffix.lower() in (".jpg", ".jpeg")]
    return sorted(jpegs or images, key=natural_key)


def _check_same_size(sizes: Iterator[tuple[str, tuple[int, int]]], where: str) -> tuple[int, int]:
    first_name, first = next(sizes)
    for name, size in sizes:
        if size != first:
            raise InputError(
                f"frames in '{where}' have different sizes: '{name}' is {shape_str(size)} but "
                f"'{first_name}' is {shape_str(first)}; all frames of a video must have one size"
            )
    return first


def _checked(frame: np.ndarray, size: tuple[int, int], name: str, first: str) -> np.ndarray:
    if frame.shape[:2] != size:
        raise InputError(
            f"frame '{name}' is {shape_str(frame.shape)} but '{first}' is {shape_str(size)}; "
            "all frames of a video must have one size"
        )
    return frame


class FolderSource(VideoSource):
    """A folder of .jpg/.jpeg/.png frames, naturally sorted by name."""

    def _raw_frames(self) -> Iterator[np.ndarray]:
        paths = self.frame_paths or []
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read frame '{path}': {exc}") from exc
            yield _checked(decode_image(data, str(path)), self.size, str(path), str(paths[0]))


def _open_folder(folder: Path, max_side, max_frames) -> VideoSource:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    by_name = {p.name: p for p in files}
    paths = [by_name[n] for n in _pick_frames(list(by_name))]
    if not paths:
        hint = ""
        if (folder / "JPEGImages").is_dir():
            hint = " It looks like a DAVIS root: open JPEGImages/480p/<sequence> or use davis_sequence()."
        raise InputError(
            f"folder '{folder}' holds no frames; expected image files ({', '.join(IMAGE_EXTS)}).{hint}"
        )
    size = _check_same_size(((p.name, _image_size(p, str(p))) for p in paths), str(folder))
    return FolderSource(folder, DEFAULT_FPS, len(paths), size, max_side, max_frames, frame_paths=paths)


# --------------------------------------------------------------------------- zips


def _safe_member(name: str) -> bool:
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return False
    return ".." not in PurePosixPath(name).parts


class ZipSource(VideoSource):
    """A .zip of frames, read member by member (nothing extracted to disk)."""

    def __init__(self, *args, members: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.members = members[: self.max_frames]

    def _raw_frames(self) -> Iterator[np.ndarray]:
        with zipfile.ZipFile(self.path) as zf:
            for name in self.members:
                try:
                    data = zf.read(name)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise InputError(f"cannot read '{name}' from '{self.path}': {exc}") from exc
                yield _checked(decode_image(data, f"{self.path}:{name}"), self.size, name, self.members[0])


def _open_zip(path: Path, max_side, max_frames) -> VideoSource:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"'{path}' is not a valid zip file ({exc}); expected a .zip of frames") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise InputError(f"'{path}' has {len(infos)} members; at most {MAX_ZIP_MEMBERS} are accepted")
        for info in infos:
            if not _safe_member(info.filename):
                raise InputError(
                    f"'{path}' contains the unsafe member '{info.filename}' (absolute path or '..'); "
                    "zips must hold relative frame paths only"
                )
        files = {
            i.filename: i
            for i in infos
            if not i.is_dir()
            and not PurePosixPath(i.filename).name.startswith(".")
            and "__MACOSX" not in PurePosixPath(i.filename).parts
        }
        members = _pick_frames(list(files))
        if not members:
            raise InputError(f"'{path}' holds no frames; expected image files ({', '.join(IMAGE_EXTS)})")
        for name in members:
            if files[name].file_size > MAX_MEMBER_BYTES:
                raise InputError(f"'{path}': member '{name}' is larger than {MAX_MEMBER_BYTES >> 20} MB")

        def sizes():
            for name in members:
                with zf.open(name) as fp:
                    yield name, _image_size(fp, f"{path}:{name}")

        size = _check_same_size(sizes(), str(path))
    return ZipSource(path, DEFAULT_FPS, len(members), size, max_side, max_frames, members=members)


# -------------------------------------------------------------------------- video


def _av_open(path: Path):
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, EOFError):
            raise InputError(f"'{path}' ends before any video data (an empty or truncated video)") from exc
        raise InputError(f"'{path}' is not a readable video ({exc}); accepted: {accepted_inputs()}") from exc


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decoded frame -> RGB array, turned upright by the display-matrix rotation."""
    rotation = (round((frame.rotation or 0) / 90)) % 4
    if size is not None:  # size is (H, W) after rotation; reformat before rotating
        h, w = size if rotation % 2 == 0 else size[::-1]
        if (frame.height, frame.width) != (h, w):
            frame = frame.reformat(width=w, height=h)
    rgb = frame.to_ndarray(format="rgb24")
    return np.ascontiguousarray(np.rot90(rgb, rotation)) if rotation else rgb


class FileSource(VideoSource):
    """A video file decoded with PyAV."""

    def _raw_frames(self) -> Iterator[np.ndarray]:
        container = _av_open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index = 0
            try:
                for frame in container.decode(stream):
                    yield _to_rgb(frame, self.size)
                    index += 1
            except av.FFmpegError as exc:
                raise InputError(f"'{self.path}': decoding failed after {index} frames ({exc})") from exc
        finally:
            container.close()


def _open_file(path: Path, max_side, max_frames) -> VideoSource:
    container = _av_open(path)
    try:
        if not container.streams.video:
            raise InputError(
                f"'{path}' has no video stream (empty, truncated or audio-only); accepted: {accepted_inputs()}"
            )
        stream = container.streams.video[0]
        try:
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as exc:
            raise InputError(
                f"'{path}' could not be decoded ({exc}); it may be truncated or corrupt"
            ) from exc
        if first is None:
            raise InputError(f"'{path}' has no frames (an empty or truncated video)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else DEFAULT_FPS
        num = int(stream.frames) or None
        if num is None and stream.duration and stream.time_base:
            num = max(1, round(float(stream.duration * stream.time_base) * fps))
        elif num is None and container.duration:
            num = max(1, round(container.duration / av.time_base * fps))
        size = _to_rgb(first).shape[:2]
    finally:
        container.close()
    return FileSource(path, fps, num, size, max_side, max_frames)


# --------------------------------------------------------------------------- entry


def open_video(path: str | Path, max_side: int | None = None, max_frames: int | None = None) -> VideoSource:
    """Open a video file, a folder of frames (or DAVIS sequence folder) or a .zip of
    frames. Frames are decoded lazily; ``max_side`` caps the long side of the
    yielded frames, ``max_frames`` their number."""
    _check_args(max_side, max_frames)
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"'{path}' does not exist; expected {accepted_inputs()}")
    if path.is_dir():
        return _open_folder(path, max_side, max_frames)
    ext = path.suffix.lower()
    if ext in ZIP_EXTS:
        return _open_zip(path, max_side, max_frames)
    if ext in VIDEO_EXTS:
        return _open_file(path, max_side, max_frames)
    if ext in IMAGE_EXTS:
        raise InputError(f"'{path}' is a single image, not a video; give {accepted_inputs()}")
    raise InputError(
        f"'{path}' has an unsupported extension '{ext or '(none)'}'; accepted: {accepted_inputs()}"
    )


__all__ = ["VideoSource", "open_video", "decode_image"]
