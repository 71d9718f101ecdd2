"""Evaluation: defense success, over-refusal and alarm-head quality, with pluggable judges.

Light modules load eagerly; the transformers judge, the evaluation runner and the plots load on first use so that importing the package
does not pull in a model stack or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..refusal import KEYWORD_LISTS, KeywordList, get_keyword_list, is_refusal
from .alarm_metrics import (
    alarm_head_metrics,
    alarm_metrics_from_records,
    auroc,
    binary_classification_metrics,
    calibrated_ece_baseline,
    expected_calibration_error,
    roc_curve,
    tag_agreement,
)
from .config import JUDGES, EvalConfig
from .http_judge import JsonlCache, OpenAIJudge
from .judges import (
    PROMPT_TEMPLATES,
    Judge,
    JudgeItem,
    KeywordJudge,
    PromptTemplate,
    Verdict,
    get_prompt_template,
    parse_judge_reply,
)
from .metrics import (
    HARMFUL_SPLITS,
    SAFE_SPLITS,
    bootstrap_ci,
    compute_metrics,
    defense_success_rate,
    dsr_drop,
    false_refusal_rate,
    format_rate,
    group_table,
    helpfulness_mean,
    rate,
    safeq_helpfulness,
    split_metrics,
    tag_accuracy,
)
from .parsing import Tags, count_format_failures, extract_answer, extract_tags, response_for_judging
from .report import (
    SampleWriter,
    build_sample,
    data_hash,
    format_table,
    read_done_ids,
    read_samples,
    write_csv,
    write_results_json,
)

_LAZY = {
    "TransformersJudge": ".local_judge",
    "label_token_ids": ".local_judge",
    "plot_category_dsr": ".plots",
    "plot_roc_curves": ".plots",
    "plot_dsr_vs_frr": ".plots",
    "run_evaluation": ".run",
    "summary_rows": ".run",
    "build_eval_items": ".run",
    "build_eval_inputs": ".run",
    "generate_batch": ".run",
    "make_judge": ".run",
    "distributed_state": ".run",
    "EvalItem": ".run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HARMFUL_SPLITS",
    "JUDGES",
    "KEYWORD_LISTS",
    "PROMPT_TEMPLATES",
    "SAFE_SPLITS",
    "EvalConfig",
    "Judge",
    "JudgeItem",
    "JsonlCache",
    "KeywordJudge",
    "KeywordList",
    "OpenAIJudge",
    "PromptTemplate",
    "SampleWriter",
    "Tags",
    "Verdict",
    "alarm_head_metrics",
    "alarm_metrics_from_records",
    "auroc",
    "binary_classification_metrics",
    "bootstrap_ci",
    "build_sample",
    "compute_metrics",
    "count_format_failures",
    "data_hash",
    "defense_success_rate",
    "dsr_drop",
    "expected_calibration_error",
    "calibrated_ece_baseline",
    "extract_answer",
    "extract_tags",
    "false_refusal_rate",
    "format_rate",
    "format_table",
    "get_keyword_list",
    "get_prompt_template",
    "group_table",
    "helpfulness_mean",
    "is_refusal",
    "parse_judge_reply",
    "rate",
    "read_done_ids",
    "read_samples",
    "response_for_judging",
    "roc_curve",
    "safeq_helpfulness",
    "split_metrics",
    "tag_accuracy",
    "tag_agreement",
    "write_csv",
    "write_results_json",
    *_LAZY,
]
