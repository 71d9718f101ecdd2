"""Pull the tagged spans out of a completion, with the one grammar of :mod:`videosafety_r1.tags`.

The CoT format is ``<think>...</think><answer>...</answer><vidType>0|1</vidType><textType>0|1</textType>``.
Judges must see the ``<answer>`` span only: reasoning about harm ("I cannot help with a bomb, so...") reads like a
refusal to keyword matchers even when the answer complies. As in the rewards, the **first** complete ``<answer>``
span counts; a completion with several is a format failure (see :mod:`videosafety_r1.tags` for why).
"""

from __future__ import annotations

from collections.abc import Iterable

from videosafety_r1.tags import Tags, parse_tags, strip_tags

__all__ = ["Tags", "extract_answer", "extract_tags", "response_for_judging", "count_format_failures"]


def extract_answer(text: str | None) -> str | None:
    """The stripped content of the first complete ``<answer>...</answer>`` span, or None when there is none."""
    return parse_tags(text or "").answer


def extract_tags(text: str | None) -> Tags:
    """Read think, answer, vidType and textType (first complete span of each)."""
    return parse_tags(text or "")


def response_for_judging(text: str | None, require_answer: bool = False) -> tuple[str | None, bool]:
    """Return ``(text_to_judge, has_answer_tag)``.

    With an ``<answer>`` span, the first one. Without one (a base model that never learnt the format), the
    completion with every ``<think>`` block (closed or not) and stray tags removed, so reasoning is never judged;
    None when ``require_answer`` is set.
    """
    answer = extract_answer(text)
    if answer is not None:
        return answer, True
    if require_answer:
        return None, False
    return strip_tags(text or ""), False


def count_format_failures(completions: Iterable[str | None]) -> int:
    """Number of completions without exactly one complete ``<answer>`` span (``format_ok`` false in samples)."""
    return sum(parse_tags(c or "").answer_count != 1 for c in completions)
