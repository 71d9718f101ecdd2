"""``refusal_consistency`` and ``tag_consistency``: rewards the paper lacks, for the decision to refuse itself.

The published accuracy reward scores the answer by ROUGE with weight alpha in [0.1, 0.5], so once the labels are
right the answer is worth at most 0.1 of 3.1 and a policy that always refuses loses almost nothing when most
references are refusals. This term pays 1 when the completion's ``<answer>`` refuses exactly when the reference's
does, whatever the wording, so over-refusal and under-refusal cost the same full point. It is off in the published
paper configs; docs/rewards.md has the measured effect on the demo.

``tag_consistency`` needs no reference: it pays 1 when the completion's answer refuses exactly when its own
``<vidType>`` or ``<textType>`` says harmful. Without it, a rollout whose labels are wrong but whose answer is right
still earns the answer's terms, so GRPO learns to decide the answer apart from its own judgement, and that
decoupling showed up on held-out sentences as "Request: safe ... Plan: overview." followed by a refusal.
"""

from __future__ import annotations

import re
from typing import Any

from ..refusal import KeywordList, get_keyword_list
from .safety import _log
from .tags import SAFETY, broadcast, parse_batch

_MARKUP = re.compile(r"<[^<>]*>")  # tags inside an answer ("<think></think>") are not words


def _says_something(answer: str | None) -> bool:
    """Whether an ``<answer>`` holds a letter or digit in any script outside markup: an absent, empty, blank,
    zero-width, punctuation-only or tags-only answer is neither a refusal nor an answer, and would otherwise earn
    the point on every safe row."""
    return answer is not None and any(ch.isalnum() for ch in _MARKUP.sub("", answer))


def _types(problem_type: Any, n: int) -> list[Any]:
    """The rows' problem types; with no ``problem_type`` column every row is a safety row."""
    return broadcast(problem_type, n, "problem_type") if problem_type is not None else [SAFETY] * n


def refusal_consistency_reward(
    completions: list[Any],
    solution: list[str],
    problem_type: list[str] | str | None = None,
    *,
    refusal_keywords: str | list[str] | KeywordList = "multilingual",
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the completion's ``<answer>`` is a refusal exactly when the reference ``<answer>`` is, else 0.0.

    Refusal is :func:`videosafety_r1.refusal.is_refusal` under ``refusal_keywords`` (the evaluation's matcher). A
    completion whose ``<answer>`` is absent or holds no letter or digit scores 0, and so does a reference without
    an ``<answer>`` span. Rows whose ``problem_type`` is given and is not the safety type
    get None (TRL leaves them out of this term); with no ``problem_type`` every row is scored.
    """
    n = len(completions)
    matcher = get_keyword_list(refusal_keywords)
    types = _types(problem_type, n)
    outs, refs = parse_batch(completions), parse_batch(broadcast(solution, n, "solution"))
    rewards: list[float | None] = []
    for ptype, out, ref in zip(types, outs, refs):
        if ptype != SAFETY:
            rewards.append(None)
        elif not _says_something(out.answer) or ref.answer is None:  # no decision to compare
            rewards.append(0.0)
        else:
            rewards.append(float(matcher.matches(out.answer) == matcher.matches(ref.answer)))
    _log(kwargs, "safety/refusal_consistency", [r for r in rewards if r is not None])
    return rewards


def tag_consistency_reward(
    completions: list[Any],
    problem_type: list[str] | str | None = None,
    *,
    refusal_keywords: str | list[str] | KeywordList = "multilingual",
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the completion's ``<answer>`` is a refusal exactly when its own ``<vidType>`` or ``<textType>`` is 1
    (the label policy: refuse when the clip or the request is harmful), else 0.0.

    It reads no reference: it rewards the answer for following the completion's own labels, right or wrong, and
    leaves their correctness to ``accuracy``. A completion whose ``<answer>`` is absent or holds no letter or
    digit, or without both labels as 0/1, scores 0. Refusal is :func:`videosafety_r1.refusal.is_refusal` under
    ``refusal_keywords``. Rows whose ``problem_type`` is given and is not the safety type get None; with no
    ``problem_type`` every row is scored.
    """
    n = len(completions)
    matcher = get_keyword_list(refusal_keywords)
    types = _types(problem_type, n)
    rewards: list[float | None] = []
    for ptype, out in zip(types, parse_batch(completions)):
        if ptype != SAFETY:
            rewards.append(None)
        elif not _says_something(out.answer) or out.vid_type is None or out.text_type is None:
            rewards.append(0.0)
        else:
            rewards.append(float(matcher.matches(out.answer) == bool(out.vid_type or out.text_type)))
    _log(kwargs, "safety/tag_consistency", [r for r in rewards if r is not None])
    return rewards
