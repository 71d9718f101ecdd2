"""``videosafety-r1 predict-harm``: the alarm heads' verdict on every row of a dataset file, as JSONL."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TextIO

from ..errors import InputError
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
    from videosafety_r1.data import load_dataset_checked

    root = Path(data_root) if data_root is not None else Path(data_file).parent
    records, _ = load_dataset_checked(data_file, root)
    out = Path(out_file)
    # found now, not after every row has been scored
    if out.is_dir():
        raise InputError(f"--out {out_file} is a folder; give a file path")
    if out.exists() and not out.is_file():  # a fifo, a device, /dev/stdout: replacing it would break it
        raise InputError(f"--out {out_file} exists and is not a regular file; give a file path")
    if out.exists() and out.resolve() == Path(data_file).resolve():
        raise InputError(f"--out {out_file} is the --data file; the predictions would replace the dataset")
    # The rows go to a temporary file beside --out, created now: an output that cannot be written stops the run
    # before inference, and a run that fails later leaves an earlier --out as it was (and no folder it made).
    folders = (out.parent, *out.parent.parents)
    blocker = next((p for p in folders if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(f"--out {out_file}: cannot write there ({blocker} is a file, not a folder)")
    made = [p for p in folders if not p.exists()]  # deepest first
    part = out.parent / f".{out.name}.{os.getpid()}.part"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        f = os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "w", encoding="utf-8")
    except OSError as err:
        _remove_empty(made)
        raise InputError(f"--out {out_file}: cannot write there ({err.strerror or err})") from err
    try:
        with f:
            calibrated, flagged = _predict_into(f, model_dir, records, root, fps, max_frames, threshold, batch_size)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        _remove_empty(made)
        raise
    logger.info("wrote %d predictions to %s", len(records), out)
    return (
        f"{len(records)} rows -> {out} ({'calibrated' if calibrated else 'uncalibrated'}; harmful at threshold "
        f"{threshold}: visual {flagged['visual']}, textual {flagged['textual']})"
    )


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run made for --out, deepest first, if they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _predict_into(
    f: TextIO, model_dir: str | os.PathLike[str], records: list, root: Path, fps: float | None,
    max_frames: int | None, threshold: float, batch_size: int,
) -> tuple[bool, dict[str, int]]:  # fmt: skip
    """Score ``records`` with the heads of ``model_dir`` and write one JSON line per row to ``f``; returns whether
    a calibration was applied and how many rows each head flags."""
    from videosafety_r1.alarm.io import load_pretrained

    try:
        model, processor = load_pretrained(model_dir)
    except (OSError, ValueError) as err:  # not a checkpoint folder: config, weights or processor missing
        detail = " ".join(str(err).split())[:300]
        raise InputError(f"--model {model_dir}: not a loadable checkpoint ({detail})") from err
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
    flagged = {"visual": 0, "textual": 0}
    for i, record in enumerate(records):
        row = {"id": record.id, "calibrated": calibration is not None}
        for head in ("visual", "textual"):
            p = float(probs[head][i])
            row[f"{head}_prob"], row[f"{head}_harmful"] = p, p >= threshold
            flagged[head] += p >= threshold
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return calibration is not None, flagged
