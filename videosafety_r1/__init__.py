"""videosafety-r1: alarm tokens, AT-SFT and Safety-GRPO for safer Video LLMs.

    import videosafety_r1 as vsr
    model, processor = vsr.load_pretrained("path/or/hub-id")      # any supported Video LLM
    model = vsr.add_alarm_tokens(model, processor)                  # alarm vectors + harm heads
    vsr.predict_harm(model, processor, ["clip.mp4"], ["How do I ...?"])

Trainers (`ATSFTTrainer`, `VideoGRPOTrainer`) and evaluation (`run_evaluation`) load on first use, so importing
the package stays light.
"""

from importlib import import_module
from typing import Any

from videosafety_r1.alarm import (
    AlarmConfig,
    AlarmVideoLLM,
    add_alarm_tokens,
    calibrate_alarm_heads,
    export_plain_checkpoint,
    insert_alarm_tokens,
    load_pretrained,
    save_pretrained,
)
from videosafety_r1.data import (
    DataValidationError,
    VideoDecodeError,
    load_dataset_checked,
    load_video,
    make_synthetic_dataset,
)
from videosafety_r1.errors import InputError
from videosafety_r1.rewards import (
    accuracy_reward,
    dra_rouge_reward,
    format_reward,
    get_reward_func,
    rouge_scores,
    textual_label_reward,
    visual_label_reward,
)

__version__ = "0.1.0"

_LAZY = {
    "build_alarm_inputs": "videosafety_r1.inference",
    "predict_harm": "videosafety_r1.inference",
    "grpo_prompt_text": "videosafety_r1.inputs",
    "Tags": "videosafety_r1.tags",
    "parse_tags": "videosafety_r1.tags",
    "ATSFTConfig": "videosafety_r1.sft",
    "ATSFTTrainer": "videosafety_r1.sft",
    "GRPOConfig": "videosafety_r1.grpo",
    "group_advantages": "videosafety_r1.grpo",
    "grpo_loss": "videosafety_r1.grpo",
    "VideoGRPOTrainer": "videosafety_r1.grpo.trainer",
    "EvalConfig": "videosafety_r1.evaluation",
    "run_evaluation": "videosafety_r1.evaluation",
    "is_refusal": "videosafety_r1.evaluation",
    "extract_answer": "videosafety_r1.evaluation",
    "load_config": "videosafety_r1.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videosafety_r1' has no attribute {name!r}")


__all__ = [
    "AlarmConfig",
    "AlarmVideoLLM",
    "DataValidationError",
    "InputError",
    "VideoDecodeError",
    "__version__",
    "accuracy_reward",
    "add_alarm_tokens",
    "dra_rouge_reward",
    "export_plain_checkpoint",
    "format_reward",
    "get_reward_func",
    "insert_alarm_tokens",
    "load_dataset_checked",
    "load_pretrained",
    "load_video",
    "make_synthetic_dataset",
    "calibrate_alarm_heads",
    "rouge_scores",
    "save_pretrained",
    "textual_label_reward",
    "visual_label_reward",
    *_LAZY,
]
