"""AT-SFT: alarm-token supervised fine-tuning (method.md, sections 2-3).

Loss = mean-token cross-entropy + λv·BCE(visual head) + λt·BCE(textual head), with λ = 0.1 and the BCE terms
*not* divided by the token count (the published code's scaling bug). Three stages switch what trains:

| stage        | heads in loss | alarm vectors | heads    | LLM      |
|--------------|---------------|---------------|----------|----------|
| `alarm_init` | no            | train         | frozen   | train    |
| `atc`        | yes           | train         | train    | train    |
| `cot`        | no            | frozen        | frozen   | train    |
Vision tower and projector stay frozen throughout.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import trl
from transformers import Trainer

from videosafety_r1.alarm import AlarmConfig, AlarmVideoLLM, load_checkpoint_weights, save_pretrained
from videosafety_r1.constants import parse_dtype

logger = logging.getLogger(__name__)

STAGES = ("alarm_init", "atc", "cot")
_STAGE_SWITCHES = {
    "alarm_init": dict(train_vectors=True, train_heads=False),
    "atc": dict(train_vectors=True, train_heads=True),
    "cot": dict(train_vectors=False, train_heads=False),
}


@dataclass
class ATSFTConfig(trl.SFTConfig):
    """`trl.SFTConfig` plus the method's model, alarm, data and LoRA settings (grouped below)."""

    # model
    model_name_or_path: str | None = field(default=None, metadata={"help": "Hub id or local checkpoint to train."})
    model_dtype: str = field(default="auto", metadata={"help": "auto, bfloat16, float16 or float32."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2."})
    # alarm
    stage: str = field(default="atc", metadata={"help": "alarm_init, atc or cot (see videosafety_r1.sft)."})
    lambda_visual: float = field(default=0.1, metadata={"help": "Weight of the visual-head BCE term."})
    lambda_textual: float = field(default=0.1, metadata={"help": "Weight of the textual-head BCE term."})
    alarm_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the alarm vectors."})
    head_learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate of the two heads."})
    alarm_init: str = field(default="zeros", metadata={"help": "Alarm vector init when tokens are new."})
    # data
    train_file: str | None = field(default=None, metadata={"help": "Training JSONL (canonical or published)."})
    eval_file: str | None = field(default=None, metadata={"help": "Optional held-out JSONL for head accuracy."})
    data_root: str | None = field(default=None, metadata={"help": "Folder media paths are relative to."})
    eval_data_root: str | None = field(default=None, metadata={"help": "Media root of eval_file (default data_root)."})
    video_fps: float = field(default=1.0, metadata={"help": "Frames sampled per second of video."})
    video_max_frames: int = field(default=90, metadata={"help": "Cap on sampled frames (uniform subsampling)."})
    truncation: str = field(default="error", metadata={"help": "Over-long rows: error or drop."})
    on_bad_row: str = field(default="error", metadata={"help": "Invalid rows at start-up: error or skip."})
    # LoRA
    use_lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of the full LLM."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        metadata={"help": "Regex of LLM modules that get adapters (never the vision tower)."},
    )
    # outputs
    export_plain: bool = field(default=True, metadata={"help": "Also write a plain transformers export."})

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.stage not in STAGES:
            problems.append(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.truncation not in ("error", "drop"):
            problems.append(f"truncation must be error or drop, got {self.truncation!r}")
        if self.on_bad_row not in ("error", "skip"):
            problems.append(f"on_bad_row must be error or skip, got {self.on_bad_row!r}")
        if min(self.lambda_visual, self.lambda_textual) < 0:
            problems.append("lambda_visual and lambda_textual must be >= 0")
        if problems:
            raise ValueError("invalid ATSFTConfig: " + "; ".join(problems))
        self.remove_unused_columns = False  # batches carry alarm labels the model signature does not name
        if self.label_names is None:
            self.label_names = ["labels"]  # the wrapper's forward takes **kwargs, so the Trainer cannot infer it
        if self.gradient_checkpointing_kwargs is None:
            self.gradient_checkpointing_kwargs = {"use_reentrant": False}

    @property
    def heads_in_loss(self) -> bool:
        return self.stage == "atc"

    def alarm_config(self, base: AlarmConfig | None = None) -> AlarmConfig:
        """The AlarmConfig this stage trains with (token strings and placement kept from `base`)."""
        cfg = AlarmConfig(**{**(base.to_dict() if base else {}), "init": self.alarm_init})
        for key, value in _STAGE_SWITCHES[self.stage].items():
            setattr(cfg, key, value)
        cfg.train_llm = not self.use_lora
        return cfg


def alarm_losses(logits: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(BCE-with-logits mean over the batch, accuracy) of one head; `logits` and `labels` are `[B]`."""
    if labels is None:
        return None, None
    target = labels.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    acc = ((logits.detach() > 0).long() == labels).float().mean()
    return bce, acc


class ATSFTTrainer(Trainer):
    """`transformers.Trainer` with the AT-SFT loss, per-part learning rates and alarm-aware checkpoints.

    Differs from the parent in: `compute_loss` (adds the weighted head BCE terms and logs each component),
    `create_optimizer` (LLM / alarm vectors / heads in their own parameter groups), and `_save` /
    `_load_from_checkpoint` (the model is an `AlarmVideoLLM`, saved in the alarm training format).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.accelerator.unwrap_model(self.model), AlarmVideoLLM):
            raise TypeError("ATSFTTrainer trains an AlarmVideoLLM; call add_alarm_tokens first")
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        args: ATSFTConfig = self.args
        v_labels = inputs.pop("visual_alarm_labels", None)
        t_labels = inputs.pop("textual_alarm_labels", None)
        outputs = model(**inputs)
        lm_loss = outputs.loss  # mean token cross-entropy over assistant tokens
        loss = lm_loss
        mode = "train" if model.training else "eval"
        metrics = self._metrics[mode]
        metrics["loss/lm"].append(self.accelerator.gather(lm_loss.detach()).mean().item())
        if outputs.visual_alarm_logits is not None:
            v_bce, v_acc = alarm_losses(outputs.visual_alarm_logits, v_labels)
            t_bce, t_acc = alarm_losses(outputs.textual_alarm_logits, t_labels)
            if v_bce is not None and t_bce is not None:
                if args.heads_in_loss:
                    loss = loss + args.lambda_visual * v_bce + args.lambda_textual * t_bce
                for name, value in (
                    ("loss/visual_bce", v_bce),
                    ("loss/textual_bce", t_bce),
                    ("acc/visual_head", v_acc),
                    ("acc/textual_head", t_acc),
                ):
                    metrics[name].append(self.accelerator.gather(value.detach()).mean().item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for name, values in self._metrics[mode].items():
            if values:
                logs[prefix + name] = sum(values) / len(values)
        self._metrics[mode].clear()
        super().log(logs, start_time)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        args: ATSFTConfig = self.args
        opt_model = model if model is not None else self.model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = defaultdict(list)
        for name, p in opt_model.named_parameters():
            if not p.requires_grad:
                continue
            part = "alarm" if "alarm_embedding" in name else "head" if name.split(".")[0].endswith("_head") else "llm"
            groups[(part, name in decay)].append(p)
        lrs = {"llm": args.learning_rate, "alarm": args.alarm_learning_rate, "head": args.head_learning_rate}
        param_groups = [
            {"params": ps, "lr": lrs[part], "weight_decay": args.weight_decay if dec else 0.0, "name": part}
            for (part, dec), ps in groups.items()
        ]
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, opt_model)
        optimizer_kwargs.pop("lr", None)
        self.optimizer = optimizer_cls(param_groups, lr=args.learning_rate, **optimizer_kwargs)
        logger.info(
            "optimizer groups: %s", {f"{p}/{'decay' if d else 'no_decay'}": len(v) for (p, d), v in groups.items()}
        )
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        sampling = {"video_fps": self.args.video_fps, "video_max_frames": self.args.video_max_frames}
        save_pretrained(
            model, output_dir, processor=self.processing_class, state_dict=state_dict, video_sampling=sampling
        )
        torch.save(self.args, f"{output_dir}/training_args.bin")

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        load_checkpoint_weights(model, resume_from_checkpoint)
        logger.info("resumed weights from %s", resume_from_checkpoint)


def _dtype(name: str) -> Any:
    return parse_dtype(name)


def build_sft_model(args: ATSFTConfig) -> tuple[AlarmVideoLLM, Any]:
    """Load the model for a stage: a base checkpoint gets alarm tokens, an alarm checkpoint keeps its own; the
    stage's trainability switches are applied either way, LoRA adapters added when asked."""
    from videosafety_r1.alarm import add_alarm_tokens, load_pretrained

    if not args.model_name_or_path:
        raise ValueError("model_name_or_path is required")
    model, processor = load_pretrained(
        args.model_name_or_path, dtype=_dtype(args.model_dtype), attn_implementation=args.attn_implementation
    )
    if args.use_lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=args.lora_target_modules,
        )
        if isinstance(model, AlarmVideoLLM):
            model.base = get_peft_model(model.base, lora)
        else:
            model = get_peft_model(model, lora)
    if isinstance(model, AlarmVideoLLM):
        model.apply_trainability(args.alarm_config(model.alarm_config))
    else:
        model = add_alarm_tokens(model, processor, args.alarm_config())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    logger.info("stage %s: %d / %d parameters trainable", args.stage, n_train, n_all)
    return model, processor
