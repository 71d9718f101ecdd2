"""Platt scaling of the two harm heads, so their probabilities stay probabilities after later stages.

The heads are trained in ATC and then frozen, while the LLM underneath keeps training (CoT cold start, GRPO): the
ranking of the logits survives, their scale does not (ECE 0.48 measured on the old demo after GRPO). A per-head
``p = sigmoid(logit / temperature + bias)`` fitted on a labelled calibration split restores it. The fit uses Platt's
smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, which keeps the temperature finite on separable data.
It is saved as ``alarm_calibration.json`` next to the alarm weights and applied by ``predict_harm``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "alarm_calibration.json"
HEADS = ("visual", "textual")
Calibration = dict[str, dict[str, float]]

__all__ = [
    "CALIBRATION_FILE",
    "apply_calibration",
    "calibrate_alarm_heads",
    "fit_platt",
    "harm_logits",
    "load_calibration",
    "save_calibration",
]


def fit_platt(logits: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict[str, float]:
    """``{"temperature", "bias"}`` minimising the log loss of ``sigmoid(logit / temperature + bias)`` against
    Platt's smoothed targets. Raises ValueError unless both classes are present."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)).reshape(-1)  # [N]
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64)).reshape(-1)  # [N]
    if z.shape != y.shape:
        raise ValueError(f"logits and labels differ in length: {z.numel()} vs {y.numel()}")
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"calibration needs harmful and safe rows, got {n_pos} harmful and {n_neg} safe")
    target = torch.where(y > 0.5, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))  # [N]
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # [log(1 / temperature), bias]
    optimizer = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z * params[0].exp() + params[1], target)
        loss.backward()
        return loss

    optimizer.step(closure)
    slope, bias = params.detach().tolist()
    return {"temperature": float(np.exp(-slope)), "bias": float(bias)}


def apply_calibration(
    logits: Mapping[str, torch.Tensor | np.ndarray], calibration: Mapping[str, Mapping[str, float]] | None
) -> dict[str, torch.Tensor]:
    """``{head: P(harmful)}`` from ``{head: logits [B]}``; a head without calibration gets the plain sigmoid."""
    out = {}
    for head, value in logits.items():
        z = torch.as_tensor(value, dtype=torch.float32)  # [B]
        params = (calibration or {}).get(head)
        if params is not None:
            z = z / float(params["temperature"]) + float(params["bias"])
        out[head] = torch.sigmoid(z)
    return out


def _query(record: Any) -> str:
    for name in ("query", "problem"):
        if isinstance(getattr(record, name, None), str):
            return getattr(record, name)
    return record.query  # SFTRecord: the first user turn


def _labels(record: Any) -> tuple[int, int]:
    labels = getattr(record, "labels", None) or getattr(record, "safety_labels", None)
    if labels is None:
        raise ValueError(f"record {getattr(record, 'id', '?')!r} has no harm labels to calibrate on")
    return int(labels.visual), int(labels.textual)


@torch.no_grad()
def harm_logits(
    model: Any,
    processor: Any,
    videos: list[Any],
    texts: list[str],
    fps: float | None = None,
    max_frames: int | None = None,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Raw head logits ``{"visual": [N], "textual": [N]}`` for (video or None, question) pairs, in batches of one
    modality each, built by the input road as ``predict_harm`` builds them (before any calibration). ``fps`` /
    ``max_frames`` default to the checkpoint's recorded training sampling."""
    from videosafety_r1.inference import build_alarm_inputs
    from videosafety_r1.inputs import video_sampling

    if getattr(model, "visual_head", None) is None:
        raise ValueError("this model has no harm heads (AlarmConfig.use_heads=False)")
    fps, max_frames = video_sampling(model, fps, max_frames)
    device = model.get_input_embeddings().weight.device
    out = {head: np.zeros(len(texts)) for head in HEADS}
    order = sorted(range(len(texts)), key=lambda i: videos[i] is None)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [[i for i in b if videos[i] is None] for b in batches] + [
        [i for i in b if videos[i] is not None] for b in batches
    ]
    tokenizer = processor.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for batch in (b for b in batches if b):
            inputs = build_alarm_inputs(
                processor,
                [videos[i] for i in batch],
                [texts[i] for i in batch],
                fps,
                max_frames,
                alarm_config=model.alarm_config,
            )
            result = model(**{k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}, logits_to_keep=1)
            out["visual"][batch] = result.visual_alarm_logits.float().cpu().numpy()  # [b]
            out["textual"][batch] = result.textual_alarm_logits.float().cpu().numpy()  # [b]
    finally:
        tokenizer.padding_side = side
    return out


def record_inputs(records: Sequence[Any], data_root: str | os.PathLike[str] | None = None) -> tuple[list, list]:
    """(videos, texts) of records: media paths resolved against ``data_root`` and confined to it (a path from a data
    row that escapes it raises ``MediaPathError``); text-only rows give None."""
    from videosafety_r1.media import MediaLoader

    loader = MediaLoader(data_root)
    videos = [loader.resolve(r.media, r.id) if r.media.type == "video" else None for r in records]
    return videos, [_query(r) for r in records]


def calibrate_alarm_heads(
    model: Any,
    processor: Any,
    records: Sequence[Any],
    *,
    data_root: str | os.PathLike[str] | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    batch_size: int = 16,
) -> Calibration:
    """Fit per-head Platt scaling on labelled rows of a calibration split (never the evaluation rows).

    ``records`` are eval, SFT or GRPO records with labels; video paths resolve against ``data_root``. Returns
    ``{"visual": {"temperature", "bias"}, "textual": {...}}`` (save it with :func:`save_calibration`).
    """
    videos, texts = record_inputs(records, data_root)
    labels = np.array([_labels(r) for r in records])  # [N, 2]
    logits = harm_logits(model, processor, videos, texts, fps, max_frames, batch_size)
    calibration = {head: fit_platt(logits[head], labels[:, k]) for k, head in enumerate(HEADS)}
    logger.info("alarm head calibration on %d rows: %s", len(records), calibration)
    return calibration


def save_calibration(directory: str | os.PathLike[str], calibration: Mapping[str, Mapping[str, float]]) -> Path:
    """Write ``alarm_calibration.json`` next to the alarm weights: in a checkpoint folder, or in an export's
    ``alarm/`` subfolder (an export's top level holds only model files)."""
    for head in HEADS:
        params = calibration.get(head) or {}
        if set(params) != {"temperature", "bias"} or not float(params["temperature"]) > 0:
            raise ValueError(f"calibration of the {head} head needs a positive temperature and a bias, got {params}")
    folder = Path(directory)
    if (folder / "alarm" / "alarm_config.json").is_file() and not (folder / "alarm_config.json").is_file():
        folder = folder / "alarm"  # a plain export
    path = folder / CALIBRATION_FILE
    path.write_text(json.dumps({h: dict(calibration[h]) for h in HEADS}, indent=2, sort_keys=True) + "\n")
    return path


def load_calibration(directory: str | os.PathLike[str]) -> Calibration | None:
    """The calibration saved in a checkpoint or export folder, or None when it has none."""
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {
        head: {"temperature": float(data[head]["temperature"]), "bias": float(data[head]["bias"])} for head in HEADS
    }
