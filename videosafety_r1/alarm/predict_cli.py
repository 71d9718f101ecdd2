"""``videosafety-r1 predict-harm``: the alarm heads' verdict on every row of a dataset file, as JSONL."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .calibration import apply_calibration, harm_logits, record_inputs

logger = logging.getLogger(__name__)


def predict_harm_file(
    model_dir: str | os.PathLike[str],
    data_file: str | os.PathLike[str],
    out_file: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    threshold: float = 0.5,
    batch_size: int = 16,
) -> str:
    """Write one line per row: ``id``, ``visual_prob``, ``textual_prob`` (Platt-scaled when the checkpoint has an
    ``alarm_calibration.json``), ``visual_harmful``/``textual_harmful`` (prob >= threshold) and ``calibrated``.

    Rows are validated first (any problem raises, naming file, line and field). Returns a one-line summary.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold is a probability in [0, 1], got {threshold}")
    from videosafety_r1.alarm.io import load_pretrained
    from videosafety_r1.data import load_dataset_checked
    from videosafety_r1.errors import InputError

    root = Path(data_root) if data_root is not None else Path(data_file).parent
    records, _ = load_dataset_checked(data_file, root)
    if Path(out_file).is_dir():  # found now, not after every row has been scored
        raise InputError(f"--out {out_file} is a folder; give a file path")
    model, processor = load_pretrained(model_dir)
    if getattr(model, "visual_head", None) is None:  # a plain model, or alarm tokens without heads
        raise InputError(
            f"{model_dir}: this model has no harm heads (an alarm checkpoint from stage atc or later has)"
        )
    model.eval()
    calibration = getattr(model, "alarm_calibration", None)
    logits = harm_logits(
        model, processor, *record_inputs(records, root), fps=fps, max_frames=max_frames, batch_size=batch_size
    )
    probs = apply_calibration(logits, calibration)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    flagged = {"visual": 0, "textual": 0}
    with out.open("w", encoding="utf-8") as f:
        for i, record in enumerate(records):
            row = {"id": record.id, "calibrated": calibration is not None}
            for head in ("visual", "textual"):
                p = float(probs[head][i])
                row[f"{head}_prob"], row[f"{head}_harmful"] = p, p >= threshold
                flagged[head] += p >= threshold
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    logger.info("wrote %d predictions to %s", len(records), out)
    return (
        f"{len(records)} rows -> {out} ({'calibrated' if calibration else 'uncalibrated'}; harmful at threshold "
        f"{threshold}: visual {flagged['visual']}, textual {flagged['textual']})"
    )
