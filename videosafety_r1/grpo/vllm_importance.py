"""Importance-sampling correction for the engine/trainer log-prob mismatch, with TRL's modes and metric names.

The engine samples from its own numerics (other kernels, other precision, the blocked ids renormalised away), the
loss differentiates the trainer's. Each completion token's loss is weighted by ``rho = exp(old_logps -
sampling_logps)`` (``old_logps``: the trainer's log-probs of the policy that sampled, ``sampling_logps``: vLLM's
``processed_logprobs``), per token (``token_*``) or as one product per sequence (``sequence_*``), then truncated to
``[clip_min, clip_max]`` (``*_truncate``) or zeroed outside it (``*_mask``), as TRL's
``vllm_importance_sampling_mode``.
"""

from __future__ import annotations

import math

import torch


def importance_sampling_ratio(
    old_logps: torch.Tensor,
    sampling_logps: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "sequence_mask",
    clip_min: float | None = None,
    clip_max: float | None = 3.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(weights, stats)``: weights ``[N, C]`` (``token_*``) or ``[N, 1]`` (``sequence_*``) for the per-token loss,
    and detached stats under TRL's metric names (``sampling/sampling_logp_difference/{mean,max}``,
    ``sampling/importance_sampling_ratio/{min,mean,max}``) over the masked tokens (or the sequences).

    Raises ``ValueError`` for an unknown ``mode``. NaN sampling log-probs (tokens the engine did not score) count as
    no mismatch (ratio 1), as in TRL.
    """
    if mode not in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"):
        raise ValueError(f"unknown vllm_importance_sampling_mode {mode!r}")
    mask = mask.bool()  # [N, C]
    diff = torch.nan_to_num((old_logps - sampling_logps) * mask, nan=0.0)  # [N, C]
    sequence = mode.startswith("sequence")
    log_ratio = diff.sum(-1, keepdim=True) if sequence else diff  # [N, 1] or [N, C]
    ratio = torch.exp(log_ratio)
    low = clip_min if clip_min is not None else -math.inf
    high = clip_max if clip_max is not None else math.inf
    if mode.endswith("truncate"):
        ratio = ratio.clamp(min=clip_min, max=clip_max)
    else:
        ratio = ratio.masked_fill((ratio < low) | (ratio > high), 0.0)
    with torch.no_grad():
        delta = (old_logps - sampling_logps).abs()[mask]
        delta = delta[~torch.isnan(delta)]
        flat = ratio.flatten() if sequence else ratio[mask]
        zero = torch.zeros((), device=ratio.device)
        stats = {
            "sampling/sampling_logp_difference/mean": delta.mean() if delta.numel() else zero,
            "sampling/sampling_logp_difference/max": delta.max() if delta.numel() else zero,
            "sampling/importance_sampling_ratio/min": flat.min() if flat.numel() else zero,
            "sampling/importance_sampling_ratio/mean": flat.mean() if flat.numel() else zero,
            "sampling/importance_sampling_ratio/max": flat.max() if flat.numel() else zero,
        }
    return ratio.detach(), stats
