"""The stage-4 (Safety-GRPO) config: ``trl.GRPOConfig`` with the paper's defaults and the fields the method adds.

Kept apart from the loss math in :mod:`videosafety_r1.grpo.loss` so each module has one job; the value tuples
here are what ``__post_init__`` validates against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import trl
from transformers.trainer_utils import SchedulerType

ADVANTAGE_SCALES = ("group", "batch", "none")
MODEL_DTYPES = ("auto", "bfloat16", "float16", "float32")
LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
SPLIT_ACCURACY_REWARDS = ("visual_label", "textual_label", "dra_rouge")
ROUGE_TOKENIZERS = ("multilingual", "rouge_score")
ON_BAD_ROW = ("raise", "skip")


@dataclass
class GRPOConfig(trl.GRPOConfig):
    """``trl.GRPOConfig`` with the paper's stage-4 defaults and the fields Safety-GRPO adds.

    Differs from the parent: defaults (loss_type grpo, beta 0.04, num_generations 6, top_p 0.95,
    max_completion_length 768, one prompt group per device step, weight decay 0.01, grad clip 5, cosine with 3%
    warmup) and the model / data / video / reward / alarm groups below, validated in ``__post_init__``. Checks TRL
    already makes (num_generations >= 2, generation batch divisible by num_generations) are left to TRL.
    """

    # --- Inherited, with the paper's defaults -------------------------------------------------------------------
    loss_type: str = field(
        default="grpo",
        metadata={
            "help": "Loss aggregation: 'grpo' (paper: token mean per sequence, then mean), 'dapo' or 'dr_grpo'."
        },
    )
    beta: float = field(default=0.04, metadata={"help": "KL coefficient against the frozen stage-3 reference."})
    num_generations: int | None = field(default=6, metadata={"help": "Completions sampled per prompt (G)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the rollouts."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus-sampling mass of the rollouts, in (0, 1]."})
    epsilon: float = field(
        default=0.2, metadata={"help": "Lower clipping range: ratios below 1 - epsilon are clipped."}
    )
    max_completion_length: int | None = field(default=768, metadata={"help": "Maximum new tokens per completion."})
    per_device_train_batch_size: int = field(
        default=6,
        metadata={"help": "Completions per device per step; the default holds one prompt's group of G = 6."},
    )
    per_device_eval_batch_size: int = field(
        default=6, metadata={"help": "Completions per device per eval step; must hold full groups."}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (paper: 0.01)."})
    max_grad_norm: float = field(default=5.0, metadata={"help": "Gradient clipping norm (paper: 5)."})
    lr_scheduler_type: SchedulerType | str = field(
        default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."}
    )
    warmup_steps: float = field(
        default=0.03, metadata={"help": "Warmup steps; a value below 1 is a fraction of all steps (paper: 0.03)."}
    )

    # --- Model -----------------------------------------------------------------------------------------------------
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Stage-3 (CoT cold start) checkpoint to train; also the frozen reference."}
    )
    model_dtype: str = field(
        default="auto", metadata={"help": "Weights dtype when loading: auto (as saved), bfloat16, float16, float32."}
    )
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "Attention kernel: sdpa, eager or flash_attention_2 (needs flash-attn)."}
    )

    # --- Data ------------------------------------------------------------------------------------------------------
    data_root: str | None = field(
        default=None, metadata={"help": "Directory that relative video paths in the data file are resolved against."}
    )
    train_file: str | None = field(default=None, metadata={"help": "GRPO training data (JSONL, canonical format)."})
    on_bad_row: str = field(
        default="raise",
        metadata={"help": "What to do with an invalid data row: 'raise' (stop, naming the row) or 'skip' (log it)."},
    )
    prompt_template: str = field(
        default="published",
        metadata={"help": "Name of the prompt template (think / answer / vidType / textType instructions)."},
    )

    # --- Video -----------------------------------------------------------------------------------------------------
    video_fps: float = field(default=1.0, metadata={"help": "Frames per second sampled from each video (paper: 1)."})
    video_max_frames: int = field(default=90, metadata={"help": "Most frames kept per video (paper: 90)."})

    # --- Rewards ---------------------------------------------------------------------------------------------------
    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "accuracy"],
        metadata={
            "help": "Reward function names, combined with reward_weights. 'accuracy' is the published safety reward; "
            "'visual_label', 'textual_label', 'dra_rouge' are its split terms (use them instead of it, never both)."
        },
    )
    alpha_min: float = field(default=0.1, metadata={"help": "ROUGE weight when both harm labels are right."})
    alpha_max: float = field(default=0.5, metadata={"help": "ROUGE weight when a harm label is wrong."})
    gamma_visual: float = field(default=1.0, metadata={"help": "Reward for the right <vidType> label."})
    gamma_textual: float = field(default=1.0, metadata={"help": "Reward for the right <textType> label."})
    rouge_tokenizer: str = field(
        default="multilingual",
        metadata={"help": "ROUGE tokenizer: 'multilingual' (any script) or 'rouge_score' (the package, Latin only)."},
    )

    # --- Alarm tokens and speed ------------------------------------------------------------------------------------
    freeze_alarm: bool = field(
        default=True, metadata={"help": "Keep the alarm vectors and heads frozen during GRPO (paper: frozen)."}
    )
    reuse_vision_features: bool = field(
        default=True,
        metadata={"help": "Run the frozen vision tower once per video and reuse it across rollouts and loss passes."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        errors = []
        if self.loss_type not in LOSS_TYPES:
            errors.append(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.model_dtype not in MODEL_DTYPES:
            errors.append(f"model_dtype must be one of {MODEL_DTYPES}, got {self.model_dtype!r}")
        if self.scale_rewards not in ADVANTAGE_SCALES:
            errors.append(f"scale_rewards must be one of {ADVANTAGE_SCALES}, got {self.scale_rewards!r}")
        if not 0 < self.epsilon < 1:
            errors.append(f"epsilon must be in (0, 1), got {self.epsilon}")
        if self.epsilon_high is not None and self.epsilon_high <= 0:
            errors.append(f"epsilon_high must be > 0, got {self.epsilon_high}")
        if self.beta < 0:
            errors.append(f"beta must be >= 0, got {self.beta}")
        if self.num_iterations < 1:
            errors.append(f"num_iterations must be >= 1, got {self.num_iterations}")
        if self.temperature <= 0:
            errors.append(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            errors.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_completion_length is not None and self.max_completion_length < 1:
            errors.append(f"max_completion_length must be >= 1, got {self.max_completion_length}")
        if not 0 <= self.alpha_min <= self.alpha_max:
            errors.append(f"need 0 <= alpha_min <= alpha_max, got {self.alpha_min}, {self.alpha_max}")
        if self.gamma_visual < 0 or self.gamma_textual < 0:
            errors.append(f"gammas must be >= 0, got {self.gamma_visual}, {self.gamma_textual}")
        if self.rouge_tokenizer not in ROUGE_TOKENIZERS:
            errors.append(f"rouge_tokenizer must be one of {ROUGE_TOKENIZERS}, got {self.rouge_tokenizer!r}")
        if self.on_bad_row not in ON_BAD_ROW:
            errors.append(f"on_bad_row must be one of {ON_BAD_ROW}, got {self.on_bad_row!r}")
        if not self.prompt_template:
            errors.append("prompt_template must name a template")
        if self.video_fps <= 0 or self.video_max_frames < 1:
            errors.append(
                f"need video_fps > 0 and video_max_frames >= 1, got {self.video_fps}, {self.video_max_frames}"
            )
        errors += self._check_rewards()
        errors += _check_vllm_fields(self)
        if errors:
            raise ValueError("invalid GRPOConfig:\n  " + "\n  ".join(errors))

    def _check_rewards(self) -> list[str]:
        names = list(self.reward_funcs)
        errors = []
        if not names:
            errors.append("reward_funcs must name at least one reward")
        if len(set(names)) != len(names):
            errors.append(f"reward_funcs has duplicates: {names}")
        split = [n for n in names if n in SPLIT_ACCURACY_REWARDS]
        if "accuracy" in names and split:
            errors.append(f"reward_funcs has 'accuracy' and its split terms {split}: use one or the other")
        if self.reward_weights is not None and len(self.reward_weights) != len(names):
            errors.append(
                f"reward_weights has {len(self.reward_weights)} values for {len(names)} reward_funcs {names}"
            )
        return errors

    @property
    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``load_pretrained`` of the policy (and of the reference, when reloaded)."""
        dtype = "auto" if self.model_dtype == "auto" else getattr(torch, self.model_dtype)
        return {**(self.model_init_kwargs or {}), "dtype": dtype, "attn_implementation": self.attn_implementation}

    @property
    def reward_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the accuracy reward and its split terms, taken from this config."""
        return {
            "alpha_min": self.alpha_min,
            "alpha_max": self.alpha_max,
            "gamma_visual": self.gamma_visual,
            "gamma_textual": self.gamma_textual,
            "rouge_tokenizer": self.rouge_tokenizer,
        }


def _check_vllm_fields(config: GRPOConfig) -> list[str]:
    """``use_vllm`` / ``vllm_*`` problems, each naming its field (see :mod:`videosafety_r1.grpo.vllm_config`)."""
    from .vllm_config import check_vllm_fields

    return check_vllm_fields(config)
