"""Rollout logging of the GRPO trainer: TRL's metric names, the reward history and the sample table.

A mixin so that :class:`~videosafety_r1.grpo.trainer.VideoGRPOTrainer` keeps only the training hooks; it reads
``self._metrics``, ``self._table``, ``self.reward_history``, ``self.reward_term_history``, ``self.reward_func_names`` and ``self.num_generations``,
which the trainer sets up.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

COMPLETIONS_FILE = "completions.jsonl"
HISTORY_FILE = "reward_history.json"  # in each checkpoint, so a resumed run plots its whole curve


class RolloutLogMixin:
    """Per-rollout metrics averaged over each logging window, plus ``completions.jsonl`` and a wandb Table."""

    def _write_history(self, folder: str | Path) -> None:
        """Save the reward histories beside a checkpoint (main process)."""
        data = {"total": self.reward_history, "terms": self.reward_term_history}
        (Path(folder) / HISTORY_FILE).write_text(json.dumps(data), encoding="utf-8")

    def _read_history(self, checkpoint: str | Path) -> None:
        """Start from a checkpoint's reward histories (those of steps before it), when it has them."""
        path = Path(checkpoint) / HISTORY_FILE
        if not path.is_file():
            return
        data = json.loads(path.read_text(encoding="utf-8"))
        self.reward_history = [(int(s), float(v)) for s, v in data["total"]]
        for name in self.reward_term_history:
            self.reward_term_history[name] = [(int(s), float(v)) for s, v in data["terms"].get(name, [])]

    def _log_metric(self, name: str, value: float) -> None:
        self._metrics[name].append(float(value))

    def _log_rollout(
        self,
        prompts: list[str],
        completions: list[str],
        per_func: torch.Tensor,
        rewards: torch.Tensor,
        advantages: torch.Tensor,
        lengths: torch.Tensor,
        truncated: torch.Tensor,
    ) -> None:
        g = self.accelerator.gather
        all_rewards, all_per_func = g(rewards), g(per_func)
        all_lengths, all_trunc = g(lengths).float(), g(truncated).float()
        m = self._metrics
        m["reward"].append(torch.nanmean(all_rewards).item())
        m["reward_std"].append(torch.nan_to_num(_nanstd(all_rewards)).item())
        for j, name in enumerate(self.reward_func_names):
            m[f"rewards/{name}/mean"].append(torch.nanmean(all_per_func[:, j]).item())
            m[f"rewards/{name}/std"].append(torch.nan_to_num(_nanstd(all_per_func[:, j])).item())
        grouped = all_rewards.view(-1, self.num_generations)
        m["frac_reward_zero_std"].append((torch.nan_to_num(grouped.std(1)) == 0).float().mean().item())
        adv = g(advantages)
        m["advantages/mean"].append(adv.mean().item())
        m["advantages/std"].append(adv.std().item() if adv.numel() > 1 else 0.0)
        m["advantages/max"].append(adv.max().item())
        m["advantages/min"].append(adv.min().item())
        m["completions/mean_length"].append(all_lengths.mean().item())
        m["completions/min_length"].append(all_lengths.min().item())
        m["completions/max_length"].append(all_lengths.max().item())
        m["completions/clipped_ratio"].append(all_trunc.mean().item())
        term = all_lengths[all_trunc == 0]
        m["completions/mean_terminated_length"].append(term.mean().item() if term.numel() else 0.0)
        self.reward_history.append((self.state.global_step, torch.nanmean(all_rewards).item()))
        for j, name in enumerate(self.reward_func_names):
            self.reward_term_history[name].append((self.state.global_step, torch.nanmean(all_per_func[:, j]).item()))
        for i, (p, c) in enumerate(zip(prompts, completions)):
            row = {"step": self.state.global_step, "prompt": p, "completion": c, "reward": rewards[i].item()}
            row.update({f"rewards/{n}": per_func[i, j].item() for j, n in enumerate(self.reward_func_names)})
            row["advantage"] = advantages[i].item()
            self._table.append(row)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        metrics = {k: sum(v) / len(v) for k, v in self._metrics.items() if v}
        self._metrics.clear()
        super().log({**logs, **metrics}, start_time)
        if self._table and self.accelerator.is_main_process:
            self._write_table()
        self._table = []

    def _write_table(self) -> None:
        out = Path(self.args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        clean = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in self._table]
        with (out / COMPLETIONS_FILE).open("a", encoding="utf-8") as f:
            for row in clean:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        report_to = self.args.report_to or []
        if "wandb" in report_to:
            import wandb

            if wandb.run is not None:
                columns = list(clean[0])
                table = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in clean])
                wandb.log({"completions": table})


def _nanstd(x: torch.Tensor) -> torch.Tensor:
    x = x[~torch.isnan(x)]
    return x.std() if x.numel() > 1 else x.new_tensor(0.0)
