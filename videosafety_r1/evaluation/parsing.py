"""Pull the tagged spans out of a completion.

The CoT format is ``<think>...</think><answer>...</answer><vidType>0|1</vidType><textType>0|1</textType>``.
Judges must see the ``<answer>`` span only: reasoning about harm ("I cannot help with a bomb, so...") reads like a
refusal to keyword matchers even when the answer complies.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Tags", "extract_answer", "extract_tags", "response_for_judging", "count_format_failures"]

_TAG_NAMES = ("think", "answer", "vidType", "textType")
_PATTERNS = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.DOTALL) for name in _TAG_NAMES}
_THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_ANY_TAG = re.compile(r"</?(think|answer|vidType|textType)>")


def _last_span(name: str, text: str) -> str | None:
    matches = _PATTERNS[name].findall(text or "")
    return matches[-1].strip() if matches else None


def extract_answer(text: str | None) -> str | None:
    """The stripped content of the last complete ``<answer>...</answer>`` span, or None when there is none."""
    return _last_span("answer", text or "")


def _label(value: str | None) -> int | None:
    return int(value) if value in ("0", "1") else None


@dataclass(frozen=True)
class Tags:
    """Spans of one completion; labels are 0 (safe) / 1 (harmful) or None when absent or not a 0/1."""

    answer: str | None
    think: str | None
    vid_type: int | None
    text_type: int | None

    @property
    def format_ok(self) -> bool:
        """True when the answer and both labels could be read."""
        return self.answer is not None and self.vid_type is not None and self.text_type is not None


def extract_tags(text: str | None) -> Tags:
    """Read answer, think, vidType and textType (last complete span of each)."""
    text = text or ""
    return Tags(
        answer=_last_span("answer", text),
        think=_last_span("think", text),
        vid_type=_label(_last_span("vidType", text)),
        text_type=_label(_last_span("textType", text)),
    )


def response_for_judging(text: str | None, require_answer: bool = False) -> tuple[str | None, bool]:
    """Return ``(text_to_judge, has_answer_tag)``.

    With an ``<answer>`` span, that span. Without one (a base model that never learnt the format), the completion
    with every ``<think>`` block (closed or not) and stray tags removed, so reasoning is never judged; None when
    ``require_answer`` is set.
    """
    answer = extract_answer(text)
    if answer is not None:
        return answer, True
    if require_answer:
        return None, False
    stripped = _ANY_TAG.sub("", _THINK_BLOCK.sub("", text or ""))
    return stripped.strip(), False


def count_format_failures(completions: Iterable[str | None]) -> int:
    """Number of completions without a complete ``<answer>`` span."""
    return sum(extract_answer(c) is None for c in completions)
