"""Safety-GRPO rewards: pure, batched functions with TRL's reward signature.

Each reward is ``f(prompts, completions, completion_ids, **columns) -> list[float | None]`` and accepts any extra
keyword TRL passes (``trainer_state``, ``log_metric``, ``log_extra``, dataset columns). Configs name rewards through
:data:`REWARD_FUNCS` or as ``package.module:function`` (a reward outside the library), and bind their parameters with
:func:`get_reward_func`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from .format import format_reward
from .refusal import refusal_consistency_reward, tag_consistency_reward
from .rouge import rouge_scores
from .safety import accuracy_reward, dra_rouge_reward, textual_label_reward, visual_label_reward
from .tags import PROBLEM_TYPES, SAFETY, completion_text, parse_tags, validate_solution
from .tokenize import TOKENIZERS
from .wer import word_error_rates

RewardFunc = Callable[..., list]
# The keywords the GRPO trainer passes every reward besides the dataset columns (TRL's contract).
CALL_KEYWORDS = ("prompts", "completions", "completion_ids", "trainer_state", "log_metric", "log_extra")

REWARD_FUNCS: dict[str, RewardFunc] = {
    "format": format_reward,
    "accuracy": accuracy_reward,
    "visual_label": visual_label_reward,
    "textual_label": textual_label_reward,
    "dra_rouge": dra_rouge_reward,
    "refusal_consistency": refusal_consistency_reward,
    "tag_consistency": tag_consistency_reward,
}


def resolve_reward(name: str) -> RewardFunc:
    """The function behind a config name: a registry key, or ``package.module:function`` imported from the Python
    path (a user's reward outside the library). Raises ``KeyError`` naming what could not be found."""
    if name in REWARD_FUNCS:
        return REWARD_FUNCS[name]
    module_name, sep, attr = name.partition(":")
    if not sep:
        raise KeyError(
            f"unknown reward {name!r}; registered: {sorted(REWARD_FUNCS)}, or name your own as 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # not found, a syntax error or an exception inside the module, an empty/relative name
        raise KeyError(
            f"reward {name!r}: cannot import module {module_name!r} ({type(err).__name__}: {err})"
        ) from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise KeyError(f"reward {name!r}: module {module_name!r} has no function {attr!r}")
    return func


def reward_signature_errors(name: str, kwargs: dict[str, Any]) -> list[str]:
    """Config-time check of a reward name and the keyword arguments a config binds to it (empty when fine)."""
    try:
        func = resolve_reward(name)
    except KeyError as err:
        return [f"reward_funcs: {err.args[0]}"]
    taken = sorted(set(kwargs) & set(CALL_KEYWORDS))
    if taken:  # the trainer's own keyword would replace the bound value at every call
        return [f"reward_kwargs[{name!r}] binds {taken}, which the trainer passes itself at every call"]
    if inspect.isclass(func):  # calling it would build an instance, not return rewards
        return [f"reward_funcs: {name!r} is a class; name a function (or a module-level instance of the class)"]
    try:  # the callable itself: a partial's bound keywords count, a decorator's wrapper is what gets called
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):  # some builtins: whether the trainer's keyword call works cannot be known now
        return [f"reward_funcs: {name!r} has no signature to check; wrap it in a Python function taking **kwargs"]
    params = signature.parameters.values()
    named = {
        p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    for key in sorted(set(kwargs) - named):  # it would only land in **kwargs, where the reward never reads it
        close = difflib.get_close_matches(key, sorted(named), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [
            f"reward_kwargs[{name!r}] binds {key!r}, which the reward has no parameter for{hint}: it would be "
            f"ignored; its parameters: {sorted(named)}"
        ]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        # the trainer calls every reward with prompts, completions, completion_ids, trainer_state and each dataset
        # column as keywords (TRL's contract): without **kwargs the first step would fail, after the model loaded
        return [
            f"reward_funcs: {name!r} has signature {signature} without **kwargs; a reward is called with prompts=, "
            "completions=, completion_ids=, trainer_state= and every dataset column as keyword arguments"
        ]
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is inspect.Parameter.empty for p in params):
        return [
            f"reward_funcs: {name!r} has a positional-only parameter without a default; a reward is called with keywords only"
        ]
    return []


def reward_call_problem(func: RewardFunc, kwargs: dict[str, Any]) -> str | None:
    """Why ``func(**kwargs)`` cannot run as configured, or None: a required argument nobody passes, or a
    ``reward_kwargs`` value a dataset column of the same name would silently replace. Reads the callable itself
    (``follow_wrapped=False``): a partial's bound keywords count, and a decorator's wrapper is what is called."""
    if isinstance(func, functools.partial) and (shadowed := sorted(set(func.keywords) & set(kwargs))):
        return f"reward_kwargs {shadowed} would be replaced by the dataset columns of the same name"
    try:
        inspect.signature(func, follow_wrapped=False).bind(**kwargs)
    except TypeError as err:
        return str(err)
    except ValueError:  # no signature to read (some builtins): the call itself will tell
        pass
    return None


def get_reward_func(name: str, **params: Any) -> RewardFunc:
    """The reward ``name`` (registry key or ``package.module:function``) with keyword parameters bound (e.g. from
    YAML).

    The result is a ``functools.partial`` that keeps the function's ``__name__`` (TRL logs ``rewards/<name>/mean``)
    and pickles, so it works with multi-process data loading.
    """
    func = resolve_reward(name)
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
    "CALL_KEYWORDS",
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
    "tag_consistency_reward",
    "register_reward",
    "resolve_reward",
    "reward_call_problem",
    "reward_signature_errors",
    "rouge_scores",
    "textual_label_reward",
    "validate_solution",
    "visual_label_reward",
    "word_error_rates",
]
