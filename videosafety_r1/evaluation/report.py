"""What an evaluation leaves on disk: ``results.json``, ``samples.jsonl``, CSV tables, and console tables.

``samples.jsonl`` is written one line per finished item and flushed at once, so a killed run loses at most the item
in flight. An item is *done* once generated and judged; an item whose judge call failed is generated but *pending
for the judge*: the next run judges it again (``rejudge_samples``) without generating it again, and appends the new
line (the last line of an id wins). ``results.json`` holds NaN as null (strict JSON).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .parsing import extract_tags

__all__ = [
    "build_sample",
    "data_hash",
    "write_results_json",
    "SampleWriter",
    "read_samples",
    "read_done_ids",
    "read_judge_pending",
    "read_latest_samples",
    "rejudge_samples",
    "write_csv",
    "format_table",
]

logger = logging.getLogger(__name__)
PathLike = str | os.PathLike


def build_sample(
    row: Mapping[str, Any],
    completion: str,
    verdict: Any,
    visual_prob: float | None = None,
    textual_prob: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ``samples.jsonl`` line from a canonical eval row (``id``, ``split``, ``query``, ``media``, ``labels``,
    ``category``, ``language``), the generated completion and the judge's Verdict: exactly the fields that
    ``compute_metrics`` and ``alarm_metrics_from_records`` read, so the two stay in step."""
    tags = extract_tags(completion)
    media = row.get("media") or {}
    labels = row.get("labels") or {}
    return {
        "id": str(row["id"]),
        "split": row.get("split"),
        "category": row.get("category"),
        "language": row.get("language"),
        "modality": "text" if media.get("type", "none") == "none" else media["type"],
        "query": row.get("query"),
        "completion": completion,
        "answer": tags.answer,
        "format_ok": tags.answer_count == 1,  # one complete <answer> span (videosafety_r1.tags)
        "vid_type": tags.vid_type,
        "text_type": tags.text_type,
        "visual_label": labels.get("visual"),
        "textual_label": labels.get("textual"),
        "visual_prob": visual_prob,
        "textual_prob": textual_prob,
        **verdict_fields(verdict),
        **extra,
    }


def verdict_fields(verdict: Any) -> dict[str, Any]:
    """The judge's part of a sample line (what ``rejudge_samples`` replaces)."""
    fields = verdict.to_dict() if hasattr(verdict, "to_dict") else dict(verdict)
    return {
        "refused": fields.get("refused"),
        "harmful": fields.get("harmful"),
        "safe": fields.get("safe"),
        "score": fields.get("score"),
        "p_unsafe": fields.get("p_unsafe"),
        "judge_raw": fields.get("raw"),
        "judge_error": fields.get("error"),
    }


def data_hash(path: PathLike) -> str:
    """sha256 of a data file, or of a directory's files (relative paths and contents, in sorted order), so a
    result can be traced to the exact benchmark it was computed on."""
    path = Path(path)
    h = hashlib.sha256()
    if not path.exists():
        raise FileNotFoundError(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, numpy scalars/arrays -> Python, anything else unknown -> str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return str(value)


def write_results_json(
    path: PathLike,
    metrics: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    judge: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    model_id: str | None = None,
    data_sha256: str | None = None,
    **extra: Any,
) -> Path:
    """Write the run summary; judge info should include the prompt template name, version and hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_id": model_id,
        "data_hash": data_sha256,
        "judge": judge,
        "config": config,
        "metrics": metrics,
        **extra,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n", "utf-8")
    os.replace(tmp, path)  # readers never see a half-written file
    return path


class SampleWriter:
    """Append one JSON line per finished item; usable as a context manager."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._fh = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        """A run killed mid-write leaves a last line without a newline: cut it so the next append starts clean."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            logger.warning("dropping a torn last line of %s (%d bytes)", self.path, len(data) - keep)
            with self.path.open("r+b") as fh:
                fh.truncate(keep)

    def write(self, sample: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(_jsonable(sample), ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_samples(path: PathLike) -> list[dict[str, Any]]:
    """All complete lines of a samples file (a torn or unreadable line is skipped with a warning); [] if absent."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("skipping unreadable line %d of %s", lineno, path)
    return rows


def read_latest_samples(path: PathLike) -> dict[str, dict[str, Any]]:
    """The last complete line of each id (a re-judged item appends a newer line), in first-seen order."""
    latest: dict[str, dict[str, Any]] = {}
    for row in read_samples(path):
        if isinstance(row, dict) and "id" in row:
            latest[str(row["id"])] = row
    return latest


def _judged(sample: Mapping[str, Any]) -> bool:
    return sample.get("judge_error") is None


def read_done_ids(path: PathLike) -> set[str]:
    """Ids of items generated *and* judged, so a resumed run skips them entirely."""
    return {i for i, sample in read_latest_samples(path).items() if _judged(sample)}


def read_judge_pending(path: PathLike) -> dict[str, dict[str, Any]]:
    """Samples generated but whose judge call failed: the next run judges them again (never generates them again)."""
    return {i: sample for i, sample in read_latest_samples(path).items() if not _judged(sample)}


def rejudge_samples(samples: Sequence[Mapping[str, Any]], judge: Any, writer: SampleWriter) -> int:
    """Judge ``samples`` again (the same ``<answer>`` span the first pass judged) and append the updated lines.

    Returns how many still failed; they stay pending for the next run.
    """
    from .judges import JudgeItem
    from .parsing import response_for_judging

    if not samples:
        return 0
    items = [
        JudgeItem(str(s.get("query") or ""), response_for_judging(s.get("completion") or "")[0] or "", str(s["id"]))
        for s in samples
    ]
    verdicts = judge.judge(items)
    failed = 0
    for sample, verdict in zip(samples, verdicts, strict=True):
        updated = {**sample, **verdict_fields(verdict)}
        failed += not _judged(updated)
        writer.write(updated)
    logger.info("re-judged %d items whose judge call had failed (%d still failing)", len(samples), failed)
    return failed


def write_csv(path: PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write rows (e.g. ``group_table`` output) as CSV; columns default to the union of keys in first-seen order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if _jsonable(r.get(k)) is None else r.get(k)) for k in columns})
    return path


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def format_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """Plain-text table with aligned columns (numbers right-aligned) for logs and the console."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c), digits) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)
