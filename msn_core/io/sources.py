"""Reading frames lazily from a video file, a folder of images or a zip of images."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import av
import numpy as np

from msn_core.errors import InputError
from msn_core.io._common import (
    IMAGE_EXTS,
    MAX_ZIP_MEMBERS,
    VIDEO_EXTS,
    ZIP_EXTS,
    accepted_inputs,
    check_input_path,
)
from msn_core.io.images import check_same_size, checked_frame, decode_image, image_size, pick_frames
from msn_core.io.resize import check_max_side, fit_size, resize_frame
from msn_core.io.zipmember import read_member, safe_member
from msn_core.limits import Limits, env_name, resolve

DEFAULT_FPS = 24.0
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # one image inside a zip (guards against zip bombs)
HEADER_BYTES = 256 * 1024  # read of a zipped frame to find its size from its header
# FFmpeg demuxers a video may use (a playlist, concat list or image named .mp4 is refused
# before FFmpeg follows it) and the only protocol it may open: the local file itself.
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,gif,mpegts,flv,ogg,mpeg,asf"
_AV_OPTIONS = {"format_whitelist": DEMUXERS, "protocol_whitelist": "file"}


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
        limits: Limits | None = None,
    ) -> None:
        _check_args(max_side, max_frames)
        self.limits = resolve(limits)
        self.limits.check_frame_request(max_frames)
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
        # without max_frames, a video longer than limits.max_frames is refused (not cut silently)
        self.frame_cap = self.limits.max_frames if self.max_frames is None else None

    def _raw_frames(self) -> Iterator[np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._raw_frames()
        try:
            for index, frame in enumerate(frames, start=1):
                if self.frame_cap is not None and index > self.frame_cap:
                    self.limits.check_frame_count(index, f"'{self.path}'", exact=False)
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


class FolderSource(VideoSource):
    """A folder of .jpg/.jpeg/.png frames, naturally sorted by name."""

    def _raw_frames(self) -> Iterator[np.ndarray]:
        paths = self.frame_paths or []
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read frame '{path}': {exc}") from exc
            yield checked_frame(decode_image(data, str(path)), self.size, str(path), str(paths[0]))


def _open_folder(folder: Path, max_side, max_frames, limits: Limits) -> VideoSource:
    try:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError as exc:
        raise InputError(f"cannot list the folder '{folder}' ({exc}); expected a folder of frames") from exc
    by_name = {p.name: p for p in files}
    paths = [by_name[n] for n in pick_frames(list(by_name))]
    if not paths:
        hint = ""
        if (folder / "JPEGImages").is_dir():
            hint = " It looks like a DAVIS root: open JPEGImages/480p/<sequence> or use davis_sequence()."
        raise InputError(
            f"folder '{folder}' holds no frames; expected image files ({', '.join(IMAGE_EXTS)}).{hint}"
        )
    if max_frames is None:
        limits.check_frame_count(len(paths), f"folder '{folder}'")
    checked = paths[:max_frames]
    size = check_same_size(((p.name, image_size(p, str(p), limits)) for p in checked), str(folder))
    return FolderSource(
        folder, DEFAULT_FPS, len(paths), size, max_side, max_frames, frame_paths=paths, limits=limits
    )


# --------------------------------------------------------------------------- zips


class ZipSource(VideoSource):
    """A .zip of frames, read member by member (nothing extracted to disk)."""

    def __init__(self, *args, members: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.members = members[: self.max_frames]

    def _raw_frames(self) -> Iterator[np.ndarray]:
        with zipfile.ZipFile(self.path) as zf:
            for name in self.members:
                data = read_member(zf, zf.getinfo(name), f"'{self.path}', member '{name}'")
                yield checked_frame(decode_image(data, f"{self.path}:{name}"), self.size, name, self.members[0])


def _open_zip(path: Path, max_side, max_frames, limits: Limits) -> VideoSource:
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # BadZipFile, OSError, and ValueError/EOFError for mangled headers
        raise InputError(f"'{path}' is not a valid zip file ({exc}); expected a .zip of frames") from exc
    with zf:
        infos = zf.infolist()
        cap = min(limits.max_zip_members, MAX_ZIP_MEMBERS)
        if len(infos) > cap:
            raise InputError(
                f"'{path}' has {len(infos)} members; at most {cap} are accepted ({env_name('max_zip_members')})"
            )
        for info in infos:
            if not safe_member(info.filename):
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
        members = pick_frames(list(files))
        if not members:
            raise InputError(f"'{path}' holds no frames; expected image files ({', '.join(IMAGE_EXTS)})")
        if max_frames is None:
            limits.check_frame_count(len(members), f"'{path}'")
        used = members[:max_frames]
        for name in used:
            if files[name].file_size > MAX_MEMBER_BYTES:
                raise InputError(f"'{path}': member '{name}' is larger than {MAX_MEMBER_BYTES >> 20} MB")
        total = sum(files[name].file_size for name in used)
        if total > limits.max_zip_bytes:
            raise InputError(
                f"'{path}': its frames take {total / 2**20:.0f} MB uncompressed; at most "
                f"{limits.max_zip_bytes / 2**20:.0f} MB are accepted ({env_name('max_zip_bytes')})"
            )

        def sizes():
            for name in used:
                info, where = files[name], f"'{path}', member '{name}'"
                head = read_member(zf, info, where, prefix=HEADER_BYTES)
                try:
                    yield name, image_size(io.BytesIO(head), f"{path}:{name}", limits)
                except InputError:
                    if len(head) >= info.file_size:
                        raise
                    yield (
                        name,
                        image_size(io.BytesIO(read_member(zf, info, where)), f"{path}:{name}", limits),
                    )

        size = check_same_size(sizes(), str(path))
    return ZipSource(
        path, DEFAULT_FPS, len(members), size, max_side, max_frames, members=members, limits=limits
    )


# -------------------------------------------------------------------------- video


def _av_open(path: Path):
    try:
        return av.open(str(path), mode="r", options=dict(_AV_OPTIONS))
    except av.ArgumentError as exc:  # FFmpeg's answer to a demuxer that is not on the whitelist
        raise InputError(
            f"'{path}' is not a video in an accepted container (MP4/MOV, Matroska/WebM, AVI, GIF, MPEG-TS, "
            f"FLV, Ogg, MPEG-PS, ASF); accepted: {accepted_inputs()}"
        ) from exc
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

    header_frames: int | None = None  # the frame count the container states, when it does

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
            except (av.FFmpegError, ValueError) as exc:
                raise InputError(f"'{self.path}': decoding failed after {index} frames ({exc})") from exc
        finally:
            container.close()
        stated = self.header_frames
        if stated and index < stated - max(2, stated // 50):  # FFmpeg stops quietly at a cut-off end
            raise InputError(
                f"'{self.path}' ended after {index} of the {stated} frames its header lists; the file is "
                "truncated or corrupt (download or export it again)"
            )


def _open_file(path: Path, max_side, max_frames, limits: Limits) -> VideoSource:
    container = _av_open(path)
    try:
        if not container.streams.video:
            raise InputError(
                f"'{path}' has no video stream (empty, truncated or audio-only); accepted: {accepted_inputs()}"
            )
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None:
            raise InputError(f"'{path}' has a video stream FFmpeg cannot decode (no codec); it may be truncated")
        if ctx.width and ctx.height:  # from the header: checked before decoding
            limits.check_pixels((ctx.height, ctx.width), f"video '{path}'")
        if max_frames is None and stream.frames:  # an exact count from the container
            limits.check_frame_count(int(stream.frames), f"'{path}'")
        try:
            first = next(iter(container.decode(stream)), None)
        except (av.FFmpegError, ValueError) as exc:
            raise InputError(
                f"'{path}' could not be decoded ({exc}); it may be truncated or corrupt"
            ) from exc
        if first is None:
            raise InputError(f"'{path}' has no frames (an empty or truncated video)")
        limits.check_pixels((first.height, first.width), f"video '{path}'")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else DEFAULT_FPS
        exact = num = int(stream.frames) or None
        if num is None and stream.duration and stream.time_base:
            num = max(1, round(float(stream.duration * stream.time_base) * fps))
        elif num is None and container.duration:
            num = max(1, round(container.duration / av.time_base * fps))
        size = _to_rgb(first).shape[:2]
    finally:
        container.close()
    source = FileSource(path, fps, num, size, max_side, max_frames, limits=limits)
    source.header_frames = exact
    return source


# --------------------------------------------------------------------------- entry


def open_video(
    path: str | Path,
    max_side: int | None = None,
    max_frames: int | None = None,
    *,
    limits: Limits | None = None,
) -> VideoSource:
    """Open a video file, a folder of frames (or DAVIS sequence folder) or a .zip of
    frames. Frames are decoded lazily; ``max_side`` caps the long side of the
    yielded frames, ``max_frames`` their number. ``limits`` (default: from the
    environment, see :mod:`msn_core.limits`) caps pixels per frame, zip members and
    bytes, and the frames of a video read without ``max_frames``."""
    _check_args(max_side, max_frames)
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"video must be a path (str or Path), got {type(path).__name__}")
    limits = resolve(limits)
    limits.check_frame_request(max_frames)
    path = Path(path).expanduser()
    if check_input_path(path, "video", accepted_inputs(), folder_ok=True) == "dir":
        return _open_folder(path, max_side, max_frames, limits)
    ext = path.suffix.lower()
    if ext in ZIP_EXTS:
        return _open_zip(path, max_side, max_frames, limits)
    if ext in VIDEO_EXTS:
        return _open_file(path, max_side, max_frames, limits)
    if ext in IMAGE_EXTS:
        raise InputError(f"'{path}' is a single image, not a video; give {accepted_inputs()}")
    raise InputError(
        f"'{path}' has an unsupported extension '{ext or '(none)'}'; accepted: {accepted_inputs()}"
    )


__all__ = ["VideoSource", "open_video"]
