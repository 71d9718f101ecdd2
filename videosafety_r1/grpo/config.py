"""The stage-4 (Safety-GRPO) config: ``trl.GRPOConfig`` with the paper's defaults and the fields the method adds.

Kept apart from the loss math in :mod:`videosafety_r1.grpo.loss` so each module has one job; the value tuples
here are what ``__post_init__`` validates against.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trl
from transformers.trainer_utils import SchedulerType

from ..config import apply_checkpointing_alias, training_length_problems
from ..constants import parse_dtype
from .trl_fields import check_trl_fields

logger = logging.getLogger(__name__)

ADVANTAGE_SCALES = ("group", "batch", "none")
MODEL_DTYPES = ("auto", "bfloat16", "float16", "float32")
LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
MULTI_OBJECTIVE_AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")
SPLIT_ACCURACY_REWARDS = ("visual_label", "textual_label", "dra_rouge")
ROUGE_TOKENIZERS = ("multilingual", "rouge_score")
ON_BAD_ROW = ("error", "skip")
PROMPT_TEMPLATES = ("published",)
# fields of the accuracy-reward group: bound to every reward that accepts them (see GRPOConfig.reward_params)
REWARD_PARAM_FIELDS = ("alpha_min", "alpha_max", "gamma_visual", "gamma_textual", "rouge_tokenizer")


# sampling values checked alike as fields and as generation_kwargs keys (NaN fails every test)
_RANGES = {"top_p": (lambda v: 0 < v <= 1, "in (0, 1]"), "min_p": (lambda v: 0 <= v <= 1, "in [0, 1]")}


def _sampling_kwargs_problems(kwargs: dict[str, Any]) -> list[str]:
    """Problems with the sampling keys of ``generation_kwargs``, which override the fields of the same name at the
    first rollout; other keys are left to the generator."""
    problems = []
    if "temperature" in kwargs:  # the loss divides the logits by `temperature`, not by this one
        problems.append(
            "generation_kwargs.temperature: set `temperature` instead (the policy's log-probabilities are taken at "
            "`temperature`, so sampling at another one scores completions under a distribution that did not sample "
            "them)"
        )
    if kwargs.get("do_sample", True) is not True:
        problems.append(
            f"generation_kwargs.do_sample must be true, got {kwargs['do_sample']!r} (greedy rollouts make a "
            "group's completions identical and every advantage 0)"
        )
    for key, (ok, rule) in _RANGES.items():
        value = kwargs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value)):
            problems.append(f"generation_kwargs.{key} must be {rule}, got {value!r}")
    top_k = kwargs.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        problems.append(f"generation_kwargs.top_k must be an integer >= 0, got {top_k!r}")
    return problems


@dataclass
class GRPOConfig(trl.GRPOConfig):
    """``trl.GRPOConfig`` with the paper's stage-4 defaults and the fields Safety-GRPO adds.

    Differs from the parent: defaults (loss_type grpo, beta 0.04, num_generations 6, top_p 0.95,
    max_completion_length 768, one prompt group per device step, weight decay 0.01, grad clip 5, cosine with 3%
    warmup) and the model / data / video / reward / alarm groups below, validated in ``__post_init__``. Checks TRL
    already makes (num_generations >= 2, generation batch divisible by num_generations) are left to TRL.
    """

    #: old keys, refused by ``load_config`` naming the new one
    renamed_fields: ClassVar[dict[str, str]] = {
        "model_dtype": "dtype",
        "fps": "video_fps",
        "max_frames": "video_max_frames",
    }

    # --- Inherited, with the paper's defaults -------------------------------------------------------------------
    # transformers 5.24 renamed gradient_checkpointing to activation_checkpointing; TRL's GRPO default (on) is kept
    # under the new name, so a config that sets neither raises no deprecation warning
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in the backward pass (TRL's GRPO default: on)."}
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Deprecated alias of activation_checkpointing (transformers 5).",
            "nargs": "?",
            "const": True,
        },
    )
    loss_type: str = field(
        default="grpo",
        metadata={
            "help": "Loss aggregation, as TRL: 'grpo' (paper: token mean per sequence, then mean), 'bnpo' (token mean "
            "of the micro-batch), 'dapo' (token sum / active tokens of the whole generation batch over processes and "
            "accumulation steps) or 'dr_grpo' (sum / (rows x max_completion_length))."
        },
    )
    use_bias_correction_kl: bool = field(
        default=False,
        metadata={
            "help": "Multiply the k3 KL by the importance ratio, as TRL (whose default is True). Paper: False, the "
            "plain k3 KL."
        },
    )
    log_multimodal: bool = field(
        default=False,
        metadata={"help": "Log media with the sample table. Videos are never logged here, so only False is accepted."},
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
    dtype: str = field(
        default="auto", metadata={"help": "Weights dtype when loading: auto (as saved), bfloat16, float16, float32."}
    )
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "Attention kernel: sdpa, eager or flash_attention_2 (needs flash-attn)."}
    )

    # --- Data ------------------------------------------------------------------------------------------------------
    data_root: list[str] | None = field(
        default=None,
        metadata={
            "help": "Folder(s) that relative media paths are resolved against (and must stay under): one for every "
            "train_file, or one per file."
        },
    )
    train_file: list[str] | None = field(
        default=None, metadata={"help": "GRPO training data: one JSONL file or several (canonical or published)."}
    )
    on_bad_row: str = field(
        default="error",
        metadata={"help": "What to do with an invalid data row: 'error' (stop, naming the row) or 'skip' (log it)."},
    )
    prompt_template: str = field(
        default="published",
        metadata={"help": "Prompt template (think / answer / vidType / textType instructions); only 'published'."},
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
    reward_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments per reward, {reward name: {argument: value}} (a JSON string on the command "
            "line); names must be in reward_funcs and arguments in the function's signature."
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
    vllm_weight_transport: str = field(
        default="auto",
        metadata={
            "help": "vllm_mode='server': how weight pushes reach the server. 'nccl' (TRL's weight-update group on "
            "vllm_group_port; the trainer on CUDA), 'gloo' (the same group over TCP with CPU tensors), 'file' "
            "(a safetensors folder under output_dir/vllm-push and a reload call; needs a shared filesystem), or "
            "'auto' (nccl when the trainer is on CUDA, file otherwise)."
        },
    )
    # --- Outputs (applied by recipes/grpo.py through videosafety_r1.runs.resume_checkpoint) ------------------------
    on_existing_output: str = field(
        default="resume",
        metadata={
            "help": "output_dir already holds a run: resume (when its saved config matches, else refuse naming the "
            "differing fields), error (always refuse) or overwrite (delete its outputs, start fresh)."
        },
    )
    export_plain: bool = field(
        default=True,
        metadata={"help": "Also write <output_dir>/export, a plain transformers checkpoint (as AT-SFT's field)."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.train_file, str):
            self.train_file = [self.train_file]
        if isinstance(self.data_root, (str, os.PathLike)):
            self.data_root = [str(self.data_root)]
        apply_checkpointing_alias(self)  # transformers < 5.24 knows only gradient_checkpointing
        if isinstance(self.reward_kwargs, str):
            try:
                self.reward_kwargs = json.loads(self.reward_kwargs)
            except json.JSONDecodeError as err:
                raise ValueError(f"invalid GRPOConfig:\n  reward_kwargs is not valid JSON: {err}") from None
        super().__post_init__()
        errors = (
            self._check_choices()
            + self._check_ranges()
            + check_trl_fields(self)
            + _check_vllm_fields(self)
            + self._check_rewards()
        )
        if errors:
            raise ValueError("invalid GRPOConfig:\n  " + "\n  ".join(errors))
        upper = 1 + (self.epsilon_high if self.epsilon_high is not None else self.epsilon)
        if self.delta is not None and self.delta <= upper:
            logger.warning("delta=%s is not above 1 + epsilon_high = %s, as TRL recommends", self.delta, upper)
        if self.importance_sampling_level == "sequence" and self.loss_type in ("bnpo", "dr_grpo", "dapo"):
            logger.warning(
                "importance_sampling_level='sequence' with loss_type=%r sums per-token terms, weighting each sequence "
                "by its length; GSPO as published uses loss_type='grpo'",
                self.loss_type,
            )

    def _check_choices(self) -> list[str]:
        choices = {
            "loss_type": LOSS_TYPES,
            "dtype": MODEL_DTYPES,
            "scale_rewards": ADVANTAGE_SCALES,
            "importance_sampling_level": IMPORTANCE_SAMPLING_LEVELS,
            "multi_objective_aggregation": MULTI_OBJECTIVE_AGGREGATIONS,
            "rouge_tokenizer": ROUGE_TOKENIZERS,
            "on_bad_row": ON_BAD_ROW,
            "prompt_template": PROMPT_TEMPLATES,
        }
        errors = []
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                hint = ""
                if name == "loss_type" and value in ("cispo", "sapo", "luspo", "vespo"):
                    hint = f" ({value!r} is a TRL loss that VideoGRPOTrainer does not implement)"
                errors.append(f"{name} must be one of {allowed}, got {value!r}{hint}")
        return errors

    def _check_ranges(self) -> list[str]:
        errors = training_length_problems(self)
        if not 0 < self.epsilon < 1:
            errors.append(f"epsilon must be in (0, 1), got {self.epsilon}")
        if self.epsilon_high is not None and not self.epsilon_high > 0:  # NaN too, as below
            errors.append(f"epsilon_high must be > 0, got {self.epsilon_high}")
        if self.delta is not None and not self.delta > 0:
            errors.append(f"delta must be > 0, got {self.delta}")
        if not (math.isfinite(self.beta) and self.beta >= 0):  # inf: inf * KL 0 is a NaN loss at the first step
            errors.append(f"beta must be a finite number >= 0, got {self.beta}")
        if self.num_iterations < 1:
            errors.append(f"num_iterations must be >= 1, got {self.num_iterations}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            errors.append(f"temperature must be a finite number > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 0:
            errors.append(f"top_k must be >= 0 (0 turns top-k filtering off, TRL's meaning), got {self.top_k}")
        for key, (ok, rule) in _RANGES.items():
            value = getattr(self, key)
            if value is not None and not ok(value):
                errors.append(f"{key} must be {rule}, got {value}")
        if not self.repetition_penalty > 0:
            errors.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if not 0 <= self.top_entropy_quantile <= 1:
            errors.append(f"top_entropy_quantile must be in [0, 1], got {self.top_entropy_quantile}")
        if not self.entropy_coef_min <= self.entropy_coef_max:
            errors.append(
                f"need entropy_coef_min <= entropy_coef_max, got {self.entropy_coef_min}, {self.entropy_coef_max}"
            )
        if self.generation_kwargs is not None and not isinstance(self.generation_kwargs, dict):
            errors.append(f"generation_kwargs must be a mapping, got {type(self.generation_kwargs).__name__}")
        elif self.generation_kwargs:  # they override the fields above at the first rollout: same checks, now
            errors += _sampling_kwargs_problems(self.generation_kwargs)
        if self.max_completion_length is not None and self.max_completion_length < 1:
            errors.append(f"max_completion_length must be >= 1, got {self.max_completion_length}")
        if not 0 <= self.alpha_min <= self.alpha_max:
            errors.append(f"need 0 <= alpha_min <= alpha_max, got {self.alpha_min}, {self.alpha_max}")
        if not (self.gamma_visual >= 0 and self.gamma_textual >= 0):  # NaN too: every reward would be NaN
            errors.append(
                f"gamma_visual and gamma_textual must be >= 0, got {self.gamma_visual}, {self.gamma_textual}"
            )
        if not (math.isfinite(self.video_fps) and self.video_fps > 0) or self.video_max_frames < 1:
            errors.append(
                "need video_fps a finite number > 0 and video_max_frames >= 1, got "
                f"{self.video_fps}, {self.video_max_frames}"
            )
        return errors

    def _check_rewards(self) -> list[str]:
        """Names resolve now (registry or ``package.module:function``), before any model loads; so do the
        per-reward keyword arguments of ``reward_kwargs``."""
        from ..rewards import reward_signature_errors

        names = list(self.reward_funcs)
        errors = []
        if not names:
            errors.append("reward_funcs must name at least one reward")
        if len(set(names)) != len(names):
            errors.append(f"reward_funcs has duplicates: {names}")
        else:  # metrics are keyed by the function part ("rewards/<name>/mean"): two rewards must not share one
            logged = [n.rpartition(":")[2] for n in names]
            clashes = sorted({n for n in logged if logged.count(n) > 1})
            if clashes:
                errors.append(f"reward_funcs {names} log two rewards as {clashes}: rename one of the functions")
        split = [n for n in names if n in SPLIT_ACCURACY_REWARDS]
        if "accuracy" in names and split:
            errors.append(f"reward_funcs has 'accuracy' and its split terms {split}: use one or the other")
        if self.reward_weights is not None and len(self.reward_weights) != len(names):
            errors.append(
                f"reward_weights has {len(self.reward_weights)} values for {len(names)} reward_funcs {names}"
            )
        per_reward = self.reward_kwargs or {}
        if not isinstance(per_reward, dict) or not all(isinstance(v, dict) for v in per_reward.values()):
            return errors + [f"reward_kwargs must map reward names to mappings of arguments, got {per_reward!r}"]
        for name in per_reward:
            if name not in names:
                errors.append(f"reward_kwargs names {name!r}, which is not in reward_funcs {names}")
        for name in names:
            kwargs = per_reward.get(name, {})
            shared = sorted(set(kwargs) & set(REWARD_PARAM_FIELDS))
            if shared:
                errors.append(f"reward_kwargs[{name!r}] sets {shared}: set them as top-level config fields")
            errors += reward_signature_errors(name, kwargs)
        return errors

    @property
    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``load_pretrained`` of the policy (and of the reference, when reloaded)."""
        dtype = parse_dtype(self.dtype)
        return {**(self.model_init_kwargs or {}), "dtype": dtype, "attn_implementation": self.attn_implementation}

    @property
    def reward_params(self) -> dict[str, Any]:
        """The accuracy-reward group (``alpha_*``, ``gamma_*``, ``rouge_tokenizer``), bound to every reward whose
        signature accepts them."""
        return {name: getattr(self, name) for name in REWARD_PARAM_FIELDS}

    def reward_kwargs_for(self, name: str) -> dict[str, Any]:
        """``reward_kwargs[name]`` (a copy; empty when the reward has none)."""
        return dict((self.reward_kwargs or {}).get(name, {}))


def _check_vllm_fields(config: GRPOConfig) -> list[str]:
    """``use_vllm`` / ``vllm_*`` problems, each naming its field (see :mod:`videosafety_r1.grpo.vllm_config`)."""
    from .vllm_config import check_vllm_fields

    return check_vllm_fields(config)
