"""Rollout logging of the GRPO trainer: TRL's metric names, the reward history and the sample table.

A mixin so that :class:`~videosafety_r1.grpo.trainer.VideoGRPOTrainer` keeps only the training hooks; it reads
``self._metrics``, ``self._table``, ``self.reward_history``, ``self.reward_term_history``, ``self.reward_func_names`` and ``self.num_generations``,
which the trainer sets up.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers.trainer_callback import PrinterCallback, ProgressCallback

logger = logging.getLogger(__name__)

COMPLETIONS_FILE = "completions.jsonl"
HISTORY_FILE = "reward_history.json"  # in each checkpoint, so a resumed run plots its whole curve
ZERO_SPREAD_WARN_AFTER = 3  # consecutive generation batches in which no group has any reward spread


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

    def _init_logging(self) -> None:
        self._latest_rows: list[dict[str, Any]] = []  # the last generation batch (console table, wandb)
        self._pending_extra: dict[str, list[Any]] = defaultdict(list)
        self._pending_metrics: dict[str, list[float]] = defaultdict(list)
        self._zero_spread_streak = 0
        for kind in (ProgressCallback, PrinterCallback):  # the same callbacks, with tidy numbers
            if self.callback_handler.pop_callback(kind) is not None:
                self.add_callback(TidyProgressCallback if kind is ProgressCallback else TidyPrinterCallback)

    def _log_metric(self, name: str, value: float) -> None:
        """``log_metric`` of TRL's reward protocol: averaged over processes, then over the logging window."""
        self._pending_metrics[name].append(float(value))

    def _flush_reward_metrics(self) -> None:
        """Each ``log_metric`` name's mean over every process's calls of this rollout (as TRL; a collective)."""
        names = list(self._pending_metrics)
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            names = sorted(set(gather_object(names)))  # the same order on every rank
        for name in names:
            values = self._pending_metrics.get(name, [])
            local = torch.tensor([sum(values), len(values)], dtype=torch.float32, device=self.accelerator.device)
            total, count = self.accelerator.gather(local).view(-1, 2).sum(0).tolist()
            self._metrics[name].append(total / count)
        self._pending_metrics.clear()

    def _log_extra(self, column: str, values: list) -> None:
        """``log_extra`` of TRL's reward protocol: one value per completion, a column of the sample table."""
        self._pending_extra[column].extend(values)

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
        zero_spread = (torch.nan_to_num(grouped.std(1)) == 0).float().mean().item()
        m["frac_reward_zero_std"].append(zero_spread)
        self._warn_on_zero_spread(zero_spread)
        self._flush_reward_metrics()
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
        step = self.state.global_step
        if not math.isnan(total := torch.nanmean(all_rewards).item()):
            self.reward_history.append((step, total))
        for j, name in enumerate(self.reward_func_names):  # a sparse term has points only where it scored
            if not math.isnan(term := torch.nanmean(all_per_func[:, j]).item()):
                self.reward_term_history[name].append((step, term))
        extra = dict(self._pending_extra)
        self._pending_extra.clear()
        for column, values in extra.items():
            if len(values) != len(completions):
                raise ValueError(f"log_extra({column!r}) got {len(values)} values for {len(completions)} completions")
        rows = []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            row = {"step": step, "prompt": p, "completion": c, "reward": rewards[i].item()}
            row.update({f"rewards/{n}": per_func[i, j].item() for j, n in enumerate(self.reward_func_names)})
            row.update({column: values[i] for column, values in extra.items()})
            row["advantage"] = advantages[i].item()
            rows.append(row)
        rows = _gather_rows(self.accelerator, rows)  # every process's samples (a collective: all ranks call it)
        self._latest_rows = rows
        self._table.extend(rows)

    def _warn_on_zero_spread(self, fraction: float) -> None:
        self._zero_spread_streak = self._zero_spread_streak + 1 if fraction == 1.0 else 0
        if self._zero_spread_streak == ZERO_SPREAD_WARN_AFTER:
            logger.warning(
                "no reward spread within any group for %d generation batches in a row (step %d): every advantage is "
                "0 and the policy does not learn; check the rewards, num_generations or temperature",
                ZERO_SPREAD_WARN_AFTER,
                self.state.global_step,
            )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Window means of the rollout metrics (NaN values left out, None when none is left: a sparse reward never
        logs nan), then the sample table: completions.jsonl always, the console and wandb with ``log_completions``."""
        metrics = {}
        for key, values in self._metrics.items():
            valid = [v for v in values if not math.isnan(v)]
            metrics[key] = sum(valid) / len(valid) if valid else None
        self._metrics.clear()
        super().log({**logs, **metrics}, start_time)
        self._flush_completions()
        if self.args.log_completions and self.accelerator.is_main_process and self._latest_rows:
            self._show_samples()
        self._latest_rows = []  # each generation batch is shown once

    def _flush_completions(self) -> None:
        """Append the pending sample rows to ``completions.jsonl`` (main process)."""
        if self._table and self.accelerator.is_main_process:
            out = Path(self.args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            with (out / COMPLETIONS_FILE).open("a", encoding="utf-8") as f:
                for row in self._table:
                    f.write(json.dumps(_json_row(row), ensure_ascii=False) + "\n")
        self._table = []

    def _trim_completions(self, checkpoint: str | Path) -> None:
        """On resume, drop the rows of steps at or after the checkpoint's: they are sampled again (replayed)."""
        state = Path(checkpoint) / "trainer_state.json"
        path = Path(self.args.output_dir) / COMPLETIONS_FILE
        if not (state.is_file() and path.is_file() and self.accelerator.is_main_process):
            return
        step = json.loads(state.read_text(encoding="utf-8"))["global_step"]
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) < step]
        if len(kept) != len(lines):
            path.write_text("".join(kept), encoding="utf-8")
            logger.info(
                "%s: dropped %d rows of steps >= %d (replayed after resume)", path, len(lines) - len(kept), step
            )

    def _show_samples(self) -> None:
        """The latest generation batch's samples: a plain-text table in the log (``num_completions_to_print`` rows,
        all when None) and a wandb Table (``log_unique_prompts``: one row per prompt)."""
        rows = self._latest_rows
        shown = rows if self.args.num_completions_to_print is None else rows[: self.args.num_completions_to_print]
        logger.info("samples at step %d:\n%s", self.state.global_step, format_sample_table(shown))
        if "wandb" in (self.args.report_to or []):
            import wandb

            if wandb.run is not None:
                if self.args.log_unique_prompts:
                    rows = list({r["prompt"]: r for r in reversed(rows)}.values())[::-1]
                clean = [_json_row(r) for r in rows]
                columns = list(clean[0])
                table = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in clean])
                wandb.log({"completions": table})


def format_sample_table(rows: list[dict[str, Any]], width: int = 60) -> str:
    """Rows as an aligned plain-text table: text cut to ``width`` characters, numbers with 3 decimals."""
    if not rows:
        return "(no samples)"
    columns = list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.3f}"
        text = " ".join(str(value).split())
        return text if len(text) <= width else text[: width - 3] + "..."

    table = [columns] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join(" | ".join(v.ljust(w) for v, w in zip(line, widths)) for line in table)


def tidy_number(value: Any) -> Any:
    """Console form of a logged value: integral floats as ints, others with 3 decimals (scientific below 1e-3)."""
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return int(value)
    return f"{value:.3e}" if abs(value) < 1e-3 else f"{value:.3f}"


class TidyProgressCallback(ProgressCallback):
    """transformers' progress bar, printing logs with :func:`tidy_number`."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.training_bar is not None:
            shown = {k: tidy_number(v) for k, v in (logs or {}).items() if k != "total_flos"}
            self.training_bar.write(str(shown))


class TidyPrinterCallback(PrinterCallback):
    """transformers' printer (``disable_tqdm``), through logging and :func:`tidy_number`."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if state.is_local_process_zero:
            shown = {k: tidy_number(v) for k, v in (logs or {}).items() if k != "total_flos"}
            logger.info("%s", shown)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _gather_rows(accelerator: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if accelerator.num_processes == 1:
        return rows
    from accelerate.utils import gather_object

    return gather_object(rows)


def _nanstd(x: torch.Tensor) -> torch.Tensor:
    x = x[~torch.isnan(x)]
    return x.std() if x.numel() > 1 else x.new_tensor(0.0)
