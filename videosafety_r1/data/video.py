"""Video decoding: sample frames at a target fps, decode only those, return them with transformers metadata.

transformers 5.x decodes video *paths* only through torchcodec, so we decode here (decord, or PyAV where decord
has no wheel) and hand processors the frame arrays plus a ``VideoMetadata``::

    frames, meta = load_video(path, fps=1.0, max_frames=90)
    processor(text=..., videos=[frames], video_metadata=[meta], do_sample_frames=False)

Every frame returned was decoded from the file (a cut or damaged clip is an error, never padded with copies), and
``meta.timestamps`` are the frames' real presentation times, so variable-frame-rate clips are placed correctly.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)
Backend = Literal["auto", "decord", "pyav"]


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded; the message names the file."""


class EmptyVideoError(VideoDecodeError):
    """The video opened but holds no frames."""


def _decord():
    try:
        import decord
    except ImportError:
        return None
    return decord


def resolve_backend(backend: Backend = "auto") -> str:
    """``auto`` picks decord when it imports (fast seeking), else PyAV."""
    if backend == "auto":
        return "decord" if _decord() is not None else "pyav"
    if backend not in ("decord", "pyav"):
        raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
    if backend == "decord" and _decord() is None:
        raise ImportError("backend='decord' but decord is not installed; use backend='pyav'")
    return backend


def sample_frame_indices(
    total_frames: int, video_fps: float, fps: float | None = 1.0, max_frames: int | None = 90
) -> list[int]:
    """Indices of the frames to decode: one every ``1/fps`` seconds, uniformly thinned to at most ``max_frames``.

    ``fps=None`` takes every frame (before the cap). At least one frame is always returned.
    """
    if total_frames <= 0:
        return []
    if fps is None or fps >= video_fps:
        indices = np.arange(total_frames)
    else:
        count = max(1, math.floor(total_frames / video_fps * fps))
        indices = np.minimum(np.round(np.arange(count) * video_fps / fps), total_frames - 1).astype(int)
    if max_frames is not None and len(indices) > max_frames:
        keep = np.round(np.linspace(0, len(indices) - 1, max_frames)).astype(int)
        indices = indices[keep]
    return [int(i) for i in indices]


@cache
def timed_metadata_class() -> type:
    """``VideoMetadata`` whose ``timestamps`` are the decoded frames' own presentation times (seconds from the
    first frame) instead of ``index / fps``: the two differ on a variable-frame-rate clip. Built on first use, so
    importing this module does not import transformers."""
    from transformers.video_utils import VideoMetadata

    @dataclass
    class TimedVideoMetadata(VideoMetadata):
        frame_timestamps: list[float] | None = None

        @property
        def timestamps(self) -> list[float]:
            if self.frame_timestamps is None:
                return super().timestamps
            return list(self.frame_timestamps)

    return TimedVideoMetadata


class _Decoded(NamedTuple):
    frames: np.ndarray  # [T, H, W, 3] uint8
    total: int  # frames in the clip
    fps: float  # average frame rate
    indices: list[int]  # [T] sampled frame indices
    timestamps: list[float]  # [T] their presentation times, seconds from the first frame


def _sample(times: np.ndarray, video_fps: float, fps: float | None, max_frames: int | None) -> list[int]:
    """Sampled indices on the real time line: the frames nearest to the times ``sample_frame_indices`` aims at.

    On a constant-rate clip this is ``sample_frame_indices`` exactly; on a variable-rate clip each target time
    ``i / video_fps`` gets the frame shown nearest to it, and a frame is never taken twice.
    """
    wanted = sample_frame_indices(len(times), video_fps, fps, max_frames)
    if fps is None or fps >= video_fps or len(times) < 2:
        return wanted  # every frame (thinned by index): no time targets to match
    targets = np.asarray(wanted, dtype=float) / video_fps  # seconds from the first frame
    right = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)  # [T] first frame at or after the target
    left = right - 1
    nearest = np.where(targets - times[left] <= times[right] - targets, left, right)
    return sorted({int(i) for i in nearest})


def _decode_decord(path: str, fps: float | None, max_frames: int | None) -> _Decoded:
    decord = _decord()
    reader = decord.VideoReader(path, num_threads=1)
    total, video_fps = len(reader), float(reader.get_avg_fps())
    if total <= 0:
        raise EmptyVideoError(f"{path}: video has no frames")
    stamps = np.asarray(reader.get_frame_timestamp(list(range(total))), dtype=float)[:, 0]  # [total] start times
    times = stamps - stamps[0]
    indices = _sample(times, video_fps, fps, max_frames)
    frames = reader.get_batch(indices).asnumpy()
    if frames.shape[0] != len(indices):
        raise VideoDecodeError(f"{path}: decoded {frames.shape[0]} of the {len(indices)} frames asked for")
    return _Decoded(frames, total, video_fps, indices, [float(times[i]) for i in indices])


def _demux_index(container: Any, stream: Any, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Presentation timestamps of every frame (ticks, sorted), which of them are key frames, read from the packets
    without decoding. A container that declares more frames than it holds (a cut file) is a decode error."""
    packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None and p.size > 0]
    if not packets:
        raise EmptyVideoError(f"{path}: video has no frames")
    packets.sort()
    pts = np.array([p for p, _ in packets], dtype=np.int64)  # [N]
    keys = pts[[k for _, k in packets]]
    declared = int(stream.frames or 0)
    if declared > len(pts):
        raise VideoDecodeError(
            f"{path}: truncated or damaged: the container declares {declared} frames but holds {len(pts)}"
        )
    return pts, keys, (pts - pts[0]) * float(stream.time_base)


def _decode_pyav(path: str, fps: float | None, max_frames: int | None) -> _Decoded:
    """Index the packets (exact frame count and times, any container), then decode only what sampling needs:
    seek when a key frame lies between the last decoded frame and the next wanted one, else decode forward."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise EmptyVideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        pts, keys, times = _demux_index(container, stream, path)
        total = len(pts)
        duration = float(times[-1]) + (float(times[-1]) / (total - 1) if total > 1 else 0.0)
        video_fps = float(stream.average_rate or 0) or (total / duration if duration > 0 else 0.0) or 24.0
        indices = _sample(times, video_fps, fps, max_frames)
        index_of = {int(p): i for i, p in enumerate(pts)}
        wanted, out = set(indices), {}
        decoded, position = None, -1  # the running decode iterator, pts of the last decoded frame
        for target in indices:
            if target in out:
                continue
            goal = int(pts[target])
            if decoded is None or np.any((keys > position) & (keys <= goal)):
                container.seek(goal, stream=stream, backward=True)
                decoded = container.decode(stream)
            for frame in decoded:
                position = frame.pts if frame.pts is not None else position
                index = index_of.get(position)
                if index in wanted:
                    out[index] = frame.to_ndarray(format="rgb24")
                if position >= goal:
                    break
        missing = [i for i in indices if i not in out]
        if missing:
            raise VideoDecodeError(
                f"{path}: {len(missing)} of the {len(indices)} sampled frames could not be decoded (damaged file)"
            )
    return _Decoded(np.stack([out[i] for i in indices]), total, video_fps, indices, [float(times[i]) for i in indices])


def _decode(path: str, name: str, fps: float | None, max_frames: int | None) -> _Decoded:
    try:
        decode = _decode_decord if name == "decord" else _decode_pyav
        return decode(path, fps, max_frames)
    except VideoDecodeError:
        raise
    except Exception as err:  # decord raises its own DECORDError, PyAV FFmpegError subclasses
        raise VideoDecodeError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from err


def load_video(
    path: str | os.PathLike[str],
    fps: float | None = 1.0,
    max_frames: int | None = 90,
    backend: Backend = "auto",
    num_frames_multiple: int = 1,
) -> tuple[np.ndarray, Any]:
    """Decode the frames sampled at ``fps`` (at most ``max_frames``) as uint8 ``[T, H, W, 3]`` plus metadata.

    The metadata is a ``transformers.video_utils.VideoMetadata`` (original ``fps``, ``total_num_frames``,
    ``duration``, ``frames_indices``) whose ``timestamps`` are the frames' real presentation times in seconds.
    Every frame returned was decoded: a clip that cannot give the frames asked for (cut, damaged) raises
    :class:`VideoDecodeError` naming the file. ``backend="auto"`` tries decord, then PyAV when decord cannot read
    the clip. ``num_frames_multiple`` (e.g. 2, a Qwen temporal patch) then repeats the last frame up to a multiple;
    the padded entries repeat the last index and timestamp.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")
    name = resolve_backend(backend)
    try:
        result = _decode(path, name, fps, max_frames)
    except VideoDecodeError as err:
        if backend != "auto" or name != "decord" or isinstance(err, EmptyVideoError):
            raise
        logger.info("decord cannot read %s (%s); falling back to PyAV", path, err)
        try:
            result, name = _decode(path, "pyav", fps, max_frames), "pyav"
        except VideoDecodeError as second:
            raise type(second)(f"{second} (decord: {err})") from second
    frames, indices, stamps = result.frames, result.indices, result.timestamps
    if num_frames_multiple > 1 and len(indices) % num_frames_multiple:
        pad = num_frames_multiple - len(indices) % num_frames_multiple
        indices, stamps = indices + [indices[-1]] * pad, stamps + [stamps[-1]] * pad
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    metadata = timed_metadata_class()(
        total_num_frames=result.total,
        fps=result.fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        duration=result.total / result.fps,
        video_backend=name,
        frames_indices=indices,
        frame_timestamps=stamps,
    )
    return np.ascontiguousarray(frames, dtype=np.uint8), metadata


def probe_video(path: str | os.PathLike[str], backend: Backend = "auto") -> int:
    """Cheap check: open, read the frame count, decode one frame; return the count. Validation does more: it
    decodes every sampled frame with :func:`load_video`, as training will.

    Raises :class:`VideoDecodeError` for a missing, corrupt or empty video.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")
    if os.path.getsize(path) == 0:
        raise EmptyVideoError(f"{path}: file is empty")
    _, meta = load_video(path, fps=None, max_frames=1, backend=backend)
    return int(meta.total_num_frames)


class MediaIssue(NamedTuple):
    """A media problem in the shape of ``importers.RowIssue`` (field, kind, message)."""

    field: str
    kind: str
    message: str


class MediaChecker:
    """Checks media paths once per file (rows share videos): inside the root, present, and readable the way
    training reads them: every sampled frame of a video is decoded with the training settings (``fps``,
    ``max_frames``, ``backend``), so a clip validation accepts also loads in training."""

    def __init__(
        self,
        data_root: Path,
        check_videos: bool,
        fps: float | None = 1.0,
        max_frames: int | None = 90,
        backend: Backend = "auto",
    ):
        self.root, self.check_videos, self.cache = data_root.resolve(), check_videos, {}
        self.fps, self.max_frames, self.backend = fps, max_frames, backend

    def __call__(self, media_type: str, path: str) -> list[MediaIssue]:
        key = (media_type, path)
        if key not in self.cache:
            self.cache[key] = self._check(media_type, path)
        return self.cache[key]

    def _check(self, media_type: str, path: str) -> list[MediaIssue]:
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root):
            return [MediaIssue("media.path", "path_escape", f"{path!r} resolves outside the data root {self.root}")]
        if not full.is_file():
            return [MediaIssue("media.path", "media_missing", f"{media_type} {path!r} not found under {self.root}")]
        if not self.check_videos:
            return []
        try:
            if media_type == "video":
                if full.stat().st_size == 0:
                    raise EmptyVideoError(f"{full}: file is empty")
                load_video(full, fps=self.fps, max_frames=self.max_frames, backend=self.backend)
            else:
                from PIL import Image

                with Image.open(full) as image:
                    image.convert("RGB")  # decodes the pixels, as the collator does
        except EmptyVideoError:
            return [MediaIssue("media.path", "video_empty", f"video {path!r} has no frames")]
        except VideoDecodeError as err:
            return [MediaIssue("media.path", "video_undecodable", str(err))]
        except Exception as err:
            return [MediaIssue("media.path", "image_undecodable", f"image {path!r}: {err}")]
        return []
