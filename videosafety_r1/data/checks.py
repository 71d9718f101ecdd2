"""Semantic checks of one parsed record: labels against tags, CoT layout per problem type, media, alarm literals.

Used by :mod:`videosafety_r1.data.validate`; the rules are listed in docs/data.md ("What validation catches").
"""

from __future__ import annotations

from typing import Any

from videosafety_r1.data.fields import RowIssue
from videosafety_r1.data.schema import (
    ALARM_LITERALS,
    ANSWER_COT_RE,
    CANONICAL_CONVENTION,
    COT_RE,
    EVAL_SPLITS,
    PROBLEM_TYPES,
    SAFETY_PROBLEM_TYPE,
    EvalRecord,
    GRPORecord,
    Record,
    SafetyLabels,
    SFTRecord,
    extract_tag,
)

_SPLIT_LABELS = {"HH": (1, 1), "SH": (0, 1)}


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


def check_record(
    record: Record, media_checker: Any, require_cot: bool = False, alarm_config: Any = None
) -> list[RowIssue]:
    """Semantic checks of one parsed record (labels, tags, problem type, media, alarm literals).

    The alarm literals are ``alarm_config``'s (an ``AlarmConfig``; its defaults when None), so custom alarm strings
    are checked too."""
    literals = (alarm_config.visual_token, alarm_config.textual_token) if alarm_config is not None else ALARM_LITERALS
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
        if record.problem_type is not None and record.problem_type not in PROBLEM_TYPES:
            msg = f"{record.problem_type!r} is not one of {list(PROBLEM_TYPES)}"
            issues.append(RowIssue("problem_type", "unknown_problem_type", msg))
        roles = [t.role for t in record.conversation]
        if "user" not in roles or "assistant" not in roles:
            issues.append(
                RowIssue("conversation", "invalid_conversation", f"needs a user and an assistant turn: {roles}")
            )
        elif roles[-1] != "assistant":
            msg = f"must end with the assistant's reply (the training target): {roles}"
            issues.append(RowIssue("conversation", "invalid_conversation", msg))
        for i, turn in enumerate(record.conversation):
            where = f"conversation[{i}].content"
            texts.append((where, turn.content))
            if turn.role != "assistant":
                continue
            if not turn.content.strip():
                issues.append(RowIssue(where, "empty_reply", "an assistant turn with no text: nothing to train on"))
            if require_cot or any(f"<{t}>" in turn.content for t in ("think", "answer", "vidType", "textType")):
                issues.extend(_check_cot_target(record, turn.content, where, labels))
    elif isinstance(record, GRPORecord):
        texts += [("problem", record.problem), ("solution", record.solution)]
        texts += [(f"options[{i}]", str(o)) for i, o in enumerate(record.options or [])]
        if not record.problem.strip():
            issues.append(RowIssue("problem", "empty_text", "an empty question: its textual label has nothing to say"))
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
        if not record.query.strip():
            issues.append(RowIssue("query", "empty_text", "an empty question: its textual label has nothing to say"))
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
        field = "labels.visual" if isinstance(record, EvalRecord) else "safety_labels.visual"  # as the row names it
        issues.append(RowIssue(field, "contradictory_labels", "visual = 1 (harmful) but no media"))
    for where, text in texts:
        for literal in literals:
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
