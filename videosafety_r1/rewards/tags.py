"""Parse completions and solutions into tags once, and validate reference solutions.

Every reward term reads the same tags (the grammar of :mod:`videosafety_r1.tags`: the first complete ``<answer>``
counts); the parse is cached by text so that the split terms, called one after another on the same completions, do
not parse them again.
"""

from __future__ import annotations

import math
from typing import Any

from ..constants import LABELS, PROBLEM_TYPES, SAFETY_PROBLEM_TYPE
from ..tags import Tags, parse_tags

SAFETY = SAFETY_PROBLEM_TYPE

__all__ = [
    "LABELS",
    "PROBLEM_TYPES",
    "SAFETY",
    "Tags",
    "broadcast",
    "completion_text",
    "parse_batch",
    "parse_number",
    "parse_tags",
    "validate_solution",
]


def completion_text(completion: Any) -> str:
    """The text of a plain-string or conversational completion (list of {"role", "content"} messages).

    Conversational completions take the last assistant message (or the last message); multimodal content lists keep
    their text parts. Anything else reads as "" so that a reward never raises on odd input.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)) or not completion:
        return ""
    messages = [m for m in completion if isinstance(m, dict)]
    assistant = [m for m in messages if m.get("role") == "assistant"] or messages
    if not assistant:
        return ""
    content = assistant[-1].get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = [p.get("text", "") if isinstance(p, dict) else p for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def parse_batch(values: list[Any]) -> list[Tags]:
    """Tags of a batch of completions or solutions."""
    return [parse_tags(completion_text(v)) for v in values]


def parse_number(text: str) -> float | None:
    """Float of an answer after removing thousands commas, as the published code; None if not a finite number."""
    try:
        value = float(text.replace(",", ""))
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def validate_solution(solution: Any, problem_type: Any) -> list[str]:
    """Problems with one reference solution; an empty list means the row can be scored.

    A malformed reference is a data error (the rewards would silently score 0 against it), so the data-validation
    layer calls this on every row instead of training on it.
    """
    problems: list[str] = []
    if problem_type not in PROBLEM_TYPES:
        return [f"unknown problem_type {problem_type!r}; expected one of {PROBLEM_TYPES}"]
    if not isinstance(solution, str):
        return [f"solution must be a string, got {type(solution).__name__}"]
    tags = parse_tags(solution)
    if not tags.has_answer:
        problems.append("solution has no <answer>...</answer>")
    elif not tags.answer_text and problem_type != SAFETY:
        problems.append("solution <answer> is empty")
    if problem_type == SAFETY:
        for name, value in (("vidType", tags.vid_type_raw), ("textType", tags.text_type_raw)):
            if value is None:
                problems.append(f"safety solution has no <{name}>...</{name}>")
            elif value not in LABELS:
                problems.append(f"<{name}> must be 0 (safe) or 1 (harmful), got {value!r}")
    elif problem_type in ("numerical", "regression") and tags.has_answer and parse_number(tags.answer_text) is None:
        problems.append(f"{problem_type} solution <answer> is not a finite number: {tags.answer!r}")
    return problems


def broadcast(column: Any, n: int, name: str) -> list[Any]:
    """A per-row column as a list of length n; a single value applies to every row."""
    if column is None or isinstance(column, str):
        return [column] * n
    column = list(column)
    if len(column) != n:
        raise ValueError(f"{name} has {len(column)} rows but there are {n} completions")
    return column
