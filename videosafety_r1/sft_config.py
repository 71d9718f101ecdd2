"""``ATSFTConfig``: ``trl.SFTConfig`` plus the method's model, alarm, data, LoRA and output settings.

Every own field of ``trl.SFTConfig`` either acts as TRL documents it or is rejected here, at config time, naming the
field and what to use instead (docs/training.md has the table). ``TrainingArguments`` fields keep their transformers
meaning: the ``transformers.Trainer`` underneath reads them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import trl

from videosafety_r1.alarm import AlarmConfig
from videosafety_r1.alarm.tokens import ALARM_INITS
from videosafety_r1.config import apply_checkpointing_alias, training_length_problems
from videosafety_r1.runs import ON_EXISTING_OUTPUT

__all__ = ["ATSFTConfig", "COT_HEAD_LOSSES", "STAGES", "SFT_FIELD_SUPPORT", "MODEL_DTYPES"]

STAGES = ("alarm_init", "atc", "cot")
COT_HEAD_LOSSES = ("none", "joint", "detached")
MODEL_DTYPES = ("auto", "bfloat16", "float16", "float32")
# what each stage trains besides the LLM; the heads train exactly when their loss is on (`heads_in_loss`)
_STAGE_SWITCHES = {
    "alarm_init": dict(train_vectors=True),
    "atc": dict(train_vectors=True),
    "cot": dict(train_vectors=False),
}
_NO_PACKING = "AT-SFT batches carry one conversation per row (the alarm positions and head labels are per row)"

# trl.SFTConfig's own fields: "implemented: how" or the rejection text naming the alternative. A test walks them all.
SFT_FIELD_SUPPORT: dict[str, str] = {
    "model_init_kwargs": "implemented: forwarded to from_pretrained (not dtype / attn_implementation: own fields)",
    "trust_remote_code": "rejected: the supported families load natively; remote code is never run",
    "router_aux_loss_coef": "rejected: no Mixture-of-Experts family is supported",
    "chat_template_path": "rejected: alarm placement follows the family's own chat template; keep it",
    "dataset_text_field": "rejected: rows follow the SFT schema of docs/data.md, there is no text column",
    "dataset_kwargs": "rejected: there is no dataset preparation step; rows are built on the fly by the collator",
    "dataset_num_proc": "rejected: rows are processed on the fly; use dataloader_num_workers",
    "eos_token": "rejected: the processor's chat template ends turns; set it on the processor",
    "max_length": "implemented: the longest tokenized row (vision tokens included); over-long rows follow "
    "`truncation` (error | drop), never cut, since cutting would drop vision tokens or alarm positions",
    "truncation_mode": "implemented for keep_start (the default); keep_end is rejected: TRL deprecates it",
    "shuffle_dataset": "implemented: the training rows are shuffled once with `seed` before training",
    "packing": f"rejected: {_NO_PACKING}",
    "packing_strategy": f"rejected: only used with packing. {_NO_PACKING}",
    "padding_free": f"rejected: {_NO_PACKING}; padding is needed for the batched vision inputs",
    "pad_to_multiple_of": "implemented for 'auto' (TRL's default: no padding off Neuron); an int is rejected: the "
    "collator pads each batch to its longest row",
    "eval_packing": f"rejected: {_NO_PACKING}",
    "completion_only_loss": "implemented for None (TRL's default: the dataset decides; AT-SFT rows are conversations);"
    " True / False are rejected: the loss covers assistant turns, set by assistant_only_loss",
    "assistant_only_loss": "implemented for True (the default here): loss on assistant tokens only; False is "
    "rejected: AT-SFT never trains on user or system text",
    "loss_type": "implemented for nll (and TRL's alias chunked_nll); dft is rejected: use nll",
    "activation_offloading": "rejected: use gradient_checkpointing to save activation memory",
    "pad_token": "rejected: TRL deprecates it; set processor.tokenizer.pad_token",
}


@dataclass
class ATSFTConfig(trl.SFTConfig):
    """`trl.SFTConfig` plus the method's model, alarm, data and LoRA settings (grouped below)."""

    renamed_fields: ClassVar[dict[str, str]] = {
        "model_dtype": "dtype",
        "fps": "video_fps",
        "max_frames": "video_max_frames",
    }

    # TRL / transformers fields whose AT-SFT default differs (and whose other value is rejected below)
    assistant_only_loss: bool = field(
        default=True, metadata={"help": "Loss on assistant tokens only (AT-SFT supports only True)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: batches carry alarm labels the model signature lacks."}
    )
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing; TRL's default (on) is kept under
    # the new name, so a config that sets neither raises no deprecation warning
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in the backward pass (TRL's default: on)."}
    )
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Deprecated alias of activation_checkpointing (transformers 5).",
            "nargs": "?",
            "const": True,
        },
    )
    # model
    model_name_or_path: str | None = field(default=None, metadata={"help": "Hub id or local checkpoint to train."})
    dtype: str = field(default="auto", metadata={"help": "auto, bfloat16, float16 or float32."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2."})
    # alarm
    stage: str = field(default="atc", metadata={"help": "alarm_init, atc or cot (see videosafety_r1.sft)."})
    lambda_visual: float = field(default=0.1, metadata={"help": "Weight of the visual-head BCE term."})
    lambda_textual: float = field(default=0.1, metadata={"help": "Weight of the textual-head BCE term."})
    cot_head_loss: str = field(
        default="none",
        metadata={
            "help": "Head BCE in the cot stage: none (published: heads frozen, LM loss only), joint (the ATC loss "
            "kept as an auxiliary term: heads train and their BCE reaches the LLM) or detached (heads train on the "
            "final hidden state with its gradient stopped: they follow the LLM, whose loss stays the LM loss)."
        },
    )
    alarm_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the alarm vectors."})
    head_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the two heads."})
    alarm_init: str = field(default="zeros", metadata={"help": "Alarm vector init when tokens are new."})
    freeze_vision: bool = field(
        default=True,
        metadata={
            "help": "Keep the vision tower and projector frozen (the paper); false trains them with the LLM. Saved "
            "in alarm_config.json: later stages loading the checkpoint (GRPO) keep the choice."
        },
    )
    # data
    train_file: list[str] | None = field(
        default=None, metadata={"help": "Training JSONL file(s) (canonical or published); several are concatenated."}
    )
    data_root: list[str] | None = field(
        default=None,
        metadata={"help": "Media folder(s): one for every train_file, or one per train_file in the same order."},
    )
    eval_file: str | None = field(default=None, metadata={"help": "Optional held-out JSONL for head accuracy."})
    eval_data_root: str | None = field(default=None, metadata={"help": "Media root of eval_file (default data_root)."})
    video_fps: float = field(default=1.0, metadata={"help": "Frames sampled per second of video."})
    video_max_frames: int = field(default=90, metadata={"help": "Cap on sampled frames (uniform subsampling)."})
    truncation: str = field(default="error", metadata={"help": "Rows longer than max_length: error or drop."})
    on_bad_row: str = field(default="error", metadata={"help": "Invalid rows at start-up: error or skip."})
    # LoRA
    use_lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of the full LLM."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        metadata={
            "help": "Regex (full match) of LLM modules that get adapters; with freeze_vision, vision-tower and "
            "projector modules it matches are left out (logged), and a pattern matching only those is refused."
        },
    )
    # outputs
    export_plain: bool = field(default=True, metadata={"help": "Also write a plain transformers export."})
    on_existing_output: str = field(
        default="resume",
        metadata={
            "help": "output_dir already holds a run: resume (when its saved config matches, else refuse naming the "
            "differing fields), error (always refuse) or overwrite (delete its outputs, start fresh)."
        },
    )

    def __post_init__(self) -> None:
        problems = self._sft_field_problems() + self._own_problems()
        if problems:
            raise ValueError("invalid ATSFTConfig:\n  " + "\n  ".join(problems))  # one per line, as GRPOConfig
        if isinstance(self.train_file, str):
            self.train_file = [self.train_file]
        if isinstance(self.data_root, str):
            self.data_root = [self.data_root]
        if (
            getattr(self, "activation_checkpointing_kwargs", None) is None
            and self.gradient_checkpointing_kwargs is None
        ):
            self.activation_checkpointing_kwargs = {"use_reentrant": False}
        apply_checkpointing_alias(self)  # transformers < 5.24 knows only gradient_checkpointing
        super().__post_init__()
        if self.label_names is None:
            self.label_names = ["labels"]  # the wrapper's forward takes **kwargs, so the Trainer cannot infer it

    def _sft_field_problems(self) -> list[str]:
        """Non-default values of rejected trl.SFTConfig fields, each with the alternative."""
        rejected = {
            "trust_remote_code": self.trust_remote_code,
            "router_aux_loss_coef": self.router_aux_loss_coef is not None,
            "chat_template_path": self.chat_template_path is not None,
            "dataset_text_field": self.dataset_text_field != "text",
            "dataset_kwargs": self.dataset_kwargs is not None,
            "dataset_num_proc": self.dataset_num_proc is not None,
            "eos_token": self.eos_token is not None,
            "truncation_mode": self.truncation_mode != "keep_start",
            "packing": self.packing,
            "packing_strategy": self.packing_strategy != "bfd",
            "padding_free": self.padding_free,
            "pad_to_multiple_of": self.pad_to_multiple_of not in ("auto", None),
            "eval_packing": self.eval_packing is not None,
            "completion_only_loss": self.completion_only_loss is not None,
            "assistant_only_loss": not self.assistant_only_loss,
            "loss_type": self.loss_type not in ("nll", "chunked_nll"),
            "activation_offloading": self.activation_offloading,
            "pad_token": self.pad_token is not None,
            "remove_unused_columns": self.remove_unused_columns,
            "label_smoothing_factor": self.label_smoothing_factor != 0,
        }
        reasons = {
            **SFT_FIELD_SUPPORT,
            "remove_unused_columns": "rejected: batches carry alarm labels",
            "label_smoothing_factor": "rejected: the LM term is the model's own cross-entropy (method.md); use 0",
        }
        problems = [f"{name}={getattr(self, name)!r}: {reasons[name]}" for name, bad in rejected.items() if bad]
        kwargs = self.model_init_kwargs
        if isinstance(kwargs, dict):
            for key, own in (
                ("dtype", "dtype"),
                ("torch_dtype", "dtype"),
                ("attn_implementation", "attn_implementation"),
            ):
                if key in kwargs:
                    problems.append(f"model_init_kwargs[{key!r}]: set the {own} field instead")
            if kwargs.get("trust_remote_code"):
                problems.append("model_init_kwargs['trust_remote_code'] is rejected: remote code is never run")
        return problems

    def _own_problems(self) -> list[str]:
        problems = []
        if self.stage not in STAGES:
            problems.append(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.dtype not in MODEL_DTYPES:
            problems.append(f"dtype must be one of {MODEL_DTYPES}, got {self.dtype!r}")
        if self.truncation not in ("error", "drop"):
            problems.append(f"truncation must be error or drop, got {self.truncation!r}")
        if self.on_bad_row not in ("error", "skip"):
            problems.append(f"on_bad_row must be error or skip, got {self.on_bad_row!r}")
        if self.on_existing_output not in ON_EXISTING_OUTPUT:
            problems.append(f"on_existing_output must be one of {ON_EXISTING_OUTPUT}, got {self.on_existing_output!r}")
        if not self.freeze_vision and self.use_lora:
            problems.append(
                "freeze_vision: false trains the whole vision tower, but use_lora trains adapters only (on the "
                "lora_target_modules, LLM modules); set use_lora: false to train the tower"
            )
        problems += training_length_problems(self)
        lora_set = [
            f.name
            for f in dataclasses.fields(self)
            if f.name.startswith("lora_") and getattr(self, f.name) != f.default
        ]
        if lora_set and not self.use_lora:
            problems.append(f"{', '.join(lora_set)} would be ignored: set use_lora: true to train LoRA adapters")
        if self.use_lora and not (self.lora_r >= 1 and self.lora_alpha > 0 and 0 <= self.lora_dropout < 1):
            problems.append(
                f"LoRA needs lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1; got {self.lora_r}, "
                f"{self.lora_alpha}, {self.lora_dropout}"
            )
        if min(self.lambda_visual, self.lambda_textual) < 0:
            problems.append("lambda_visual and lambda_textual must be >= 0")
        if self.cot_head_loss not in COT_HEAD_LOSSES:
            problems.append(f"cot_head_loss must be one of {COT_HEAD_LOSSES}, got {self.cot_head_loss!r}")
        elif self.cot_head_loss != "none" and self.lambda_visual == self.lambda_textual == 0:
            problems.append(f"cot_head_loss: {self.cot_head_loss} with both lambdas 0 would train nothing")
        elif self.cot_head_loss != "none" and self.stage != "cot":
            problems.append(
                f"cot_head_loss: {self.cot_head_loss} acts in stage cot only (stage is {self.stage}; atc always "
                "trains the heads, alarm_init never does)"
            )
        elif not self.heads_in_loss:
            # the default or 0 agree with a stage that has no head loss (0: the published configs' "frozen")
            unused = [
                f"{k}: {getattr(self, k)}"
                for k in ("lambda_visual", "lambda_textual")
                if getattr(self, k) not in (0.0, 0.1)
            ]
            if self.head_learning_rate not in (0.0, 1e-5):
                unused.append(f"head_learning_rate: {self.head_learning_rate}")
            if unused:
                problems.append(
                    f"{', '.join(unused)} would be ignored: stage {self.stage} has no head loss and trains no head (atc "
                    "has one, and cot with cot_head_loss: joint or detached)"
                )
        if self.stage == "cot" and self.alarm_learning_rate not in (0.0, 1e-5):
            problems.append(
                f"alarm_learning_rate: {self.alarm_learning_rate} would be ignored: stage cot keeps the alarm vectors frozen"
            )
        if self.alarm_init not in ALARM_INITS:
            problems.append(f"alarm_init must be one of {ALARM_INITS}, got {self.alarm_init!r}")
        if not (math.isfinite(self.video_fps) and self.video_fps > 0):
            problems.append(f"video_fps must be a finite number > 0, got {self.video_fps}")
        if self.video_max_frames < 1:
            problems.append(f"video_max_frames must be >= 1, got {self.video_max_frames}")
        if self.max_length is not None and self.max_length < 1:
            problems.append(f"max_length must be >= 1 or None, got {self.max_length}")
        files = [self.train_file] if isinstance(self.train_file, str) else self.train_file or []
        roots = [self.data_root] if isinstance(self.data_root, str) else self.data_root or []
        if len(roots) > 1 and len(roots) != len(files):
            problems.append(f"data_root has {len(roots)} folders for {len(files)} train_file(s): give one or one each")
        return problems

    @property
    def heads_in_loss(self) -> bool:
        """Whether the head BCE terms enter the loss (and the heads train): ATC, or CoT with `cot_head_loss`."""
        return self.stage == "atc" or (self.stage == "cot" and self.cot_head_loss in ("joint", "detached"))

    def alarm_config(self, base: AlarmConfig | None = None) -> AlarmConfig:
        """The AlarmConfig this stage trains with (token strings and placement kept from `base`)."""
        cfg = AlarmConfig(**{**(base.to_dict() if base else {}), "init": self.alarm_init})
        cfg.freeze_vision = self.freeze_vision
        for key, value in _STAGE_SWITCHES[self.stage].items():
            setattr(cfg, key, value)
        cfg.train_heads = self.heads_in_loss
        cfg.train_llm = not self.use_lora
        return cfg

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `load_pretrained` for this config (dtype, attention kernel, model_init_kwargs)."""
        from videosafety_r1.constants import parse_dtype

        dtype = parse_dtype(self.dtype)
        return {"dtype": dtype, "attn_implementation": self.attn_implementation, **(self.model_init_kwargs or {})}
