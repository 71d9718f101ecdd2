"""Format reward: does the completion follow the method's tag layout (:mod:`videosafety_r1.tags`)?"""

from __future__ import annotations

from typing import Any

from ..tags import ANSWER_FORMAT, SAFETY_FORMAT, format_ok
from .tags import broadcast, completion_text

__all__ = ["ANSWER_FORMAT", "SAFETY_FORMAT", "format_reward"]


def format_reward(completions: list[Any], problem_type: list[str] | str | None = None, **kwargs: Any) -> list[float]:
    """1.0 where the whole completion is the layout its row asks for, else 0.0.

    Safety rows (and every row when ``problem_type`` is not given) need think, answer, vidType and textType;
    other problem types were prompted for think and answer only, so that is what they need. Each tag appears once,
    in order; trailing whitespace is accepted (generation often ends with a newline before the end-of-turn token),
    leading whitespace is not.
    """
    types = broadcast(problem_type, len(completions), "problem_type")
    return [1.0 if format_ok(completion_text(c), t) else 0.0 for c, t in zip(completions, types)]
