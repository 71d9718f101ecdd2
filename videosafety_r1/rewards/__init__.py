"""Safety-GRPO rewards: pure, batched functions with TRL's reward signature.

Each reward is ``f(prompts, completions, completion_ids, **columns) -> list[float | None]`` and accepts any extra
keyword TRL passes (``trainer_state``, ``log_metric``, ``log_extra``, dataset columns). Configs name rewards through
:data:`REWARD_FUNCS` and bind their parameters with :func:`get_reward_func`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .format import format_reward
from .refusal import refusal_consistency_reward
from .rouge import rouge_scores
from .safety import accuracy_reward, dra_rouge_reward, textual_label_reward, visual_label_reward
from .tags import PROBLEM_TYPES, SAFETY, completion_text, parse_tags, validate_solution
from .tokenize import TOKENIZERS
from .wer import word_error_rates

RewardFunc = Callable[..., list]

REWARD_FUNCS: dict[str, RewardFunc] = {
    "format": format_reward,
    "accuracy": accuracy_reward,
    "visual_label": visual_label_reward,
    "textual_label": textual_label_reward,
    "dra_rouge": dra_rouge_reward,
    "refusal_consistency": refusal_consistency_reward,
}


def get_reward_func(name: str, **params: Any) -> RewardFunc:
    """The reward registered as ``name`` with keyword parameters bound (e.g. from YAML).

    The result is a ``functools.partial`` that keeps the function's ``__name__`` (TRL logs ``rewards/<name>/mean``)
    and pickles, so it works with multi-process data loading.
    """
    if name not in REWARD_FUNCS:
        raise KeyError(f"unknown reward {name!r}; registered: {sorted(REWARD_FUNCS)}")
    func = REWARD_FUNCS[name]
    if not params:
        return func
    bound = functools.partial(func, **params)
    functools.update_wrapper(bound, func)
    return bound


def register_reward(name: str, func: RewardFunc) -> RewardFunc:
    """Add a reward under ``name`` so configs can refer to it; returns ``func`` (usable as a decorator helper)."""
    if name in REWARD_FUNCS and REWARD_FUNCS[name] is not func:
        raise ValueError(f"a different reward is already registered as {name!r}")
    REWARD_FUNCS[name] = func
    return func


__all__ = [
    "PROBLEM_TYPES",
    "REWARD_FUNCS",
    "SAFETY",
    "TOKENIZERS",
    "accuracy_reward",
    "completion_text",
    "dra_rouge_reward",
    "format_reward",
    "get_reward_func",
    "parse_tags",
    "refusal_consistency_reward",
    "register_reward",
    "rouge_scores",
    "textual_label_reward",
    "validate_solution",
    "visual_label_reward",
    "word_error_rates",
]
