"""Validate a dataset file before training: every problem at once, with file, line and field (docs/data.md).

A bad row must fail at start-up, not hours into a multi-GPU run, and must never be silently replaced by another
sample: ``on_bad_row="error"`` raises with the full report, ``"skip"`` drops the bad rows and counts them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

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
from videosafety_r1.data.schema import (
    ALARM_LITERALS,
    ANSWER_COT_RE,
    CANONICAL_CONVENTION,
    COT_RE,
    EVAL_SPLITS,
    LEGACY_CONVENTION,
    PROBLEM_TYPES,
    SAFETY_PROBLEM_TYPE,
    EvalRecord,
    GRPORecord,
    Record,
    SafetyLabels,
    SFTRecord,
    extract_tag,
)
from videosafety_r1.data.video import Backend, MediaChecker

logger = logging.getLogger(__name__)
Kind = Literal["auto", "sft", "cot", "grpo", "eval"]
OnBadRow = Literal["error", "skip"]
_SPLIT_LABELS = {"HH": (1, 1), "SH": (0, 1)}


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


class DataValidationError(ValueError):
    """Raised by :func:`load_dataset_checked` with ``on_bad_row="error"``; ``.report`` holds every problem."""

    def __init__(self, report: ValidationReport):
        super().__init__(f"{len(report.problems)} data problems:\n{report.summary()}")
        self.report = report


def _tag_labels(text: str, where: str, issues: list[RowIssue]) -> SafetyLabels | None:
    values = {}
    for tag in ("vidType", "textType"):
        value = extract_tag(text, tag)
        if value is None or value.strip() not in ("0", "1"):
            issues.append(RowIssue(where, "cot_tags_missing", f"<{tag}>0|1</{tag}> missing or not 0/1"))
        else:
            values[tag] = int(value.strip())
    return SafetyLabels(values["vidType"], values["textType"]) if len(values) == 2 else None


def _compare(labels: SafetyLabels | None, tags: SafetyLabels | None, where: str, issues: list[RowIssue]) -> None:
    if labels is not None and tags is not None and labels != tags:
        issues.append(
            RowIssue(where, "contradictory_labels", f"tags say {tags.to_dict()} but labels are {labels.to_dict()}")
        )


def check_record(record: Record, media_checker: Any, require_cot: bool = False) -> list[RowIssue]:
    """Semantic checks of one parsed record (labels, tags, problem type, media, alarm literals)."""
    issues: list[RowIssue] = []
    if record.label_convention != CANONICAL_CONVENTION:
        msg = f"labels are in convention {record.label_convention!r}; convert them with convert_legacy_labels"
        issues.append(RowIssue("label_convention", "label_convention", msg))
    media = record.media
    if media.type != "none":
        if not media.path:
            issues.append(RowIssue("media.path", "missing_field", f"{media.type} path is empty"))
        else:
            issues.extend(media_checker(media.type, media.path))
    labels = record.labels if isinstance(record, EvalRecord) else record.safety_labels
    texts: list[tuple[str, str]] = []
    if isinstance(record, SFTRecord):
        roles = [t.role for t in record.conversation]
        if "user" not in roles or "assistant" not in roles:
            issues.append(
                RowIssue("conversation", "invalid_conversation", f"needs a user and an assistant turn: {roles}")
            )
        for i, turn in enumerate(record.conversation):
            where = f"conversation[{i}].content"
            texts.append((where, turn.content))
            if turn.role != "assistant":
                continue
            if require_cot or any(f"<{t}>" in turn.content for t in ("think", "answer", "vidType", "textType")):
                issues.extend(_check_cot_target(record, turn.content, where, labels))
    elif isinstance(record, GRPORecord):
        texts += [("problem", record.problem), ("solution", record.solution)]
        texts += [(f"options[{i}]", str(o)) for i, o in enumerate(record.options or [])]
        if record.problem_type not in PROBLEM_TYPES:
            issues.append(
                RowIssue(
                    "problem_type",
                    "unknown_problem_type",
                    f"{record.problem_type!r} is not one of {list(PROBLEM_TYPES)}",
                )
            )
        if extract_tag(record.solution, "answer") is None:
            issues.append(RowIssue("solution", "cot_tags_missing", "<answer>…</answer> missing"))
        if record.problem_type == SAFETY_PROBLEM_TYPE:
            tags = _tag_labels(record.solution, "solution", issues)
            _compare(labels, tags, "solution", issues)
            if labels is None and tags is not None:
                record.safety_labels = labels = tags
        elif record.problem_type in PROBLEM_TYPES and not issues:
            issues.extend(RowIssue("solution", "invalid_solution", m) for m in _reward_check(record))
    else:
        texts.append(("query", record.query))
        if record.split not in EVAL_SPLITS:
            issues.append(RowIssue("split", "invalid_split", f"{record.split!r} is not one of {list(EVAL_SPLITS)}"))
        elif (record.labels.visual, record.labels.textual) != _SPLIT_LABELS.get(
            record.split, (record.labels.visual, 0)
        ):
            issues.append(
                RowIssue(
                    "labels", "contradictory_labels", f"labels {labels.to_dict()} contradict split {record.split}"
                )
            )
    if labels is not None and labels.visual == 1 and media.type == "none":
        issues.append(RowIssue("safety_labels.visual", "contradictory_labels", "visual = 1 (harmful) but no media"))
    for where, text in texts:
        for literal in ALARM_LITERALS:
            if literal in text:
                issues.append(RowIssue(where, "alarm_literal", f"contains the literal alarm token {literal}"))
    return issues


def _check_cot_target(record: SFTRecord, text: str, where: str, labels: SafetyLabels | None) -> list[RowIssue]:
    """The format reward's per-row rule: safety rows (problem_type "free-form-and-choice" or none) need think,
    answer, vidType and textType, which must agree with the labels; other rows need exactly think + answer."""
    if record.problem_type not in (None, SAFETY_PROBLEM_TYPE):
        if ANSWER_COT_RE.fullmatch(text):
            return []
        return [RowIssue(where, "cot_tags_missing", "target must be <think>…</think><answer>…</answer>")]
    issues = []
    if not COT_RE.fullmatch(text):
        layout = "<think>…</think><answer>…</answer><vidType>0|1</vidType><textType>0|1</textType>"
        issues.append(RowIssue(where, "cot_tags_missing", f"target must be {layout}"))
    _compare(labels, _tag_labels(text, where, []), where, issues)
    return issues


def _reward_check(record: GRPORecord) -> list[str]:
    try:  # the rewards package owns the per-type answer formats; tolerate its absence
        from videosafety_r1.rewards import validate_solution
    except ImportError:
        try:
            from videosafety_r1.rewards.tags import validate_solution
        except ImportError:
            return []
    return list(validate_solution(record.solution, record.problem_type))


def _decode_line(raw: bytes, number: int) -> tuple[int, Any, RowIssue | None]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return number, None, RowIssue("<line>", "invalid_utf8", f"not UTF-8 at byte {err.start}: {err.reason}")
    try:
        return number, json.loads(line), None
    except json.JSONDecodeError as err:
        return number, None, RowIssue("<json>", "malformed_json", f"invalid JSON: {err.msg} at column {err.pos + 1}")


def _array_rows(text: str) -> Iterator[tuple[int, Any, RowIssue | None]]:
    """Elements of a file holding one JSON array (VLGuard's ``train.json``), each with the line it starts on."""
    decoder, pos, line = json.JSONDecoder(), text.index("[") + 1, 1
    line += text.count("\n", 0, pos)
    while True:
        start = pos + len(text[pos:]) - len(text[pos:].lstrip(" \t\r\n,"))
        line += text.count("\n", pos, start)
        if start >= len(text) or text[start] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            msg = f"JSON array: {err.msg} at line {err.lineno} column {err.colno}; fix it or convert to JSONL"
            yield err.lineno, None, RowIssue("<json>", "malformed_json", msg)
            return
        yield line, value, None
        line += text.count("\n", start, end)
        pos = end


def _object(number: int, row: Any, issue: RowIssue | None) -> tuple[int, dict[str, Any] | None, RowIssue | None]:
    if issue is None and not isinstance(row, dict):
        issue = RowIssue("<json>", "not_an_object", f"expected a JSON object, got {type(row).__name__}")
    return number, row if issue is None else None, issue


def read_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any] | None, RowIssue | None]]:
    """Yield ``(line_number, row_or_None, issue_or_None)`` per row of a JSONL file, or of a file holding one JSON
    array of objects (VLGuard's ``train.json``; line = where the element starts). Bytes that are not UTF-8 and JSON
    that does not parse are issues of their line; blank lines are skipped."""
    with open(path, "rb") as f:
        lines, first = enumerate(f, start=1), True
        for number, raw in lines:
            raw = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
            if not raw.strip():
                continue
            parsed = _decode_line(raw, number)
            if first and raw.lstrip().startswith(b"[") and parsed[2] is not None:  # not one JSONL row: an array
                data = b"\n" * (number - 1) + raw + b"".join(rest for _, rest in lines)
                for row in _array_rows(data.decode("utf-8", errors="surrogateescape")):
                    yield _object(*row)
                return
            first = False
            yield _object(*parsed)


#: Kept for callers of the old name.
read_jsonl = read_rows


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
    row: dict[str, Any], fmt: str, default_id: str, checker: MediaChecker, kind: Kind, legacy_labels: bool
) -> tuple[list[Record], list[RowIssue]]:
    issues = bad_unicode(row)
    records = parse_row(row, fmt, default_id, issues)
    if issues and issues[0].kind == "invalid_unicode":
        return records, issues  # text that cannot be encoded cannot be checked further (paths, tags)
    if legacy_labels:
        records, refused = _legacy_records(records, row)
        issues += refused
    for record in records:
        issues.extend(check_record(record, checker, require_cot=kind == "cot"))
        if kind not in ("auto", "cot") and record.kind != kind:
            issues.append(RowIssue("<row>", "wrong_kind", f"expected a {kind} row, got {record.kind}"))
    return records, issues


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
    for line, row, error in read_rows(path):
        report.rows += 1
        issues = [error] if error else []
        records: list[Record] = []
        row_fmt = (
            None if row is None else fmt if fmt != "auto" else report.formats.get(str(path)) or detect_format(row)
        )
        if row is not None and row_fmt is None:
            known = "; ".join(f"{name}: {keys}" for name, keys in FORMAT_KEYS.items())
            issues.append(RowIssue("<row>", "unknown_format", f"no known format has keys {sorted(row)} ({known})"))
        elif row is not None:
            report.formats.setdefault(str(path), row_fmt)
            try:
                records, found = _parse_checked(row, row_fmt, f"{path.stem}-{line}", checker, kind, legacy_labels)
            except Exception as err:  # a row must never stop validation: report what broke, keep going
                logger.debug("row %s:%d raised", path, line, exc_info=True)
                records, found = [], [RowIssue("<row>", "unreadable_row", f"{type(err).__name__}: {err}")]
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
) -> tuple[list[Record], ValidationReport]:
    """What recipes call at start-up: typed records plus the validation report.

    ``on_bad_row="error"`` raises :class:`DataValidationError` listing every problem; ``"skip"`` drops the bad rows,
    records them in ``report.skipped_lines`` and logs how many; never substitutes another sample. A file that leaves
    no usable row raises under either policy. Pass the ``video_*`` settings training will sample with.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
    good, report = validate_file(
        path,
        data_root,
        kind=kind,
        check_videos=check_videos,
        legacy_labels=legacy_labels,
        video_fps=video_fps,
        video_max_frames=video_max_frames,
        video_backend=video_backend,
    )
    if report.problems and (on_bad_row == "error" or not good):
        raise DataValidationError(report)
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
