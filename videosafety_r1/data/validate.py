"""Validate a dataset file before training: every problem at once, with file, line and field (docs/data.md).

A bad row must fail at start-up, not hours into a multi-GPU run, and must never be silently replaced by another
sample: ``on_bad_row="error"`` raises with the full report, ``"skip"`` drops the bad rows and counts them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Literal

from videosafety_r1.data.checks import check_record
from videosafety_r1.data.fields import bad_unicode
from videosafety_r1.data.importers import (
    FORMAT_KEYS,
    FORMATS,
    RowIssue,
    convert_legacy_labels,
    detect_format,
    mark_legacy,
    parse_row,
)
from videosafety_r1.data.reader import read_jsonl, read_rows
from videosafety_r1.data.schema import (
    CANONICAL_CONVENTION,
    LEGACY_CONVENTION,
    Record,
)
from videosafety_r1.data.video import Backend, MediaChecker
from videosafety_r1.errors import InputError

logger = logging.getLogger(__name__)
_LABEL_SOURCES = {"labels", "safety_labels", "media", "video", "image", "split"}  # fields the label checks compare
Kind = Literal["auto", "sft", "cot", "grpo", "eval"]
OnBadRow = Literal["error", "skip"]
__all__ = [
    "DataValidationError",
    "Problem",
    "ValidationReport",
    "check_record",  # lives in data.checks, re-exported for old imports
    "load_dataset_checked",
    "read_jsonl",  # lives in data.reader, re-exported for old imports
    "read_rows",
    "to_hf_dataset",
    "validate_file",
]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem, located: ``file:line: field: message [kind]``."""

    file: str
    line: int
    field: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message} [{self.kind}]"


@dataclasses.dataclass
class ValidationReport:
    """What a check found: all problems, rows read, records kept and the rows skipped (``on_bad_row="skip"``)."""

    files: list[str] = dataclasses.field(default_factory=list)
    formats: dict[str, str] = dataclasses.field(default_factory=dict)
    rows: int = 0
    records: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    skipped_lines: list[tuple[str, int]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def skipped(self) -> int:
        return len(self.skipped_lines)

    def summary(self) -> str:
        head = f"{self.rows} rows, {self.records} records, {len(self.problems)} problems, {self.skipped} rows skipped"
        return "\n".join([*(str(p) for p in self.problems), head])


class DataValidationError(InputError):
    """Raised by :func:`load_dataset_checked` with ``on_bad_row="error"``, or under ``"skip"`` when no row would be
    left or the file cannot be read to its end; ``.report`` holds every problem."""

    def __init__(self, report: ValidationReport, nothing_left: bool = False, unreadable: bool = False):
        why = ""
        if unreadable:
            why = "the file cannot be read to its end (on_bad_row=skip drops rows, never the rest of a file): "
        elif nothing_left:
            why = f"on_bad_row=skip would leave none of the {report.rows} rows: "
        super().__init__(f"{why}{len(report.problems)} data problems:\n{report.summary()}")
        self.report = report


def _legacy_records(records: list[Record], row: dict[str, Any]) -> tuple[list[Record], list[RowIssue]]:
    """``--legacy-labels``: convert rows that declare the legacy convention or none; refuse canonical ones."""
    declared = row.get("label_convention")
    if declared == CANONICAL_CONVENTION:
        msg = (
            f"the row declares {CANONICAL_CONVENTION!r} (already 0 = safe); legacy conversion applies only to rows "
            f"declaring {LEGACY_CONVENTION!r} or nothing: drop --legacy-labels for this file or fix the row"
        )
        return records, [RowIssue("label_convention", "label_convention", msg)]
    if declared not in (None, LEGACY_CONVENTION):
        return records, []  # parse_row already reported the bad value
    return [convert_legacy_labels(mark_legacy(r)) for r in records], []


def _parse_checked(
    row: dict[str, Any],
    fmt: str,
    default_id: str,
    checker: MediaChecker,
    kind: Kind,
    legacy_labels: bool,
    alarm_config: Any = None,
) -> tuple[list[Record], list[RowIssue]]:
    issues = bad_unicode(row)
    records = parse_row(row, fmt, default_id, issues)
    if issues and issues[0].kind == "invalid_unicode":
        return records, issues  # text that cannot be encoded cannot be checked further (paths, tags)
    if legacy_labels:
        records, refused = _legacy_records(records, row)
        issues += refused
    # a field the parser already reported holds a stand-in value, not the file's: comparing it with the labels would
    # report a contradiction the row does not have ("labels {0, 0} contradict split SH" for a bad label)
    reported = {issue.field.split(".")[0].split("[")[0] for issue in issues}
    unparsed = reported & _LABEL_SOURCES
    for record in records:
        found = check_record(record, checker, require_cot=kind == "cot", alarm_config=alarm_config)
        # nor is a field the parser reported checked again ("split: '' is not one of ..." after "split must be a string")
        found = [i for i in found if not (unparsed and i.kind == "contradictory_labels") and i.field not in reported]
        issues.extend(found)
        expected = "sft" if kind == "cot" else kind  # cot: SFT rows whose targets are in the CoT format
        if kind != "auto" and record.kind != expected:
            issues.append(
                RowIssue(
                    "<row>",
                    "wrong_kind",
                    f"expected {'an' if expected[0] in 'aeiou' else 'a'} {expected} row, got {record.kind}",
                )
            )
    return records, issues


# the keys detect_format looks for; a row's key close to one of them is most likely a typo of it
_DETECTING_KEYS = (
    "conversation",
    "conversations",
    "instr-resp",
    "problem",
    "query",
    "labels",
    "video_path",
    "question",
)


def _misspelt_format_keys(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, known key) pairs for keys of ``row`` that look like a misspelt format key ("conversaton")."""
    import difflib

    pairs = []
    for key in row:
        if isinstance(key, str) and key not in _DETECTING_KEYS:
            close = difflib.get_close_matches(key, _DETECTING_KEYS, n=1, cutoff=0.8)
            if close:
                pairs.append((key, close[0]))
    return pairs


def validate_file(
    path: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    fmt: str = "auto",
    kind: Kind = "auto",
    check_videos: bool = True,
    legacy_labels: bool = False,
    video_fps: float | None = 1.0,
    video_max_frames: int | None = 90,
    video_backend: Backend = "auto",
    alarm_config: Any = None,
) -> tuple[list[tuple[int, Record]], ValidationReport]:
    """Parse and check every row of one JSONL (or JSON-array) file; return the good ``(line, record)`` pairs and
    the report. A bad row never raises: every problem becomes a located :class:`Problem`.

    ``fmt`` is ``"auto"`` (detected from the first row that names one) or one of ``importers.FORMATS``;
    ``kind="cot"`` additionally requires every assistant target to be in the CoT format. Videos are decoded with
    the ``video_*`` settings training uses, so a clip that passes here also loads there.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"fmt must be 'auto' or one of {FORMATS}, got {fmt!r}")
    report = ValidationReport(files=[str(path)])
    root = Path(data_root) if data_root is not None else path.parent
    checker = MediaChecker(root, check_videos, video_fps, video_max_frames, video_backend)
    good: list[tuple[int, Record]] = []
    first_line: dict[str, int] = {}  # record id -> line it was first seen on
    format_line = 0  # the line whose keys set the file's format (auto detection)
    for line, row, error in read_rows(path):
        report.rows += 1
        issues = [error] if error else []
        records: list[Record] = []
        row_fmt = (
            None if row is None else fmt if fmt != "auto" else report.formats.get(str(path)) or detect_format(row)
        )
        if row is not None and row_fmt is None:
            known = "; ".join(f"{name}: {keys}" for name, keys in FORMAT_KEYS.items())
            hint = "".join(f"; did you mean {close!r} for {key!r}?" for key, close in _misspelt_format_keys(row))
            issues.append(
                RowIssue("<row>", "unknown_format", f"no known format has keys {sorted(row)} ({known}){hint}")
            )
        elif row is not None:
            if str(path) not in report.formats:
                report.formats[str(path)], format_line = row_fmt, line
            try:
                records, found = _parse_checked(
                    row, row_fmt, f"{path.stem}-{line}", checker, kind, legacy_labels, alarm_config
                )
            except Exception as err:  # a row must never stop validation: report what broke, keep going
                logger.debug("row %s:%d raised", path, line, exc_info=True)
                records, found = [], [RowIssue("<row>", "unreadable_row", f"{type(err).__name__}: {err}")]
            own = detect_format(row) if fmt == "auto" else None
            if found and own not in (None, row_fmt):  # one odd first row would otherwise fail every row after it
                msg = f"this row reads as {own}, but line {format_line} set the file's format to {row_fmt}"
                found.insert(0, RowIssue("<row>", "mixed_formats", msg + " (one file holds one format)"))
            issues += found
        for record in records:
            if record.id in first_line:
                msg = f"id {record.id!r} already used on line {first_line[record.id]}"
                issues.append(RowIssue("id", "duplicate_id", msg))
            first_line.setdefault(record.id, line)
        report.problems.extend(Problem(str(path), line, i.field, i.kind, i.message) for i in issues)
        if not issues:
            good.extend((line, r) for r in records)
    if report.rows == 0:
        report.problems.append(Problem(str(path), 0, "<file>", "empty_file", "the file holds no rows"))
    report.records = len(good)
    return good, report


def load_dataset_checked(
    path: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    kind: Kind = "auto",
    on_bad_row: OnBadRow = "error",
    check_videos: bool = True,
    legacy_labels: bool = False,
    video_fps: float | None = 1.0,
    video_max_frames: int | None = 90,
    video_backend: Backend = "auto",
    alarm_config: Any = None,
) -> tuple[list[Record], ValidationReport]:
    """What recipes call at start-up: typed records plus the validation report.

    ``on_bad_row="error"`` raises :class:`DataValidationError` listing every problem; ``"skip"`` drops the bad rows,
    records them in ``report.skipped_lines`` and logs how many; never substitutes another sample. A file that leaves
    no usable row raises under either policy. Pass the ``video_*`` settings training will sample with.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    if not os.path.isfile(path):
        raise InputError(
            f"{path}: data file not found" if not os.path.isdir(path) else f"{path}: a folder, not a JSONL file"
        )
    good, report = validate_file(
        path,
        data_root,
        kind=kind,
        check_videos=check_videos,
        legacy_labels=legacy_labels,
        video_fps=video_fps,
        video_max_frames=video_max_frames,
        video_backend=video_backend,
        alarm_config=alarm_config,
    )
    unreadable = on_bad_row == "skip" and any(p.field == "<file>" for p in report.problems)
    if report.problems and (on_bad_row == "error" or not good or unreadable):
        raise DataValidationError(report, nothing_left=on_bad_row == "skip" and not good, unreadable=unreadable)
    report.skipped_lines = sorted({(p.file, p.line) for p in report.problems})
    if report.skipped:
        logger.warning(
            "skipped %d bad rows of %s (%d problems):\n%s",
            report.skipped,
            path,
            len(report.problems),
            report.summary(),
        )
    return [record for _, record in good], report


def to_hf_dataset(records: list[Record]):
    """A ``datasets.Dataset`` of ``record.to_dict()`` rows, for trainers that want one (validated rows only)."""
    import datasets

    return datasets.Dataset.from_list([r.to_dict() for r in records])
