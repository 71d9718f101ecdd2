"""Safety-guided GRPO: pure loss math on ``[B*G, T]`` tensors (the stage-4 config lives in ``grpo.config``).

Notation: ``B`` prompts, ``G = num_generations`` completions per prompt (the ``G`` rows of a group are consecutive),
``T`` completion tokens (padded). The math mirrors TRL 1.16's ``GRPOTrainer`` so numbers are comparable, but lives
in plain functions so it can be tested by hand and reused by our video-aware trainer.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from .config import ADVANTAGE_SCALES, IMPORTANCE_SAMPLING_LEVELS, LOSS_TYPES, GRPOConfig

__all__ = [
    "ADVANTAGE_SCALES",
    "IMPORTANCE_SAMPLING_LEVELS",
    "LOSS_TYPES",
    "GRPOConfig",
    "entropy_from_logits",
    "group_advantages",
    "grpo_loss",
    "selective_log_softmax",
]

logger = logging.getLogger(__name__)

STD_EPS = 1e-4  # added to the std before dividing, as in the paper and TRL


# ---------------------------------------------------------------------------------------------------------------------
# Advantages
# ---------------------------------------------------------------------------------------------------------------------
def _nan_std(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected std that ignores NaN; 0 where fewer than two values are present (no spread to measure)."""
    valid = ~torch.isnan(x)
    count = valid.sum() if dim is None else valid.sum(dim)
    mean = torch.nanmean(x) if dim is None else torch.nanmean(x, dim=dim, keepdim=True)
    sq = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x))
    sq = sq.sum() if dim is None else sq.sum(dim)
    var = sq / (count - 1).clamp(min=1)
    return torch.where(count >= 2, var.sqrt(), torch.zeros_like(var))


def group_advantages(rewards: torch.Tensor, num_generations: int, scale: str = "group") -> torch.Tensor:
    """Group-relative advantages ``(r - mean_group) / (std + 1e-4)``.

    ``rewards`` is ``[B*G]`` with each prompt's ``G`` completions consecutive. Scales, as TRL's ``scale_rewards``:
    ``"group"`` divides by the group's std, ``"batch"`` by the std over the whole batch (centring stays per group),
    ``"none"`` only centres (Dr. GRPO). Stds use Bessel's correction (torch's default, as TRL). NaN rewards (rows no
    reward function scored) are left out of the statistics and get advantage 0, so they neither bias the baseline
    nor move the policy.
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"scale must be one of {ADVANTAGE_SCALES}, got {scale!r}")
    if isinstance(num_generations, bool) or not isinstance(num_generations, int) or num_generations < 1:
        raise ValueError(f"num_generations must be a positive int, got {num_generations!r}")
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B*G], got shape {tuple(rewards.shape)}")
    if rewards.numel() % num_generations != 0:
        raise ValueError(
            f"the number of rewards ({rewards.numel()}) is not divisible by num_generations ({num_generations}): "
            "every prompt needs a full group of completions"
        )
    grouped = rewards.view(-1, num_generations)  # [B, G]
    mean = torch.nanmean(grouped, dim=1, keepdim=True)  # [B, 1]
    advantages = (grouped - mean).reshape(-1)  # [B*G]
    if scale == "group":
        std = _nan_std(grouped, dim=1).repeat_interleave(num_generations)  # [B*G]
        advantages = advantages / (std + STD_EPS)
    elif scale == "batch":
        advantages = advantages / (_nan_std(rewards) + STD_EPS)
    return torch.nan_to_num(advantages, nan=0.0)  # [B*G]


# ---------------------------------------------------------------------------------------------------------------------
# Log-probs and entropy
# ---------------------------------------------------------------------------------------------------------------------
def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log_softmax(logits / temperature).gather(index)`` without materialising a ``[..., V]`` log-prob copy.

    For float32/64 it gathers the chosen logits and subtracts a row-wise ``logsumexp`` (computed one leading slice at
    a time); low-precision logits go through ``log_softmax`` slice by slice, because ``logsumexp`` in bf16 loses too
    much precision. ``logits`` is ``[..., V]``, ``index`` is ``[...]``; returns ``[...]``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if logits.shape[:-1] != index.shape:
        raise ValueError(f"index shape {tuple(index.shape)} must equal logits.shape[:-1] {tuple(logits.shape[:-1])}")
    if temperature != 1.0:
        logits = logits / temperature
    if logits.dim() == 1:
        logits, index, squeeze = logits.unsqueeze(0), index.unsqueeze(0), True
    else:
        squeeze = False
    if logits.dtype in (torch.float32, torch.float64):
        chosen = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)  # [...]
        lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])  # [...]
        out = chosen - lse
    else:
        out = torch.stack(
            [F.log_softmax(row, dim=-1).gather(-1, idx.unsqueeze(-1)).squeeze(-1) for row, idx in zip(logits, index)]
        )
    return out.squeeze(0) if squeeze else out


def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 128) -> torch.Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` over the last axis, ``[..., V] -> [...]``, in row chunks.

    Chunking bounds peak memory to ``chunk_size x V`` instead of a full probability copy; the sum runs in float32
    so bf16 logits still log a meaningful number.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    flat = logits.reshape(-1, logits.shape[-1])  # [N, V]
    parts = []
    for chunk in flat.split(chunk_size, dim=0):
        logp = F.log_softmax(chunk.float(), dim=-1)
        parts.append(-(logp.exp() * logp).sum(-1))
    if not parts:
        return logits.new_zeros(logits.shape[:-1])
    return torch.cat(parts).reshape(logits.shape[:-1]).to(logits.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------------------------
def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp(min=1)


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    ref_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.04,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    return_stats: bool = False,
    *,
    num_items_in_batch: int | float | torch.Tensor | None = None,
    importance_sampling_level: str = "token",
    delta: float | None = None,
    use_bias_correction_kl: bool = False,
    policy_mask: torch.Tensor | None = None,
    importance_weights: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-surrogate GRPO loss with a k3 KL penalty, aggregated per ``loss_type``, as TRL 1.16 computes it.

    Per token: ``-[min(rho*A, clip(rho, 1-eps, 1+eps_high)*A) - beta*KL]`` with ``rho = exp(logps - old_logps)``
    and ``KL = exp(x) - x - 1``, ``x = ref_logps - logps``. ``old_logps=None`` means on-policy: ``rho`` is 1 but its
    gradient is ``grad logps`` (the sampler's log-probs are ``logps.detach()``). Aggregation: ``"grpo"`` token mean
    per sequence then mean over sequences (the paper); ``"bnpo"`` token sum / unmasked tokens of this batch;
    ``"dapo"`` token sum / ``num_items_in_batch`` (TRL's normaliser: the active tokens of the whole generation batch,
    over processes and accumulation steps), or the batch's own unmasked tokens without it; ``"dr_grpo"`` sum /
    (rows x ``max_completion_length``, default ``T``). Rows without unmasked tokens add 0.

    TRL options: ``importance_sampling_level="sequence"`` (GSPO: ``rho`` is the exp of the sequence's mean log-ratio,
    ``[B*G, 1]``), ``delta`` (two-sided clipping: ``rho`` in the unclipped term capped at ``delta``),
    ``use_bias_correction_kl`` (KL multiplied by ``rho``), ``policy_mask`` (``[B*G, T]`` or ``[B*G, 1]`` weights on the
    policy term only, e.g. TRL's high-entropy or off-policy masks; the KL term is not masked by it).

    Masked positions affect neither the value nor the gradient: their log-ratios are zeroed before ``exp``, so any
    garbage there (``ref_logps - logps`` of 100 in fp16) cannot overflow into an inf/NaN gradient.

    With ``return_stats=True`` also returns detached masked token means: ``kl`` (NaN without ``ref_logps``),
    ``clip_ratio`` (= ``clip_ratio/region_mean``), ``clip_ratio/low_mean``, ``clip_ratio/high_mean``; a token counts
    as clipped only where clipping changes its gradient (low side with A < 0, high side with A > 0), as in TRL.
    Sequence-level ratios give per-sequence means.

    ``importance_weights`` (``[B*G, T]`` or ``[B*G, 1]``, detached) multiply the clipped surrogate before the KL term
    is added, as TRL's vLLM importance-sampling correction (:mod:`videosafety_r1.grpo.vllm_importance`).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(
            f"importance_sampling_level must be one of {IMPORTANCE_SAMPLING_LEVELS}, got {importance_sampling_level!r}"
        )
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    if epsilon_high <= 0:
        raise ValueError(f"epsilon_high must be > 0, got {epsilon_high}")
    if delta is not None and delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if ref_logps is None and beta != 0:
        raise ValueError(f"ref_logps is None but beta={beta}: the KL term needs reference log-probs (or set beta=0)")
    if logps.dim() != 2:
        raise ValueError(f"logps must be [B*G, T], got shape {tuple(logps.shape)}")
    for name, t in (("old_logps", old_logps), ("ref_logps", ref_logps), ("mask", mask)):
        if t is not None and t.shape != logps.shape:
            raise ValueError(f"{name} shape {tuple(t.shape)} must equal logps shape {tuple(logps.shape)}")
    rows, width = logps.shape
    if advantages.shape != (rows,):
        raise ValueError(f"advantages must be [B*G] = [{rows}], got shape {tuple(advantages.shape)}")
    if max_completion_length is not None and max_completion_length < 1:
        raise ValueError(f"max_completion_length must be >= 1, got {max_completion_length}")

    mask = mask.bool()  # [B*G, T]
    zero = torch.zeros_like(logps)  # [B*G, T]
    old_logps = logps.detach() if old_logps is None else old_logps  # [B*G, T]
    adv = advantages.to(logps.dtype).unsqueeze(1)  # [B*G, 1]

    log_ratio = torch.where(mask, logps - old_logps, zero)  # [B*G, T]; masked -> 0 before any exp
    if importance_sampling_level == "sequence":
        log_ratio = log_ratio.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)  # [B*G, 1]
    ratio = torch.exp(log_ratio)  # [B*G, T] or [B*G, 1]
    kl = None
    if ref_logps is not None:
        x = torch.where(mask, ref_logps - logps, zero)  # [B*G, T]
        kl = torch.exp(x) - x - 1  # [B*G, T]
        if use_bias_correction_kl:
            kl = kl * ratio
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    if delta is not None:
        ratio = torch.clamp(ratio, max=delta)
    per_token_loss = -torch.min(ratio * adv, clipped * adv)  # [B*G, T] or [B*G, 1]
    if policy_mask is not None:
        per_token_loss = per_token_loss * policy_mask.to(per_token_loss.dtype)
    per_token_loss = per_token_loss.expand(rows, width)  # [B*G, T]
    if importance_weights is not None:  # TRL: after the masks, before the KL term
        per_token_loss = per_token_loss * importance_weights.to(per_token_loss)  # [B*G, T]
    if kl is not None and beta != 0:
        per_token_loss = per_token_loss + beta * kl
    per_token_loss = torch.where(mask, per_token_loss, zero)  # [B*G, T]

    if loss_type == "grpo":
        per_seq = per_token_loss.sum(-1) / mask.sum(-1).clamp(min=1)  # [B*G]
        loss = per_seq.mean()
    elif loss_type == "bnpo" or (loss_type == "dapo" and num_items_in_batch is None):
        loss = per_token_loss.sum() / mask.sum().clamp(min=1)
    elif loss_type == "dapo":
        loss = per_token_loss.sum() / torch.as_tensor(num_items_in_batch, dtype=logps.dtype).clamp(min=1)
    else:  # dr_grpo
        loss = per_token_loss.sum() / (rows * (max_completion_length or width))

    if not return_stats:
        return loss
    return loss, _clip_stats(ratio, adv, mask, kl, epsilon, epsilon_high)


def _clip_stats(
    ratio: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    kl: torch.Tensor | None,
    epsilon: float,
    epsilon_high: float,
) -> dict[str, torch.Tensor]:
    """Detached metric means; a ``[B*G, 1]`` (sequence-level) ratio is averaged over sequences, as TRL does."""
    with torch.no_grad():
        low = (ratio < 1 - epsilon) & (adv < 0)  # [B*G, T] or [B*G, 1]
        high = (ratio > 1 + epsilon_high) & (adv > 0)

        def mean(t: torch.Tensor) -> torch.Tensor:
            t = t.to(adv.dtype)
            return t.mean() if t.shape[1] == 1 else _masked_mean(t, mask)

        region = mean(low | high)
        stats = {
            "kl": _masked_mean(kl, mask) if kl is not None else adv.new_tensor(float("nan")),
            "clip_ratio": region,
            "clip_ratio/low_mean": mean(low),
            "clip_ratio/high_mean": mean(high),
            "clip_ratio/region_mean": region,
        }
    return {k: v.detach() for k, v in stats.items()}
