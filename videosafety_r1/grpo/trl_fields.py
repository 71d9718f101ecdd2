"""Which of ``trl.GRPOConfig``'s own fields :class:`~videosafety_r1.grpo.VideoGRPOTrainer` implements, and which it
rejects at config time.

Every own field of ``trl.GRPOConfig`` (TRL 1.16; ``TrainingArguments`` fields keep their transformers meaning through
the Trainer) is in exactly one of :data:`IMPLEMENTED`, :data:`REJECTED` or the vLLM group checked by
``config._check_vllm_fields``. A rejected field set to anything but TRL's default is a config error naming the field
and what to use instead; docs/grpo.md carries the same table and a test walks all of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import trl

# field -> what to do instead (the error message's second half)
REJECTED: dict[str, str] = {
    "trust_remote_code": "the supported families load natively from transformers; no remote code is run",
    "router_aux_loss_coef": "the supported families are dense, there is no MoE router loss to weight",
    "cast_lm_head_to_fp32": "load the model in float32 (dtype: float32) for an fp32 head",
    "num_generations_eval": "VideoGRPOTrainer runs no in-training evaluation; use recipes/evaluate.py",
    "pad_to_multiple_of": "completions are padded to the longest one (only Neuron needs fixed multiples)",
    "chat_template_kwargs": "prompts are built by the prompt collator from prompt_template",
    "cache_implementation": "generation uses the model's default KV cache",
    "sapo_temperature_neg": "only loss_type='sapo' reads it, which is not implemented",
    "sapo_temperature_pos": "only loss_type='sapo' reads it, which is not implemented",
    "vespo_k_pos": "only loss_type='vespo' reads it, which is not implemented",
    "vespo_lambda_pos": "only loss_type='vespo' reads it, which is not implemented",
    "vespo_k_neg": "only loss_type='vespo' reads it, which is not implemented",
    "vespo_lambda_neg": "only loss_type='vespo' reads it, which is not implemented",
    "max_tool_calling_iterations": "tool calling is not supported",
    "log_multimodal": "videos are not logged with the samples; completions.jsonl rows carry the prompt text",
    "log_completions_hub_repo": "completions.jsonl in output_dir holds every sample; upload it yourself",
    "use_transformers_continuous_batching": "generation uses transformers' generate (vLLM: see use_vllm)",
    "transformers_continuous_batching_config": "generation uses transformers' generate (vLLM: see use_vllm)",
    "use_transformers_paged": "generation uses transformers' generate (vLLM: see use_vllm)",
}

IMPLEMENTED: tuple[str, ...] = (
    "model_init_kwargs",
    "disable_dropout",
    "num_generations",
    "max_completion_length",
    "ds3_gather_for_generation",
    "shuffle_dataset",
    "generation_batch_size",
    "steps_per_generation",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "generation_kwargs",
    "repetition_penalty",
    "beta",
    "num_iterations",
    "epsilon",
    "delta",
    "epsilon_high",
    "importance_sampling_level",
    "reward_weights",
    "multi_objective_aggregation",
    "scale_rewards",
    "loss_type",
    "mask_truncated_completions",
    "sync_ref_model",
    "ref_model_mixup_alpha",
    "ref_model_sync_steps",
    "top_entropy_quantile",
    "entropy_coef",
    "use_adaptive_entropy",
    "entropy_coef_min",
    "entropy_coef_max",
    "entropy_coef_delta",
    "entropy_target",
    "off_policy_mask_threshold",
    "use_bias_correction_kl",
    "log_completions",
    "num_completions_to_print",
    "log_unique_prompts",
)


def trl_default(name: str) -> Any:
    """TRL 1.16's default of one of ``trl.GRPOConfig``'s fields."""
    f = {f.name: f for f in dataclasses.fields(trl.GRPOConfig)}[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def check_trl_fields(config: trl.GRPOConfig) -> list[str]:
    """One error per rejected field set away from its default (TRL's, or the subclass's where it says what we do,
    as ``log_multimodal=False``; ``pad_to_multiple_of``: anything but unset)."""
    defaults = {f.name: f for f in dataclasses.fields(config)}
    errors = []
    for name, instead in REJECTED.items():
        value = getattr(config, name)
        f = defaults[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if name == "pad_to_multiple_of":
            default = None  # TRL resolves "auto" to None off Neuron
        if value != default:
            errors.append(f"{name}={value!r} is not supported by VideoGRPOTrainer: {instead}")
    return errors
