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
import random
from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from videosafety_r1.alarm import AlarmVideoLLM, load_checkpoint_weights, save_pretrained
from videosafety_r1.sft_config import SFT_FIELD_SUPPORT, STAGES, ATSFTConfig

__all__ = [
    "ATSFTConfig",
    "ATSFTTrainer",
    "SFT_FIELD_SUPPORT",
    "STAGES",
    "alarm_losses",
    "build_sft_model",
    "load_sft_datasets",
]

logger = logging.getLogger(__name__)


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
        # compute_loss returns per-micro-batch means (num_items_in_batch is not used), so the Trainer must divide
        # them by gradient_accumulation_steps, its rule for models that do not normalise by the token count
        self.model_accepts_loss_kwargs = False
        if self.args.shuffle_dataset and self.train_dataset is not None:  # TRL: shuffle once, with the run's seed
            if hasattr(self.train_dataset, "shuffle"):
                self.train_dataset = self.train_dataset.shuffle(seed=self.args.seed)
            else:
                rows = list(self.train_dataset)
                random.Random(self.args.seed).shuffle(rows)
                self.train_dataset = rows
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        args: ATSFTConfig = self.args
        v_labels = inputs.pop("visual_alarm_labels", None)
        t_labels = inputs.pop("textual_alarm_labels", None)
        if args.cot_head_loss == "detached":  # the config allows it in stage cot only
            inputs = {**inputs, "detach_head_inputs": True}
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


def vision_lora_exclusions(module: torch.nn.Module, args: ATSFTConfig) -> list[str]:
    """The vision-tower and projector modules that ``lora_target_modules`` matches (PEFT's rule: the regex matches
    the whole module name) while ``freeze_vision`` is true: they get no adapter, since adapters there would train
    the frozen tower. Logged; a pattern that matches only such modules is refused (``ValueError``)."""
    import re

    from videosafety_r1.alarm import is_vision_parameter

    if not args.freeze_vision:
        return []
    matched = [name for name, _ in module.named_modules() if name and re.fullmatch(args.lora_target_modules, name)]
    vision = [name for name in matched if is_vision_parameter(name)]
    if vision and len(vision) == len(matched):
        raise ValueError(
            f"lora_target_modules {args.lora_target_modules!r} matches only vision-tower / projector modules "
            f"({len(vision)}, e.g. {vision[0]!r}), which freeze_vision: true keeps frozen: no adapter would train; "
            "target LLM modules (the default pattern) or set freeze_vision: false and use_lora: false"
        )
    if vision:
        logger.warning(
            "freeze_vision: true: no LoRA adapters on the %d vision-tower / projector modules lora_target_modules "
            "matches (%s%s)",
            len(vision),
            ", ".join(vision[:4]),
            ", ..." if len(vision) > 4 else "",
        )
    return vision


def build_sft_model(args: ATSFTConfig) -> tuple[AlarmVideoLLM, Any]:
    """Load the model for a stage: a base checkpoint gets alarm tokens, an alarm checkpoint keeps its own; the
    stage's trainability switches are applied either way, LoRA adapters added when asked."""
    from videosafety_r1.alarm import add_alarm_tokens, load_pretrained

    if not args.model_name_or_path:
        raise ValueError("model_name_or_path is required")
    model, processor = load_pretrained(args.model_name_or_path, **args.load_kwargs())
    if args.use_lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=args.lora_target_modules,
            exclude_modules=vision_lora_exclusions(model.base if isinstance(model, AlarmVideoLLM) else model, args),
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


def load_sft_datasets(args: ATSFTConfig) -> tuple[list[Any], list[Any] | None]:
    """Validated training rows of every ``train_file`` (each with its ``data_root``) and the optional eval rows.

    With several files (or an eval set) media paths are made absolute, so one collator serves every root.
    """
    from videosafety_r1.media import with_data_root
    from videosafety_r1.runs import load_train_files

    if not args.train_file:
        raise ValueError("train_file is required")
    check = {
        "video_fps": args.video_fps,
        "video_max_frames": args.video_max_frames,
        "alarm_config": args.alarm_config(),
    }
    # the cold start trains the tag grammar: its rows must be in it (validated now, not found wrong after training)
    kind = "cot" if args.stage == "cot" else "sft"
    train = load_train_files(args.train_file, args.data_root, kind=kind, on_bad_row=args.on_bad_row, **check)
    evaluation = None
    if args.eval_file:
        eval_root = args.eval_data_root or (args.data_root[0] if args.data_root else None)
        roots = [eval_root] if eval_root else None
        evaluation = load_train_files([args.eval_file], roots, kind, args.on_bad_row, **check)
        evaluation = with_data_root(evaluation, eval_root) if eval_root else evaluation
    return train, evaluation


def build_sft_collator(args: ATSFTConfig, processor: Any, model: AlarmVideoLLM) -> Any:
    """The `SFTCollator` for this config: video sampling, max_length / truncation and the model's alarm tokens."""
    from videosafety_r1.data.collate import MediaLoader, SFTCollator

    single_root = args.data_root[0] if args.data_root and len(args.train_file or []) == 1 else None
    return SFTCollator(
        processor,
        MediaLoader(single_root, args.video_fps, args.video_max_frames),
        alarm_config=model.alarm_config,
        max_length=args.max_length,
        truncation=args.truncation,
    )
