"""Batch inference with the alarm heads: ``predict_harm`` and the inputs it builds, through the input road.

Kept out of :mod:`videosafety_r1.alarm` so the alarm package does not import the data layer (the input road loads
media); ``videosafety_r1.predict_harm`` and ``videosafety_r1.alarm.predict_harm`` stay importable.
"""

from __future__ import annotations

from typing import Any

import torch

from .alarm.calibration import apply_calibration
from .alarm.tokens import AlarmConfig
from .inputs import build_prompt, processor_inputs, video_sampling
from .media import LoadedMedia, video_from_input

__all__ = ["build_alarm_inputs", "predict_harm"]


def build_alarm_inputs(
    processor: Any,
    videos: list[Any],
    texts: list[str],
    fps: float | None = None,
    max_frames: int | None = None,
    alarm_config: AlarmConfig | None = None,
) -> Any:
    """Left-padded processor inputs for a batch of (video or None, question) pairs, with alarm tokens placed and
    typed special tokens neutralised: the same prompts and frames as training and evaluation build.

    ``videos`` items are a path (decoded at ``fps``, at most ``max_frames``; default 1.0 and 90), a uint8 frame
    array ``[T, H, W, 3]`` taken as frames sampled at ``fps``, a ``(frames, metadata)`` pair, or None. These paths
    are the caller's own: they are not confined to a data root.
    """
    fps, max_frames = video_sampling(None, fps, max_frames)
    if len(videos) != len(texts):
        raise ValueError(
            f"videos and texts must have the same length (one video or None per text), got "
            f"{len(videos)} videos and {len(texts)} texts"
        )
    if not texts:
        raise ValueError("empty batch: pass at least one (video or None, text) pair")
    prompts = []
    for video, text in zip(videos, texts, strict=True):
        media = LoadedMedia() if video is None else LoadedMedia("video", *video_from_input(video, fps, max_frames))
        prompts.append(build_prompt(processor, text, media, alarm_config=alarm_config, fps=fps))
    return processor_inputs(processor, prompts, padding_side="left")


@torch.no_grad()
def predict_harm(
    model: Any,
    processor: Any,
    videos: list[Any],
    texts: list[str],
    fps: float | None = None,
    max_frames: int | None = None,
) -> dict[str, torch.Tensor]:
    """Harm probabilities from the two heads for a batch: ``{"visual": [B], "textual": [B]}``.

    ``videos`` items are as in :func:`build_alarm_inputs`. ``fps`` / ``max_frames`` default to the video sampling
    the checkpoint was trained with (recorded in ``alarm_config.json``), else 1.0 and 90. Where the checkpoint has a
    head calibration (``alarm_calibration.json``, :func:`~videosafety_r1.alarm.calibrate_alarm_heads`), the
    probabilities are Platt-scaled.
    """
    if not hasattr(model, "alarm_token_ids"):
        raise ValueError(
            "this model has no alarm tokens: call add_alarm_tokens first, or load a checkpoint that has them "
            "(an export keeps its heads under alarm/)"
        )
    if getattr(model, "visual_head", None) is None:
        raise ValueError("this model has no harm heads (AlarmConfig.use_heads=False)")
    fps, max_frames = video_sampling(model, fps, max_frames)
    inputs = build_alarm_inputs(processor, videos, texts, fps, max_frames, alarm_config=model.alarm_config)
    device = model.get_input_embeddings().weight.device
    out = model(**{k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()})
    logits = {"visual": out.visual_alarm_logits.float().cpu(), "textual": out.textual_alarm_logits.float().cpu()}
    return apply_calibration(logits, getattr(model, "alarm_calibration", None))  # Platt scaling when fitted
