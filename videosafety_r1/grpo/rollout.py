"""Rollout pieces of the GRPO trainer: per-prompt inputs, batch assembly with repeated visuals, generation.

Prompts are collated one at a time, so each prompt's visual tensors (``pixel_values_videos`` patch rows,
``video_grid_thw`` rows, ``second_per_grid_ts``, VideoLLaMA3's merge sizes and compression mask, image fields) are
known exactly, whatever the family. Batches are then built by index: repeating prompt ``i`` ``G`` times repeats its
text row and its per-video patch blocks (pixel tensors are concatenated patches, not batch-first).

Generation sits behind :class:`Generator`: anything with ``__call__(model, inputs) -> completion_ids [N, C]``. The
HF ``generate`` one is :class:`HFGenerator`; a vLLM client can plug in later with the same call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..zero3 import any_partitioned, gathered
from .vision_cache import CachedVisionTower

logger = logging.getLogger(__name__)

TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
# pixel key -> the grid-like keys whose rows are per video (or per frame) of that modality
VISUAL_GROUPS = {
    "pixel_values_videos": ("video_grid_thw", "second_per_grid_ts", "video_merge_sizes"),
    "pixel_values": ("image_grid_thw", "image_merge_sizes"),
}

_VISUAL_KEYS = {k for pair in VISUAL_GROUPS.items() for k in (pair[0], *pair[1])}


@dataclass
class PromptItem:
    """One prompt: text tensors ``[1, L]``, visual tensors (rows of this prompt only) and reward columns."""

    tensors: dict[str, torch.Tensor]
    columns: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""


def collate_prompt(collator: Callable[[list[Any]], dict[str, Any]], row: Any) -> PromptItem:
    """Run the prompt collator on one row and split its output into tensors and per-row columns."""
    batch = collator([row])
    tensors, columns = {}, {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        elif key in _VISUAL_KEYS:  # a per-video list (e.g. second_per_grid_ts)
            tensors[key] = torch.as_tensor(value)
        elif isinstance(value, (list, tuple)) and len(value) == 1:
            columns[key] = value[0]
    prompt = columns.pop("prompts", columns.pop("prompt", ""))
    return PromptItem(tensors, columns, prompt)


def assemble(
    items: Sequence[PromptItem],
    order: Sequence[int],
    pad_token_id: int,
    device: torch.device | str | None = None,
    vision_dtype: torch.dtype | None = None,
    cache: CachedVisionTower | None = None,
    owner_prefix: Hashable = 0,
    completion_ids: torch.Tensor | None = None,
    completion_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Model inputs for prompts ``order`` (indices into ``items``, repeats allowed), left-padded.

    With ``completion_ids`` ``[N, C]`` the completion is appended (attention from ``completion_mask``,
    ``mm_token_type_ids`` 0). Pixel tensors are registered with ``cache`` so each prompt's video is encoded once.
    """
    rows = [items[i] for i in order]
    width = max(r.tensors["input_ids"].shape[1] for r in rows)
    out: dict[str, torch.Tensor] = {}
    for key in TEXT_KEYS:
        if key not in rows[0].tensors:
            continue
        pad = pad_token_id if key == "input_ids" else 0
        padded = []
        for r in rows:
            t = r.tensors[key]  # [1, L]
            padded.append(torch.nn.functional.pad(t, (width - t.shape[1], 0), value=pad))
        out[key] = torch.cat(padded)  # [N, P]
    for key in dict.fromkeys(k for r in rows for k in r.tensors):  # every row's keys: batches mix modalities
        if key not in TEXT_KEYS:
            out[key] = torch.cat([r.tensors[key] for r in rows if key in r.tensors])
    if completion_ids is not None:
        c_mask = completion_mask if completion_mask is not None else torch.ones_like(completion_ids)
        out["input_ids"] = torch.cat([out["input_ids"], completion_ids.to(out["input_ids"])], 1)  # [N, P+C]
        out["attention_mask"] = torch.cat([out["attention_mask"], c_mask.to(out["attention_mask"])], 1)
        if "mm_token_type_ids" in out:
            zeros = torch.zeros_like(completion_ids, dtype=out["mm_token_type_ids"].dtype)
            out["mm_token_type_ids"] = torch.cat([out["mm_token_type_ids"], zeros], 1)
    out = {k: v.to(device) if device is not None else v for k, v in out.items()}
    for pixel_key, grid_keys in VISUAL_GROUPS.items():
        if pixel_key not in out:
            continue
        if vision_dtype is not None and out[pixel_key].is_floating_point():
            out[pixel_key] = out[pixel_key].to(vision_dtype)  # the model's own cast is then a no-op: same tensor
        if cache is not None:
            holders = [(i, r) for i, r in zip(order, rows) if pixel_key in r.tensors]
            grid_key = next((g for g in grid_keys if g in out), None)
            cache.register(
                out[pixel_key],
                owners=[(owner_prefix, pixel_key, i) for i, _ in holders],
                patch_rows=[r.tensors[pixel_key].shape[0] for _, r in holders],
                grid_rows=[r.tensors[grid_key].shape[0] if grid_key else 1 for _, r in holders],
            )
    return out


def completion_mask_after_eos(completion_ids: torch.Tensor, eos_token_ids: Sequence[int]) -> torch.Tensor:
    """``[N, C]`` bool mask: tokens up to and including the first EOS; every token of a row without EOS."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_token_ids), device=completion_ids.device))  # [N, C]
    width = completion_ids.shape[1]
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(is_eos[:, 0], width, dtype=torch.long))
    return torch.arange(width, device=completion_ids.device).unsqueeze(0) <= first.unsqueeze(1)  # [N, C]


def placeholder_token_ids(model: nn.Module) -> list[int]:
    """Ids of the visual placeholder tokens (image/video pads, vision start/end): a sampled one would break the
    model's features-to-tokens matching in every later pass, so rollouts suppress them."""
    ids = set()
    configs = [getattr(model, "config", None)]
    configs.append(getattr(configs[0], "text_config", None))
    for config in configs:
        for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                ids.add(value)
    return sorted(ids)


class Generator(Protocol):
    """Samples completions: ``inputs`` are the ``[N, P]`` prompt batch (with visual tensors); returns ``[N, C]``."""

    def __call__(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor: ...


@dataclass
class HFGenerator:
    """Sampling with the model's own ``generate`` (alarm ids are suppressed by ``AlarmVideoLLM.generate``)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    pad_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    suppress_token_ids: list[int] = field(default_factory=list)  # visual placeholders must never be sampled
    extra: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.generate(**inputs, **self.generate_kwargs())[:, inputs["input_ids"].shape[1] :]  # [N, C]

    def generate_kwargs(self) -> dict[str, Any]:
        """Sampling settings for ``generate``: ``extra`` (``generation_kwargs``) overrides the defaults, except
        ``suppress_tokens``, which is the union of both (the placeholders must stay suppressed)."""
        kwargs: dict[str, Any] = dict(
            do_sample=True,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
            use_cache=True,
        )
        extra = dict(self.extra)
        suppress = list(self.suppress_token_ids) + [
            t for t in extra.pop("suppress_tokens", None) or [] if t not in self.suppress_token_ids
        ]
        kwargs.update(extra)
        if suppress:
            kwargs["suppress_tokens"] = suppress
        return kwargs


@contextlib.contextmanager
def unwrapped_for_generation(model: nn.Module, accelerator: Any, gather_zero3: bool = True) -> Iterator[nn.Module]:
    """The bare model in eval mode for sampling; with ``gather_zero3`` ZeRO-3 parameters are whole inside the block.

    Unlike TRL's ``unwrap_model_for_generation`` this leaves gradient checkpointing on: it is inactive in eval mode
    anyway, and switching it off and on around every rollout makes transformers register another input-grad hook
    on the embeddings each time. Without the gather, transformers' ``generate`` keeps ZeRO-3 ranks in step itself.
    """
    unwrapped = accelerator.unwrap_model(model)
    was_training = unwrapped.training
    unwrapped.eval()
    try:
        if gather_zero3 and any_partitioned(unwrapped):
            from trl.models.utils import add_hooks, remove_hooks

            with gathered(list(model.parameters())):
                remove_hooks(model)  # DeepSpeed's fetch/release hooks would re-partition mid-generate
                try:
                    yield unwrapped
                finally:
                    add_hooks(model)
        else:
            yield unwrapped
    finally:
        unwrapped.train(was_training)
