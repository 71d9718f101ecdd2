"""Video decoding: sample frames at a target fps, decode only those, return them with transformers metadata.

transformers 5.x decodes video *paths* only through torchcodec, so we decode here (decord, or PyAV where decord
has no wheel) and hand processors the frame arrays plus a ``VideoMetadata`` whose ``frames_indices`` and ``fps``
give the true timestamps::

    frames, meta = load_video(path, fps=1.0, max_frames=90)
    processor(text=..., videos=[frames], video_metadata=[meta], do_sample_frames=False)
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from transformers.video_utils import VideoMetadata

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


def _decode_decord(path: str, fps: float | None, max_frames: int | None) -> tuple[np.ndarray, int, float, list[int]]:
    decord = _decord()
    reader = decord.VideoReader(path, num_threads=1)
    total, video_fps = len(reader), float(reader.get_avg_fps())
    indices = sample_frame_indices(total, video_fps, fps, max_frames)
    if not indices:
        raise EmptyVideoError(f"{path}: video has no frames")
    frames = reader.get_batch(indices).asnumpy()
    return frames, total, video_fps, indices


def _stream_info(stream: Any) -> tuple[int, float]:
    video_fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
    total = int(stream.frames or 0)
    if total <= 0 and stream.duration is not None and stream.time_base is not None:
        total = int(round(float(stream.duration * stream.time_base) * video_fps))
    return total, video_fps


def _decode_pyav(path: str, fps: float | None, max_frames: int | None) -> tuple[np.ndarray, int, float, list[int]]:
    """Seek-aware: jump to the key frame before a wanted frame when one likely lies ahead, else decode forward."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise EmptyVideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total, video_fps = _stream_info(stream)
        indices = sample_frame_indices(total, video_fps, fps, max_frames)
        if not indices:
            raise EmptyVideoError(f"{path}: video has no frames")
        time_base = float(stream.time_base)
        start = stream.start_time or 0
        out: dict[int, np.ndarray] = {}
        position, frames = -1, None  # index of the last decoded frame, the running decode iterator
        last_key, gop = 0, max(1, int(video_fps))  # a seek only pays when a key frame lies between here and target
        for target in sorted(set(indices)):
            if frames is None or target - position > max(gop, position - last_key):
                container.seek(start + int(target / video_fps / time_base), stream=stream, backward=True)
                frames = container.decode(stream)
            for frame in frames:
                position = int(round((frame.pts - start) * time_base * video_fps))
                if frame.key_frame:
                    gop, last_key = max(gop, position - last_key), position
                if position >= target:
                    out[target] = frame.to_ndarray(format="rgb24")
                    break
            else:
                break
        missing = [i for i in indices if i not in out]
        if missing and out:  # container over-reported its frame count: repeat the last frame we have
            last = out[max(out)]
            out.update({i: last for i in missing})
        if not out:
            raise VideoDecodeError(f"{path}: no frame could be decoded")
    return np.stack([out[i] for i in indices]), total, video_fps, indices


def load_video(
    path: str | os.PathLike[str],
    fps: float | None = 1.0,
    max_frames: int | None = 90,
    backend: Backend = "auto",
    num_frames_multiple: int = 1,
) -> tuple[np.ndarray, VideoMetadata]:
    """Decode the frames sampled at ``fps`` (at most ``max_frames``) as uint8 ``[T, H, W, 3]`` plus metadata.

    The metadata is a ``transformers.video_utils.VideoMetadata`` (original ``fps``, ``total_num_frames``,
    ``duration``, ``frames_indices``, ``timestamps``), so processors place frames at their real times.
    ``num_frames_multiple`` (e.g. 2, a Qwen temporal patch) repeats the last frame up to a multiple.
    """
    from transformers.video_utils import VideoMetadata

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")
    name = resolve_backend(backend)
    try:
        decode = _decode_decord if name == "decord" else _decode_pyav
        frames, total, video_fps, indices = decode(path, fps, max_frames)
    except VideoDecodeError:
        raise
    except Exception as err:  # decord raises its own DECORDError, PyAV FFmpegError subclasses
        raise VideoDecodeError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from err
    if num_frames_multiple > 1 and len(indices) % num_frames_multiple:
        pad = num_frames_multiple - len(indices) % num_frames_multiple
        indices = indices + [indices[-1]] * pad
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    metadata = VideoMetadata(
        total_num_frames=total,
        fps=video_fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        duration=total / video_fps,
        video_backend=name,
        frames_indices=indices,
    )
    return np.ascontiguousarray(frames, dtype=np.uint8), metadata


def probe_video(path: str | os.PathLike[str], backend: Backend = "auto") -> int:
    """Cheap decodability check for validation: open, read the frame count, decode one frame; return the count.

    Raises :class:`VideoDecodeError` for a missing, corrupt or empty video.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: video file not found")
    if os.path.getsize(path) == 0:
        raise EmptyVideoError(f"{path}: file is empty")
    if resolve_backend(backend) == "decord":
        try:
            reader = _decord().VideoReader(path, num_threads=1)
            total = len(reader)
            if total > 0:
                reader[0].asnumpy()
        except Exception as err:  # let PyAV tell an empty container from a corrupt one
            _probe_pyav(path)
            raise VideoDecodeError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from err
    else:
        total = _probe_pyav(path)
    if total <= 0:
        raise EmptyVideoError(f"{path}: video has no frames")
    return total


def _probe_pyav(path: str) -> int:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise EmptyVideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            total = _stream_info(stream)[0]
            if total > 0:
                next(container.decode(stream)).to_ndarray(format="rgb24")
    except VideoDecodeError:
        raise
    except Exception as err:
        raise VideoDecodeError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from err
    return total


class MediaIssue(NamedTuple):
    """A media problem in the shape of ``importers.RowIssue`` (field, kind, message)."""

    field: str
    kind: str
    message: str


class MediaChecker:
    """Checks media paths once per file (rows share videos): inside the root, present, decodable."""

    def __init__(self, data_root: Path, check_videos: bool):
        self.root, self.check_videos, self.cache = data_root.resolve(), check_videos, {}

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
                probe_video(full)
            else:
                from PIL import Image

                with Image.open(full) as image:
                    image.verify()
        except EmptyVideoError:
            return [MediaIssue("media.path", "video_empty", f"video {path!r} has no frames")]
        except VideoDecodeError as err:
            return [MediaIssue("media.path", "video_undecodable", str(err))]
        except Exception as err:
            return [MediaIssue("media.path", "image_undecodable", f"image {path!r}: {err}")]
        return []
