"""Media of the input road: load a record's video or image from under its data root, pad frames to the model's
temporal patch with exact timing, and describe the frames to the processor.

Two rules hold for every caller (training, evaluation, inference, generators):

- **Paths from data rows stay under the data root.** A relative path resolves against the root; one that resolves
  outside it (``../../x``, an absolute path elsewhere, a symlink out) raises :class:`MediaPathError` naming the row
  and the path, at load time. Paths a caller hands to ``predict_harm`` directly are the caller's own.
- **Padding is exact.** Qwen-VL models read frames in temporal patches of 2. A clip that samples to an odd number of
  frames (1, 3, 5, ...) gets its last frame repeated up to the next multiple, and the padded frames are placed on
  the sampling clock: their timestamps continue the sampling interval. ``second_per_grid_ts`` is then
  ``temporal_patch_size x interval`` (2.0 s for frames 1 s apart, whatever the frame count), and Qwen3-VL never sees
  a single frame (``t:1 must be larger than temporal_factor:2``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers.video_utils import VideoMetadata

from .data.schema import Media
from .data.video import load_video
from .errors import InputError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


class MediaPathError(InputError):
    """A media path taken from a data row resolves outside the data root."""


@dataclass
class SampledVideoMetadata(VideoMetadata):
    """``VideoMetadata`` of the frames actually given to the processor, padded frames included.

    ``frame_times`` are the frames' times in seconds (decoded frames: their own; padded frames: continuing the
    sampling interval); ``interval`` is the sampling interval in seconds; ``num_padded`` counts the repeated last
    frames at the end; ``decoded_indices`` are the indices of the frames actually decoded. Processors read ``timestamps`` (VideoLLaMA3), ``frames_indices``/``fps`` (Qwen3-VL) and
    ``sampled_fps`` (Qwen2.5-VL's ``second_per_grid_ts = temporal_patch_size / sampled_fps``); all three agree.
    """

    frame_times: list[float] | None = None
    interval: float | None = None
    num_padded: int = 0
    decoded_indices: list[int] | None = None

    @property
    def timestamps(self) -> list[float]:
        return list(self.frame_times) if self.frame_times is not None else super().timestamps

    @property
    def sampled_fps(self) -> float:
        return 1.0 / self.interval if self.interval else super().sampled_fps


@dataclass
class LoadedMedia:
    """What one record shows, decoded: ``kind`` video (uint8 frames ``[T, H, W, 3]`` + metadata), image (RGB PIL
    image) or none."""

    kind: str = "none"
    data: Any = None
    metadata: SampledVideoMetadata | None = None


def _interval(times: list[float], fps: float | None, video_fps: float | None) -> float:
    """Seconds between sampled frames: their mean spacing; for a single frame the nominal sampling step."""
    if len(times) >= 2 and times[-1] > times[0]:
        return (times[-1] - times[0]) / (len(times) - 1)
    rates = [r for r in (fps, video_fps) if r]
    return 1.0 / min(rates) if rates else 1.0


def _clock(value: float) -> float | int:
    """A position on the clip's frame clock: an int when it is one (constant frame rate), else the float."""
    return round(value) if abs(value - round(value)) < 1e-6 else value


def pad_video(
    frames: np.ndarray, metadata: Any, multiple: int, fps: float | None = None
) -> tuple[np.ndarray, SampledVideoMetadata]:
    """Frames ``[T, H, W, 3]`` padded to a multiple of ``multiple`` by repeating the last frame, with metadata
    whose padded frames continue the sampling interval (see the module docstring). ``fps`` is the requested
    sampling rate (used for the interval of a single frame, and as the clock when ``metadata`` has no fps).

    The frame times are the metadata's ``timestamps`` (the decoded frames' own times where the decoder gives them,
    so variable-frame-rate clips stay exact), else ``index / fps``. ``frames_indices`` become ``time x fps``: the
    decoded indices on a constant-rate clip, and the position that gives the right time to processors that compute
    times from indices (Qwen3-VL) on a variable-rate one; ``decoded_indices`` keeps the frames actually decoded.
    """
    n = int(frames.shape[0])
    if metadata is None:
        metadata = VideoMetadata(total_num_frames=n, fps=fps, frames_indices=list(range(n)))
    video_fps = float(metadata.fps) if metadata.fps else float(fps or 1.0)
    decoded = list(metadata.frames_indices) if metadata.frames_indices is not None else list(range(n))
    try:
        times = [float(t) for t in metadata.timestamps] if metadata.fps else None
    except (TypeError, ValueError):
        times = None
    if times is None or len(times) != n:
        times = [i / video_fps for i in decoded]
    interval = _interval(times, fps, video_fps)
    pad = -n % max(1, multiple)
    if pad:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        times = times + [times[-1] + interval * (k + 1) for k in range(pad)]
    base = {f.name: getattr(metadata, f.name) for f in dataclasses.fields(VideoMetadata)}
    base.update(
        fps=video_fps,
        frames_indices=[_clock(t * video_fps) for t in times],
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
    )
    meta = SampledVideoMetadata(
        **base, frame_times=times, interval=interval, num_padded=pad, decoded_indices=decoded[:n]
    )
    return np.ascontiguousarray(frames, dtype=np.uint8), meta


def temporal_multiple(processor: Any) -> int:
    """Frames per temporal patch of the processor's video model (2 for Qwen2/2.5/3-VL, 1 for VideoLLaMA3)."""
    video_processor = getattr(processor, "video_processor", None)
    return int(getattr(video_processor, "temporal_patch_size", None) or 1)


def video_from_input(video: Any, fps: float, max_frames: int) -> tuple[np.ndarray, Any]:
    """A caller's video for inference: a path (decoded at ``fps``, at most ``max_frames``), a uint8 array
    ``[T, H, W, 3]`` taken as frames sampled at ``fps``, or a ``(frames, metadata)`` pair used as given."""
    if isinstance(video, (str, os.PathLike)):
        return load_video(video, fps=fps, max_frames=max_frames)
    if isinstance(video, tuple):
        return video
    frames = np.asarray(video)
    n = frames.shape[0]
    return frames, VideoMetadata(total_num_frames=n, fps=fps, frames_indices=list(range(n)), duration=n / fps)


@dataclass
class MediaLoader:
    """Loads a record's media from under the data root, sampled at ``fps`` (at most ``max_frames`` frames).

    ``data_root`` is a folder or several (relative paths resolve against the first; a record whose ``Media.root``
    is set resolves against that one); ``None`` means the current directory. Frames are returned unpadded: the
    input road pads them to the model's temporal patch (:func:`pad_video`).
    """

    data_root: PathLike | Sequence[PathLike] | None = None
    fps: float = 1.0
    max_frames: int = 90

    def roots(self) -> list[Path]:
        roots = self.data_root
        if roots is None or isinstance(roots, (str, os.PathLike)):
            roots = [roots if roots is not None else os.getcwd()]
        return [Path(r) for r in roots]

    def resolve(self, media: Media, row_id: Any = None) -> Path:
        """The file of ``media``; raises :class:`MediaPathError` when it lies outside the data root."""
        roots = [Path(media.root)] if getattr(media, "root", None) else self.roots()
        raw = Path(media.path or "")
        full = raw if raw.is_absolute() else roots[0] / raw
        resolved = full.resolve()
        if not any(resolved.is_relative_to(r.resolve()) for r in roots):
            where = f"row {row_id!r}: " if row_id is not None else ""
            raise MediaPathError(
                f"{where}media path {media.path!r} resolves to {resolved}, outside the data root "
                f"{', '.join(str(r) for r in roots)}; paths from data rows must stay under data_root"
            )
        return full

    def load(self, media: Media, row_id: Any = None) -> LoadedMedia:
        """Decode ``media`` (video frames + metadata, or an RGB image); text-only media gives kind ``none``."""
        if media.type == "video":
            frames, meta = load_video(self.resolve(media, row_id), self.fps, self.max_frames)
            return LoadedMedia("video", frames, meta)
        if media.type == "image":
            from PIL import Image

            with Image.open(self.resolve(media, row_id)) as img:
                return LoadedMedia("image", img.convert("RGB"))
        return LoadedMedia()


def with_data_root(records: list[Any], data_root: PathLike) -> list[Any]:
    """Copies of ``records`` whose media resolve against ``data_root`` (``Media.root``), so one loader serves sets
    with different roots, each path still checked against its own root."""
    root = str(data_root)
    return [
        dataclasses.replace(r, media=dataclasses.replace(r.media, root=root)) if r.media.path else r for r in records
    ]
