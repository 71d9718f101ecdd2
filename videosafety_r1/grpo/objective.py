"""The GRPO objective inside the trainer: global advantages, TRL's loss scaling, masks and the entropy bonus.

A mixin of :class:`~videosafety_r1.grpo.trainer.VideoGRPOTrainer` (it reads ``self.args``, ``self.accelerator``,
``self.reward_weights``, ``self.num_generations``, ``self._metrics``). Every statistic that TRL takes over the whole
generation batch is taken over all processes here too (``scale_rewards="batch"``, ``normalize_then_sum``, the
``dapo`` normaliser, the entropy quantile, the adaptive entropy controller), so one process and several agree.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from .loss import STD_EPS, _nan_std, group_advantages, grpo_loss

ENTROPY_STATE_FILE = "entropy_ctrl_state.json"  # TRL's file name, in each checkpoint


def off_policy_mask(
    advantages: torch.Tensor, logps: torch.Tensor, sampling_logps: torch.Tensor, mask: torch.Tensor, threshold: float
) -> torch.Tensor:
    """TRL's off-policy sequence mask ``[B*G, 1]``: keep a sequence when its advantage is >= 0 or its mean
    ``sampling_logps - logps`` (a KL estimate, masked tokens excluded) is <= ``threshold``."""
    kl = torch.nan_to_num(sampling_logps - logps.detach(), nan=0.0) * mask  # [B*G, T]
    mean_kl = kl.sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)  # [B*G, 1]
    return ((advantages.unsqueeze(1) >= 0) | (mean_kl <= threshold)).to(logps.dtype)  # [B*G, 1]


class ObjectiveMixin:
    """Advantages over the global batch and the loss of one micro-batch, scaled as TRL scales it."""

    def _init_entropy_control(self) -> None:
        self.entropy_coef = self.args.entropy_coef
        self._entropy_bonus = self.args.entropy_coef != 0.0 or self.args.use_adaptive_entropy
        self._last_world_entropy = float("inf")  # as TRL: no bonus until the first window is measured
        self._entropy_window: torch.Tensor | None = None

    # --- advantages -------------------------------------------------------------------------------------------
    def _advantages(self, per_func: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rewards [n], advantages [n])`` from this process's ``[n, F]`` rewards (whole groups), with TRL's
        ``multi_objective_aggregation`` and ``scale_rewards``; batch statistics are gathered over processes."""
        G, weights = self.num_generations, self.reward_weights.to(per_func.device)
        unscorable = torch.isnan(per_func).all(1)  # [n]
        rewards = (per_func * weights).nansum(1).masked_fill(unscorable, torch.nan)  # [n], as logged
        if self.args.multi_objective_aggregation == "normalize_then_sum":
            grouped = per_func.view(-1, G, per_func.shape[1])  # [B, G, F]
            mean = torch.nanmean(grouped, dim=1, keepdim=True)  # [B, 1, F]
            std = _nan_std(grouped, dim=1).unsqueeze(1)  # [B, 1, F]
            normalised = ((grouped - mean) / (std + STD_EPS)).view_as(per_func)  # [n, F]
            summed = (normalised * weights).nansum(1).masked_fill(unscorable, torch.nan)  # [n]
            everyone = self.accelerator.gather(summed)
            advantages = (summed - torch.nanmean(everyone)) / (_nan_std(everyone) + STD_EPS)
        elif self.args.scale_rewards == "batch":
            centred = group_advantages(rewards, G, scale="none")  # [n]
            advantages = centred / (_nan_std(self.accelerator.gather(rewards)) + STD_EPS)
        else:
            advantages = group_advantages(rewards, G, scale=self.args.scale_rewards)
        return rewards, torch.nan_to_num(advantages, nan=0.0)

    # --- loss -------------------------------------------------------------------------------------------------
    def _high_entropy_mask(self, entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """TRL's ``get_high_entropy_mask``: tokens whose entropy is >= the ``1 - top_entropy_quantile`` quantile of
        every process's unmasked entropies."""
        local = entropies[mask.bool()].float()
        padded = self.accelerator.pad_across_processes(local, dim=0, pad_index=-1e9)
        everyone = self.accelerator.gather(padded)
        everyone = everyone[everyone != -1e9]
        if everyone.numel() == 0:
            return torch.zeros_like(mask, dtype=torch.bool)
        threshold = torch.quantile(everyone, 1 - self.args.top_entropy_quantile)
        return (entropies * mask >= threshold) & mask.bool()  # [N, T]

    def _policy_loss(self, logps: torch.Tensor, entropies: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
        """The micro-batch loss as TRL's ``_compute_loss`` returns it for training, times the accumulation steps
        (the Trainer divides by them again: it knows nothing of our normalisers). ``dapo`` divides by
        ``num_items_in_batch / num_processes * accumulation / steps_per_generation`` like TRL."""
        args, mask = self.args, inputs["completion_mask"]  # [N, T]
        # set by the Trainer's loop (the last window may be shorter); outside it, the configured value
        accumulation = getattr(self, "current_gradient_accumulation_steps", None) or args.gradient_accumulation_steps
        policy_mask = entropy_mask = None
        if args.top_entropy_quantile < 1.0:
            policy_mask = entropy_mask = self._high_entropy_mask(entropies.detach(), mask).to(logps.dtype)
        if args.off_policy_mask_threshold is not None:
            sampling = inputs["old_logps"] if inputs["old_logps"] is not None else logps.detach()
            keep = off_policy_mask(inputs["advantages"], logps, sampling, mask, args.off_policy_mask_threshold)
            policy_mask = keep if policy_mask is None else policy_mask * keep
        loss, stats = grpo_loss(
            logps,
            inputs["old_logps"],
            inputs["ref_logps"],
            inputs["advantages"],
            mask,
            epsilon=args.epsilon,
            epsilon_high=args.epsilon_high,
            beta=args.beta,
            loss_type=args.loss_type,
            max_completion_length=args.max_completion_length,
            return_stats=True,
            num_items_in_batch=inputs.get("num_items_in_batch"),
            importance_sampling_level=args.importance_sampling_level,
            delta=args.delta,
            use_bias_correction_kl=args.use_bias_correction_kl,
            policy_mask=policy_mask,
            importance_weights=inputs.get("importance_weights"),
        )
        if args.loss_type == "dapo":  # TRL: sum / (N / P * accumulation / spg); grpo_loss gave sum / N
            loss = loss * self.accelerator.num_processes * args.steps_per_generation / accumulation
        else:
            loss = loss / accumulation
        policy_loss = loss.detach() * accumulation
        if self._entropy_bonus:
            effective = mask if entropy_mask is None else mask * entropy_mask  # TRL: the entropy mask only
            loss = loss - self._entropy_term(entropies, effective.to(entropies.dtype), accumulation)
            self._metrics["policy_loss"].append(self.accelerator.gather(policy_loss.reshape(1)).nanmean().item())
        self._log_loss_stats(stats, entropies, mask)
        return loss * accumulation

    def _entropy_term(self, entropies: torch.Tensor, mask: torch.Tensor, accumulation: int) -> torch.Tensor:
        """``coef * mean entropy / accumulation`` (TRL: ``L = L_policy - coef * H``); the adaptive controller moves
        ``entropy_coef`` by ``entropy_coef_delta`` toward ``entropy_target`` once per optimizer step."""
        args = self.args
        mean_entropy = (entropies * mask).sum() / mask.sum().clamp(min=1) / accumulation
        coef = self.entropy_coef
        if args.use_adaptive_entropy:
            coef = self.entropy_coef if self._last_world_entropy <= args.entropy_target else 0.0
            window = torch.stack([(entropies * mask).sum(), mask.sum()]).detach().float()
            self._entropy_window = window if self._entropy_window is None else self._entropy_window + window
            if self.accelerator.sync_gradients:
                total = self.accelerator.reduce(self._entropy_window, reduction="sum")
                world = (total[0] / total[1].clamp(min=1)).item()
                if world <= args.entropy_target:
                    self.entropy_coef = min(self.entropy_coef + args.entropy_coef_delta, args.entropy_coef_max)
                else:
                    self.entropy_coef = max(self.entropy_coef - args.entropy_coef_delta, args.entropy_coef_min)
                self._last_world_entropy, self._entropy_window = world, None
        if self.accelerator.sync_gradients:
            self._metrics["entropy_coef"].append(self.entropy_coef)
        return coef * mean_entropy

    def _log_loss_stats(self, stats: dict[str, torch.Tensor], entropies: torch.Tensor, mask: torch.Tensor) -> None:
        mean = lambda t: self.accelerator.gather(t.detach().float().reshape(1)).nanmean().item()  # noqa: E731
        if self.args.beta > 0:
            self._metrics["kl"].append(mean(stats["kl"]))
        for key in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
            self._metrics[key].append(mean(stats[key]))
        ent = entropies.detach().float()
        total = self.accelerator.reduce(torch.stack([(ent * mask).sum(), mask.sum().float()]), reduction="sum")
        self._metrics["entropy"].append((total[0] / total[1].clamp(min=1)).item())

    # --- the adaptive controller's state, beside each checkpoint (as TRL) ------------------------------------
    def _save_entropy_state(self, folder: str) -> None:
        if self.args.use_adaptive_entropy:
            state = {"entropy_coef": self.entropy_coef, "last_world_entropy": self._last_world_entropy}
            with open(os.path.join(folder, ENTROPY_STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f)

    def _load_entropy_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ENTROPY_STATE_FILE)
        if self.args.use_adaptive_entropy and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
            self.entropy_coef, self._last_world_entropy = state["entropy_coef"], state["last_world_entropy"]
