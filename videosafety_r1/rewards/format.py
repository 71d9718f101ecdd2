"""Format reward: does the completion follow the method's tag layout?"""

from __future__ import annotations

import re
from typing import Any

from .tags import SAFETY, broadcast, completion_text

# The method's pattern (full match, DOTALL). Trailing whitespace is accepted: generation often ends with a newline
# before the end-of-turn token, and penalising it would teach nothing about the format. Leading whitespace is not.
SAFETY_FORMAT = re.compile(
    r"<think>.*?</think>\s*<answer>.*?</answer>\s*<vidType>.*?</vidType>\s*<textType>.*?</textType>\s*", re.DOTALL
)
ANSWER_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)


def format_reward(completions: list[Any], problem_type: list[str] | str | None = None, **kwargs: Any) -> list[float]:
    """1.0 where the whole completion matches the format its row asks for, else 0.0.

    Safety rows (and every row when ``problem_type`` is not given) need think, answer, vidType and textType;
    other problem types were prompted for think and answer only, so that is what they need.
    """
    types = broadcast(problem_type, len(completions), "problem_type")
    rewards = []
    for completion, ptype in zip(completions, types):
        pattern = SAFETY_FORMAT if ptype in (None, SAFETY) else ANSWER_FORMAT
        rewards.append(1.0 if pattern.fullmatch(completion_text(completion)) else 0.0)
    return rewards
