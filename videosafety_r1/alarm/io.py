"""Saving, loading and exporting alarm-token models (batch inference lives in :mod:`videosafety_r1.inference`).

Two on-disk forms (design.md, "Alarm tokens, two representations"):
- the training form (`save_pretrained`): the base checkpoint as transformers writes it (or a PEFT adapter), plus
  `alarm.safetensors` (vectors and heads) and `alarm_config.json` (format version, ids, config);
- the plain export (`export_plain_checkpoint`): LoRA merged, vectors written into the two embedding rows, a chat
  template that places the tokens, a generation config that suppresses them; only model files at the top level
  (vLLM loads every top-level `*.safetensors`), the heads and the alarm config under `alarm/`
  (`alarm/heads.safetensors`, `alarm/alarm_config.json`).
Both load back with `load_pretrained` (as do exports of the earlier layout, heads beside the model).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..zero3 import any_partitioned, full_shape, gathered
from .calibration import CALIBRATION_FILE, load_calibration, save_calibration
from .model import FORMAT_VERSION, VOCAB_ROWS_PREFIX, AlarmVideoLLM, add_alarm_tokens
from .tokens import AlarmConfig, alarm_chat_template, special_token_literals

logger = logging.getLogger(__name__)

ALARM_CONFIG_FILE = "alarm_config.json"
ALARM_WEIGHTS_FILE = "alarm.safetensors"
ALARM_HEADS_FILE = "alarm_heads.safetensors"  # the earlier export layout (top level), still read
EXPORT_ALARM_DIR = "alarm"  # the export's subfolder: the top level holds only model files
EXPORT_HEADS_FILE = f"{EXPORT_ALARM_DIR}/heads.safetensors"
EXPORT_CONFIG_FILE = f"{EXPORT_ALARM_DIR}/{ALARM_CONFIG_FILE}"
EXPORT_CALIBRATION_FILE = f"{EXPORT_ALARM_DIR}/{CALIBRATION_FILE}"


def _meta(model: AlarmVideoLLM, exported: bool, lora: bool) -> dict[str, Any]:
    meta = {
        "format_version": FORMAT_VERSION,
        "exported": exported,
        "lora": lora,
        "visual_alarm_token_id": model.visual_alarm_token_id,
        "textual_alarm_token_id": model.textual_alarm_token_id,
        "alarm_config": model.alarm_config.to_dict(),
    }
    if getattr(model, "video_sampling", None):
        meta["video_sampling"] = dict(model.video_sampling)
    return meta


def _video_sampling(value: Mapping[str, Any]) -> dict[str, Any]:
    """``{"video_fps": float > 0, "video_max_frames": int >= 1}``, checked (a typo would silently decode wrong)."""
    unknown = set(value) - {"video_fps", "video_max_frames"}
    fps, frames = value.get("video_fps"), value.get("video_max_frames")
    if unknown or not isinstance(fps, (int, float)) or fps <= 0 or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"video_sampling must be {{'video_fps': > 0, 'video_max_frames': >= 1}}, got {dict(value)}")
    return {"video_fps": float(fps), "video_max_frames": int(frames)}


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_pretrained(
    model: AlarmVideoLLM,
    save_directory: str | Path,
    processor: Any = None,
    merge_lora: bool = False,
    state_dict: dict[str, torch.Tensor] | None = None,
    video_sampling: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Path:
    """Write the training form. With LoRA, the adapter is saved (PEFT layout) unless `merge_lora=True`.

    `video_sampling` (``{"video_fps", "video_max_frames"}``, what the trainers pass from their config) is recorded
    in ``alarm_config.json`` and kept on the model; `predict_harm` and evaluation use it as their default.

    `state_dict` is the wrapper's full state dict when the caller gathered it (DeepSpeed ZeRO-3 via the Trainer,
    which calls this on one rank only); without it the alarm weights are gathered here, so under ZeRO-3 every rank
    must call this.
    """
    if video_sampling is not None:
        model.video_sampling = _video_sampling(video_sampling)
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    lora = hasattr(model.base, "peft_config")
    if state_dict is not None:
        kwargs["state_dict"] = {k[len("base.") :]: v for k, v in state_dict.items() if k.startswith("base.")}
        alarm_sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items() if not k.startswith("base.")}
    else:
        alarm_sd = model.alarm_state_dict()
    _check_alarm_weights(model, alarm_sd)
    if lora and merge_lora:
        merged = copy.deepcopy(model.base).merge_and_unload()
        merged.save_pretrained(out, **kwargs)
        lora = False
    else:
        if lora:
            base_path = model.base.peft_config["default"].base_model_name_or_path
            if not base_path or not Path(base_path).exists() and "/" not in base_path:
                raise ValueError(
                    "the LoRA base model has no loadable path; save with merge_lora=True or load the base with "
                    "from_pretrained before applying LoRA"
                )
        model.base.save_pretrained(out, **kwargs)
    if lora:  # the adapter leaves out the base's rows of the alarm ids: new random rows when the vocabulary grew
        alarm_sd.update(model.vocab_rows_state_dict(state_dict))
    save_file(alarm_sd, str(out / ALARM_WEIGHTS_FILE), metadata={"format": "pt"})
    _write_json(out / ALARM_CONFIG_FILE, _meta(model, exported=False, lora=lora))
    (out / CALIBRATION_FILE).unlink(missing_ok=True)  # never a calibration fitted for other heads
    if getattr(model, "alarm_calibration", None):  # the heads' Platt scaling travels with them
        save_calibration(out, model.alarm_calibration)
    if processor is not None:
        processor.save_pretrained(out)
    logger.info("saved alarm model to %s", out)
    return out


def _check_alarm_weights(model: AlarmVideoLLM, alarm_sd: dict[str, torch.Tensor]) -> None:
    """Refuse to write missing or partial alarm weights (e.g. the empty slice of a ZeRO-3 partitioned parameter)."""
    expected = {"alarm_embedding.weight": model.alarm_embedding.weight}
    for head_name in ("visual_head", "textual_head"):
        head = getattr(model, head_name)
        if head is not None:
            expected.update({f"{head_name}.weight": head.weight, f"{head_name}.bias": head.bias})
    problems = [
        f"{k}: {'missing' if k not in alarm_sd else tuple(alarm_sd[k].shape)}, expected {tuple(full_shape(p))}"
        for k, p in expected.items()
        if k not in alarm_sd or alarm_sd[k].shape != full_shape(p)
    ]
    if problems:
        raise ValueError(
            "refusing to save incomplete alarm weights (under DeepSpeed ZeRO-3 pass the gathered state_dict): "
            + "; ".join(problems)
        )


def _resolve(path_or_id: str | Path, filename: str) -> str | None:
    from transformers.utils import cached_file

    return cached_file(
        str(path_or_id),
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )


def _keep_used_weight_conversions(model: Any) -> None:
    """Keep only the checkpoint-key conversions that loading used, as transformers' normal loader does.

    Under DeepSpeed ZeRO-3, transformers 5.x (`_load_state_dict_into_zero3_model`) records every registered
    conversion instead, and `save_pretrained` then reverts unused ones too: a Qwen2.5-VL saved after ZeRO-3 training
    got keys such as `model.model.embed_tokens.weight` (transformers still loads them, other tools may not).
    """
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [c for c in conversions if not hasattr(c, "was_used") or c.was_used()]


def load_pretrained(
    path_or_id: str | Path,
    *,
    dtype: Any = None,
    attn_implementation: str | None = "sdpa",
    is_trainable: bool = False,
    alarm_config: AlarmConfig | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Load a checkpoint written by `save_pretrained` or `export_plain_checkpoint` (or any base Video LLM).

    Returns `(model, processor)`; the model is an `AlarmVideoLLM` when the checkpoint has alarm tokens, otherwise
    the plain transformers model (call `add_alarm_tokens` on it). `alarm_config` overrides the saved trainability
    switches (the token strings and placement must match).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(path_or_id))
    load_kwargs = dict(dtype=dtype, attn_implementation=attn_implementation, **kwargs)
    adapter_cfg = _resolve(path_or_id, "adapter_config.json")
    if adapter_cfg:
        from peft import PeftModel

        base_path = json.loads(Path(adapter_cfg).read_text())["base_model_name_or_path"]
        base = AutoModelForImageTextToText.from_pretrained(base_path, **load_kwargs)
        _keep_used_weight_conversions(base)
        if len(processor.tokenizer) > base.get_input_embeddings().weight.shape[0]:
            base.resize_token_embeddings(len(processor.tokenizer), mean_resizing=False)
        base = PeftModel.from_pretrained(base, str(path_or_id), is_trainable=is_trainable)
    else:
        base = AutoModelForImageTextToText.from_pretrained(str(path_or_id), **load_kwargs)
    _keep_used_weight_conversions(base)
    meta_path = _resolve(path_or_id, ALARM_CONFIG_FILE) or _resolve(path_or_id, EXPORT_CONFIG_FILE)
    if not meta_path:
        return base, processor
    meta = json.loads(Path(meta_path).read_text())
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{meta_path}: format_version {meta['format_version']} is newer than this library's")
    saved_cfg = AlarmConfig.from_dict(meta["alarm_config"])
    cfg = alarm_config or saved_cfg
    if (cfg.visual_token, cfg.textual_token) != (saved_cfg.visual_token, saved_cfg.textual_token):
        raise ValueError("alarm_config token strings differ from the checkpoint's")
    emb = base.get_input_embeddings().weight
    ids = [meta["visual_alarm_token_id"], meta["textual_alarm_token_id"]]
    baked = None
    if meta.get("exported"):
        with gathered([emb]):  # a collective under ZeRO-3: every rank loads
            baked = emb[ids].detach().clone()
    model = add_alarm_tokens(base, processor, cfg)
    if model.alarm_token_ids != ids:
        raise ValueError(f"{meta_path}: tokenizer gives alarm ids {model.alarm_token_ids}, checkpoint says {ids}")
    if meta.get("exported"):
        state = {"alarm_embedding.weight": baked}
        heads_path = _resolve(path_or_id, EXPORT_HEADS_FILE) or _resolve(path_or_id, ALARM_HEADS_FILE)
        if heads_path:
            state.update(load_file(heads_path))
        elif cfg.use_heads:  # random heads would give meaningless harm probabilities without a word
            raise ValueError(
                f"{path_or_id}: the export says use_heads=true but holds no {EXPORT_HEADS_FILE}; restore the file or "
                "load with alarm_config=AlarmConfig(use_heads=False)"
            )
    else:
        state = load_file(_resolve(path_or_id, ALARM_WEIGHTS_FILE))
        model.load_vocab_rows({k: state.pop(k) for k in list(state) if k.startswith(VOCAB_ROWS_PREFIX)})
    missing, unexpected = model.load_state_dict(
        {k: v.to(emb.dtype) for k, v in state.items()}, strict=False, assign=False
    )
    unexpected = [k for k in unexpected if not k.startswith("base.")]
    if unexpected:
        raise ValueError(f"{path_or_id}: unexpected alarm weights {unexpected}")
    if meta.get("video_sampling"):
        model.video_sampling = _video_sampling(meta["video_sampling"])
    calibration_path = _resolve(path_or_id, CALIBRATION_FILE) or _resolve(path_or_id, EXPORT_CALIBRATION_FILE)
    model.alarm_calibration = load_calibration(Path(calibration_path).parent) if calibration_path else None
    return model, processor


def read_video_sampling(path_or_id: str | Path) -> dict[str, Any] | None:
    """The video sampling a checkpoint was trained with (``{"video_fps", "video_max_frames"}`` from its
    ``alarm_config.json``), without loading the model; None when it recorded none."""
    meta_path = _resolve(path_or_id, ALARM_CONFIG_FILE)
    if not meta_path:
        return None
    recorded = json.loads(Path(meta_path).read_text()).get("video_sampling")
    return _video_sampling(recorded) if recorded else None


def load_checkpoint_weights(model: AlarmVideoLLM, directory: str | Path) -> None:
    """Load weights written by `save_pretrained` into an existing model, in place (Trainer resume).

    Base weights go through `from_pretrained`, which knows the checkpoint's key conventions (transformers renames
    some modules on disk), then are copied into the live model so optimizer references stay valid.
    """
    d = Path(directory)
    if (d / "adapter_model.safetensors").exists():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model.base, load_file(str(d / "adapter_model.safetensors")))
    else:
        base = model.get_base_model()
        dtype = base.get_input_embeddings().weight.dtype
        fresh = type(base).from_pretrained(str(d), dtype=dtype)
        base.load_state_dict(fresh.state_dict(), strict=True)
        del fresh
    state = load_file(str(d / ALARM_WEIGHTS_FILE))
    model.load_vocab_rows({k: state.pop(k) for k in list(state) if k.startswith(VOCAB_ROWS_PREFIX)})
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{d}: unexpected alarm weights {unexpected}")


def _suppress_alarm_ids(base: Any, model: AlarmVideoLLM) -> None:
    base.generation_config.suppress_tokens = sorted(
        set(base.generation_config.suppress_tokens or []) | set(model.alarm_token_ids)
    )


@torch.no_grad()
def export_plain_checkpoint(
    model: AlarmVideoLLM,
    processor: Any,
    out_dir: str | Path,
    *,
    weights: Mapping[str, torch.Tensor] | None = None,
    alarm_state: Mapping[str, torch.Tensor] | None = None,
    **kwargs: Any,
) -> Path:
    """Write a plain transformers checkpoint that any serving tool runs with the alarm behaviour intact.

    LoRA is merged (on a copy), the alarm vectors go into the embedding rows of the two tokens, the chat template
    inserts the tokens and neutralises typed literals, the generation config suppresses the alarm ids (vLLM ignores
    that field: it honours the logits processor :mod:`videosafety_r1.grpo.vllm_logits` registers instead), and the
    heads and alarm config go to ``out_dir/alarm/``, so the top level holds only model files. With tied input/output embeddings the two alarm logit columns change too; they are
    suppressed in both models, and every other logit is unchanged.

    ``weights`` / ``alarm_state``: the plain weights (LoRA merged, alarm rows baked: ``engine_weights``) and
    ``alarm_state_dict()``, gathered beforehand on every rank of a DeepSpeed ZeRO-3 model; they are written as given
    and the model's own (partitioned) parameters are not read, so one rank can write the export.
    """
    if any_partitioned(model) and (weights is None or alarm_state is None):
        raise ValueError(
            "export_plain_checkpoint needs whole weights, not a DeepSpeed ZeRO-3 partitioned model: save the training "
            "form first, then reload it on one rank inside videosafety_r1.zero3.zero3_init_disabled() and export that "
            "(or pass weights= and alarm_state= gathered on every rank, as the vLLM colocate start does)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lora = hasattr(model.base, "peft_config")
    (out / "model.safetensors.index.json").unlink(missing_ok=True)  # a sharded earlier export's index
    if weights is not None:
        base = model.base.get_base_model() if lora else model.base
        _suppress_alarm_ids(base, model)
        base.save_pretrained(out, state_dict=dict(weights), **kwargs)
    else:
        base = copy.deepcopy(model.base).merge_and_unload() if lora else model.base
        emb = base.get_input_embeddings().weight
        ids = torch.tensor(model.alarm_token_ids, device=emb.device)
        original = emb[ids].clone()
        emb[ids] = model.alarm_embedding.weight.detach().to(emb.dtype)
        try:
            _suppress_alarm_ids(base, model)
            base.save_pretrained(out, **kwargs)
        finally:
            emb[ids] = original
    (out / EXPORT_ALARM_DIR).mkdir(exist_ok=True)
    # an earlier export into the same folder: its alarm files must not outlive it
    for stale in (ALARM_HEADS_FILE, ALARM_CONFIG_FILE, EXPORT_HEADS_FILE, EXPORT_CALIBRATION_FILE):
        (out / stale).unlink(missing_ok=True)
    state = alarm_state if alarm_state is not None else model.alarm_state_dict()
    heads = {k: v for k, v in state.items() if not k.startswith("alarm_embedding")}
    if heads:
        save_file(heads, str(out / EXPORT_HEADS_FILE), metadata={"format": "pt"})
    (out / CALIBRATION_FILE).unlink(missing_ok=True)
    if getattr(model, "alarm_calibration", None):  # the heads' Platt scaling travels with them
        save_calibration(out / EXPORT_ALARM_DIR, model.alarm_calibration)
    _write_json(out / EXPORT_CONFIG_FILE, _meta(model, exported=True, lora=False))
    exported = copy.deepcopy(processor)
    literals = special_token_literals(processor.tokenizer, model.alarm_config)
    template = alarm_chat_template(processor.chat_template, model.alarm_config, special_tokens=literals)
    exported.chat_template = template
    exported.tokenizer.chat_template = template
    exported.save_pretrained(out)
    logger.info("exported plain checkpoint to %s (LoRA merged: %s)", out, lora)
    return out
