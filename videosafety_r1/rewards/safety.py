"""Accuracy reward of Safety-GRPO with per-row dispatch, and its split terms.

Safety rows (``problem_type="free-form-and-choice"``) use Dynamic Reward Adaptation:
``alpha * R + gamma_visual * C_v + gamma_textual * C_t`` with ``alpha = alpha_min + (1 - C_v * C_t) * (alpha_max -
alpha_min)`` and R the mean of ROUGE-1/2/L F-measures of the ``<answer>`` spans. Other rows follow the published
mixed-task rules. Everything that needs ROUGE or WER is computed for the whole batch at once.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .rouge import rouge_scores
from .tags import SAFETY, Tags, broadcast, parse_batch, parse_number
from .wer import word_error_rates

logger = logging.getLogger(__name__)
_warned_types: set[str] = set()


def _rouge_mean(refs: list[Tags], outs: list[Tags], rows: list[int], tokenizer: str, device) -> dict[int, float]:
    """R in [0, 1] for the given rows, in one batched call."""
    if not rows:
        return {}
    scores = rouge_scores([refs[i].answer_text for i in rows], [outs[i].answer_text for i in rows], tokenizer, device)
    return dict(zip(rows, scores.mean(dim=1).clamp(0.0, 1.0).tolist()))


def _label_hits(refs: list[Tags], outs: list[Tags], rows: list[int]) -> tuple[dict[int, float], dict[int, float]]:
    """C_v and C_t: 1.0 where the completion's label equals a present reference label."""
    c_v = {i: float(refs[i].vid_type is not None and outs[i].vid_type == refs[i].vid_type) for i in rows}
    c_t = {i: float(refs[i].text_type is not None and outs[i].text_type == refs[i].text_type) for i in rows}
    return c_v, c_t


def _alpha(c_v: float, c_t: float, alpha_min: float, alpha_max: float) -> float:
    return alpha_min + (1.0 - c_v * c_t) * (alpha_max - alpha_min)


def _numerical(gt: str, out: str) -> float:
    """Published rule: same decimal style, then equal after rounding to 2 decimals."""
    if (("." in gt) or ("," in gt)) != (("." in out) or ("," in out)):
        return 0.0
    g, o = parse_number(gt), parse_number(out)
    return float(g is not None and o is not None and round(g, 2) == round(o, 2))


def _regression(gt: str, out: str) -> float:
    """Published rule: 1 - relative error, clipped to [0, 1]."""
    g, o = parse_number(gt), parse_number(out)
    if g is None or o is None:
        return 0.0
    rel = (abs(o - g) + 1e-9) / (abs(g) + 1e-9)
    return 1.0 - min(1.0, max(0.0, rel))


def _safety_rows(types: list[Any]) -> list[int]:
    return [i for i, t in enumerate(types) if t == SAFETY]


def _log(kwargs: dict, name: str, values: list[float]) -> None:
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and values:
        log_metric(name, sum(values) / len(values))


def accuracy_reward(
    completions: list[Any],
    solution: list[str],
    problem_type: list[str] | str,
    *,
    alpha_min: float = 0.1,
    alpha_max: float = 0.5,
    gamma_visual: float = 1.0,
    gamma_textual: float = 1.0,
    rouge_tokenizer: str = "multilingual",
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """The published accuracy reward, dispatched on each row's own ``problem_type``.

    A completion that lacks a tag scores 0 for the terms that need it; an unknown problem type scores 0 (and is
    logged once): :func:`~videosafety_r1.rewards.validate_solution` catches such rows before training.
    """
    n = len(completions)
    types = broadcast(problem_type, n, "problem_type")
    outs, refs = parse_batch(completions), parse_batch(broadcast(solution, n, "solution"))
    rouge_rows = [i for i, t in enumerate(types) if t in (SAFETY, "free-form")]
    rouge = _rouge_mean(refs, outs, rouge_rows, rouge_tokenizer, device)
    ocr_rows = [i for i, t in enumerate(types) if t == "OCR"]
    ocr = {}
    if ocr_rows:
        wer = word_error_rates(
            [refs[i].answer_text for i in ocr_rows], [outs[i].answer_text for i in ocr_rows], device
        )
        ocr = dict(zip(ocr_rows, (1.0 - wer).clamp(0.0, 1.0).tolist()))
    c_v, c_t = _label_hits(refs, outs, _safety_rows(types))
    rewards: list[float | None] = []
    for i, (ptype, out, ref) in enumerate(zip(types, outs, refs)):
        if ptype == SAFETY:
            alpha = _alpha(c_v[i], c_t[i], alpha_min, alpha_max)
            rewards.append(alpha * rouge[i] + gamma_visual * c_v[i] + gamma_textual * c_t[i])
        elif ptype == "free-form":
            rewards.append(rouge[i])
        elif ptype == "OCR":
            rewards.append(ocr[i])
        elif ptype == "multiple choice":
            rewards.append(float(out.has_answer and out.answer == ref.answer_text))
        elif ptype == "numerical":
            rewards.append(_numerical(ref.answer_text, out.answer_text) if out.has_answer else 0.0)
        elif ptype == "regression":
            rewards.append(_regression(ref.answer_text, out.answer_text) if out.has_answer else 0.0)
        else:
            if str(ptype) not in _warned_types:
                _warned_types.add(str(ptype))
                logger.warning("accuracy_reward: unknown problem_type %r scores 0", ptype)
            rewards.append(0.0)
    _log(kwargs, "safety/rouge", [rouge[i] for i in c_v])
    return rewards


def _label_reward(
    which: int, gamma: float, metric: str, completions: list[Any], solution: Any, problem_type: Any, kwargs: dict
) -> list[float | None]:
    """gamma * [label `which` right] (0 = visual, 1 = textual) on safety rows, None on other rows."""
    n = len(completions)
    rows = _safety_rows(broadcast(problem_type, n, "problem_type"))
    hits = _label_hits(parse_batch(broadcast(solution, n, "solution")), parse_batch(completions), rows)[which]
    _log(kwargs, metric, list(hits.values()))
    return [gamma * hits[i] if i in hits else None for i in range(n)]


def visual_label_reward(
    completions: list[Any],
    solution: list[str],
    problem_type: list[str] | str,
    *,
    gamma_visual: float = 1.0,
    **kwargs: Any,
) -> list[float | None]:
    """gamma_visual * C_v on safety rows (video label right), None on other rows."""
    return _label_reward(0, gamma_visual, "safety/visual_label_accuracy", completions, solution, problem_type, kwargs)


def textual_label_reward(
    completions: list[Any],
    solution: list[str],
    problem_type: list[str] | str,
    *,
    gamma_textual: float = 1.0,
    **kwargs: Any,
) -> list[float | None]:
    """gamma_textual * C_t on safety rows (query label right), None on other rows."""
    return _label_reward(
        1, gamma_textual, "safety/textual_label_accuracy", completions, solution, problem_type, kwargs
    )


def dra_rouge_reward(
    completions: list[Any],
    solution: list[str],
    problem_type: list[str] | str,
    *,
    alpha_min: float = 0.1,
    alpha_max: float = 0.5,
    rouge_tokenizer: str = "multilingual",
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """alpha * R on safety rows, alpha from the labels (Dynamic Reward Adaptation); None on other rows."""
    n = len(completions)
    types = broadcast(problem_type, n, "problem_type")
    rows = _safety_rows(types)
    outs, refs = parse_batch(completions), parse_batch(broadcast(solution, n, "solution"))
    rouge = _rouge_mean(refs, outs, rows, rouge_tokenizer, device)
    c_v, c_t = _label_hits(refs, outs, rows)
    _log(kwargs, "safety/rouge", list(rouge.values()))
    return [_alpha(c_v[i], c_t[i], alpha_min, alpha_max) * rouge[i] if i in rouge else None for i in range(n)]
