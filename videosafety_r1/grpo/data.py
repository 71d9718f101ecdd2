"""Data plumbing of the GRPO trainer: raw prompt rows, the generation-batch sampler, reward-function resolution.

Kept out of :mod:`videosafety_r1.grpo.trainer` so the trainer module holds only the training loop hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from ..data.schema import GRPORecord, Media, SafetyLabels
from ..rewards import get_reward_func, resolve_reward

RewardFunc = Callable[..., list]


def keep_rows(rows: list[Any]) -> list[Any]:
    """Dataloader collate: keep raw rows; prompts are collated (and videos decoded) once per generation batch."""
    return rows


def as_grpo_record(row: Any) -> Any:
    """A ``GRPORecord`` from a dict row (``to_hf_dataset`` / JSON form); other rows pass through unchanged."""
    if not isinstance(row, dict) or "problem" not in row:
        return row
    labels = row.get("safety_labels")
    return GRPORecord(
        id=row["id"],
        media=Media.from_dict(row.get("media")),
        problem=row["problem"],
        problem_type=row["problem_type"],
        solution=row["solution"],
        options=row.get("options"),
        safety_labels=SafetyLabels(**labels) if labels else None,
        category=row.get("category"),
        language=row.get("language"),
    )


def row_columns(row: Any) -> dict[str, Any]:
    """Every dataset column of one row, for the reward functions (TRL's protocol): a dict row's keys (TRL's
    ``prompt``, ``completion`` and ``completion_ids`` excepted) or a record's fields."""
    if isinstance(row, dict):
        return {k: v for k, v in row.items() if k not in ("prompt", "completion", "completion_ids")}
    if hasattr(row, "to_dict"):
        return {k: v for k, v in row.to_dict().items() if k != "kind"}
    return {}


class GenerationBatchSampler(Sampler[int]):
    """Prompt indices, one generation batch (``chunk`` prompts over all processes) at a time, each repeated
    ``repeat = steps_per_generation * num_iterations`` times so the Trainer counts one dataloader batch per
    micro-step. Unlike TRL's ``RepeatSampler`` a prompt is not repeated ``G`` times here: groups are built after
    collation, so each prompt's video is decoded and processed once.

    Epoch ``e`` draws the ``e+1``-th permutation of one generator seeded with ``seed``: a function of
    ``(seed, epoch)``, so a run resumed in a later epoch (the Trainer calls ``set_epoch``) sees the uninterrupted
    run's order. Without ``set_epoch`` each iteration moves on to the next epoch."""

    def __init__(self, size: int, chunk: int, repeat: int, shuffle: bool = True, seed: int = 0) -> None:
        self.size, self.chunk, self.repeat, self.shuffle = size, chunk, repeat, shuffle
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.arange(self.size)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed)
            for _ in range(self.epoch + 1):
                order = torch.randperm(self.size, generator=generator)
        self.epoch += 1
        for start in range(0, self.size - self.chunk + 1, self.chunk):
            chunk = order[start : start + self.chunk].tolist()
            for _ in range(self.repeat):
                yield from chunk

    def __len__(self) -> int:
        return (self.size // self.chunk) * self.chunk * self.repeat


def reward_name(func: Any) -> str:
    """The name metrics use (``rewards/<name>/mean``): a config name's function part, or the callable's name."""
    if isinstance(func, str):
        return func.rpartition(":")[2]
    return getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", type(func).__name__)


def resolve_reward_funcs(
    names_or_funcs: Sequence[str | RewardFunc],
    params: dict[str, Any],
    per_reward: dict[str, dict[str, Any]] | None = None,
) -> list[RewardFunc]:
    """Config names (registry keys or ``package.module:function``) -> functions with their arguments bound: the
    shared ``params`` the function's signature accepts, then ``per_reward[name]`` (all of it); callables pass
    through."""
    funcs = []
    for item in names_or_funcs:
        if not isinstance(item, str):
            funcs.append(item)
            continue
        accepted = inspect.signature(resolve_reward(item)).parameters
        bound = {k: v for k, v in params.items() if k in accepted}
        bound.update((per_reward or {}).get(item, {}))
        funcs.append(get_reward_func(item, **bound))
    return funcs
