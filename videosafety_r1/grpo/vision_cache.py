"""Run the frozen vision tower once per prompt per GRPO step and reuse its output everywhere else.

A GRPO step feeds each prompt's video to the model ``G`` times in the rollout, again in the policy log-prob pass,
possibly in an old-policy pass and in the reference pass. The tower is frozen, so all of these see the same
features. transformers forwards take no precomputed video features (and Qwen3-VL feeds deepstack features into
several LLM layers, so ``inputs_embeds`` is no way in), hence a memoising stand-in for the vision module:

- the trainer *registers* every pixel tensor it builds with the owner (prompt) of each per-video block;
- when the model calls the tower with a registered tensor, each owner's block is encoded once (under ``no_grad``)
  and the output rows are stitched back together in the batch's order; unregistered tensors pass straight through.

The stand-in lives in the parent module's instance ``__dict__`` (``model.visual`` resolves to it), while
``_modules`` keeps the real tower, so state dicts, ``named_modules`` and forward hooks on the tower are untouched:
a hook on the tower counts real encodings only.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..constants import VISION_TOWER_NAMES

logger = logging.getLogger(__name__)

VISION_MODULE_NAMES = VISION_TOWER_NAMES  # the encoders only; projectors run on cached features


def find_vision_module(model: nn.Module) -> tuple[nn.Module, str, nn.Module] | None:
    """``(parent, attribute, tower)`` of the first vision tower inside ``model``, or None for a text-only model."""
    for name, module in model.named_modules():
        parent_name, _, leaf = name.rpartition(".")
        if leaf in VISION_MODULE_NAMES:
            return model.get_submodule(parent_name) if parent_name else model, leaf, module
    return None


@dataclass
class _Layout:
    """Per-video blocks of one registered pixel tensor, in batch order."""

    tensor: torch.Tensor  # kept alive so its data_ptr cannot be reused by another tensor
    owners: list[Hashable]
    patch_rows: list[int]  # rows of the pixel tensor per block
    grid_rows: list[int]  # rows of the grid-like kwargs (grid_thw, merge_sizes) per block


def _key(t: torch.Tensor) -> tuple[int, tuple[int, ...]]:
    return t.data_ptr(), tuple(t.shape)


def _split_sizes(total: int, patch_rows: list[int]) -> list[int]:
    """Rows per owner of an output with ``total`` rows: per patch, or per merged token (a constant ratio)."""
    patches = sum(patch_rows)
    if total == patches:
        return patch_rows
    if total > 0 and patches % total == 0 and all(p % (patches // total) == 0 for p in patch_rows):
        return [p // (patches // total) for p in patch_rows]
    raise RuntimeError(f"cannot split a vision output of {total} rows over blocks of {patch_rows} patches")


class CachedVisionTower:
    """Callable stand-in for a frozen vision tower that encodes each registered owner's block once per step."""

    def __init__(self, tower: nn.Module) -> None:
        self.tower = tower
        self.encoded_blocks = 0  # owners actually encoded (for tests and logs)
        self.hits = 0  # calls answered (at least partly) from the store
        self._layouts: dict[tuple[int, tuple[int, ...]], _Layout] = {}
        self._store: dict[Hashable, dict[str, Any]] = {}
        self._out_type: type | None = None

    def __getattr__(self, name: str) -> Any:  # dtype, device, spatial_merge_size, ...
        return getattr(self.tower, name)

    def clear(self) -> None:
        """Forget every registration and stored output (call at each new generation batch)."""
        self._layouts.clear()
        self._store.clear()

    def register(
        self, pixels: torch.Tensor, owners: Sequence[Hashable], patch_rows: Sequence[int], grid_rows: Sequence[int]
    ) -> None:
        if sum(patch_rows) != pixels.shape[0]:
            raise ValueError(f"blocks of {list(patch_rows)} rows do not cover a pixel tensor of {pixels.shape[0]}")
        self._layouts[_key(pixels)] = _Layout(pixels, list(owners), list(patch_rows), list(grid_rows))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pixels = args[0] if args else kwargs.get("pixel_values", kwargs.get("hidden_states"))
        layout = self._layouts.get(_key(pixels)) if isinstance(pixels, torch.Tensor) else None
        if layout is None:
            return self.tower(*args, **kwargs)
        missing = [o for o in dict.fromkeys(layout.owners) if o not in self._store]
        if missing:
            self._encode(layout, missing, args, kwargs)
        if len(missing) < len(set(layout.owners)):
            self.hits += 1
        return self._assemble(layout.owners)

    def _encode(self, layout: _Layout, missing: list[Hashable], args: tuple, kwargs: dict[str, Any]) -> None:
        p_off = torch.tensor([0] + layout.patch_rows).cumsum(0).tolist()
        g_off = torch.tensor([0] + layout.grid_rows).cumsum(0).tolist()
        first = {o: i for i, o in reversed(list(enumerate(layout.owners)))}
        blocks = [first[o] for o in missing]
        pixels = layout.tensor
        p_idx = torch.cat([torch.arange(p_off[b], p_off[b + 1]) for b in blocks]).to(pixels.device)
        g_idx = torch.cat([torch.arange(g_off[b], g_off[b + 1]) for b in blocks])
        n_grid = g_off[-1]

        def pick(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == n_grid and v is not pixels:
                return v.index_select(0, g_idx.to(v.device))
            return v

        sub_args = (pixels.index_select(0, p_idx),) + tuple(pick(a) for a in args[1:]) if args else ()
        sub_kwargs = {k: pick(v) for k, v in kwargs.items()}
        if not args:
            name = "pixel_values" if "pixel_values" in kwargs else "hidden_states"
            sub_kwargs[name] = pixels.index_select(0, p_idx)
        with torch.no_grad():
            out = self.tower(*sub_args, **sub_kwargs)
        self.encoded_blocks += len(missing)
        self._out_type = type(out)
        rows = [layout.patch_rows[b] for b in blocks]
        fields = out.items() if hasattr(out, "items") else {"last_hidden_state": out}.items()
        pieces: dict[Hashable, dict[str, Any]] = {o: {} for o in missing}
        for name, value in fields:
            if isinstance(value, torch.Tensor) and value.dim() >= 1:
                parts = value.detach().split(_split_sizes(value.shape[0], rows))
                for o, part in zip(missing, parts, strict=True):
                    pieces[o][name] = part
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
                per = [v.detach().split(_split_sizes(v.shape[0], rows)) for v in value]
                for i, o in enumerate(missing):
                    pieces[o][name] = [p[i] for p in per]
            else:
                for o in missing:
                    pieces[o][name] = value
        self._store.update(pieces)

    def _assemble(self, owners: list[Hashable]) -> Any:
        parts = [self._store[o] for o in owners]
        out: dict[str, Any] = {}
        for name, value in parts[0].items():
            if isinstance(value, torch.Tensor):
                out[name] = torch.cat([p[name] for p in parts])
            elif isinstance(value, list):
                out[name] = [torch.cat([p[name][i] for p in parts]) for i in range(len(value))]
            else:
                out[name] = value
        if self._out_type is torch.Tensor:
            return out["last_hidden_state"]
        return self._out_type(**out)


def install_vision_cache(*models: nn.Module) -> CachedVisionTower | None:
    """Install one shared :class:`CachedVisionTower` in every model (policy, reference); None if text-only.

    Later models get the first model's tower object in place of their own, so the reference shares the frozen
    tower (and its step store) instead of holding a second copy.
    """
    found = [find_vision_module(m) for m in models]
    if found[0] is None:
        return None
    parent, attr, tower = found[0]
    if any(p.requires_grad for p in tower.parameters()):
        logger.warning("the vision tower has trainable parameters: its output is not reused across passes")
        return None
    cache = CachedVisionTower(tower)
    for entry in found:
        if entry is None:
            continue
        p, a, _ = entry
        p._modules[a] = tower
        p.__dict__[a] = cache
    return cache


def share_vision_tower(policy: nn.Module, *others: nn.Module) -> None:
    """Point the other models (the reference) at the policy's frozen tower instead of their own copy."""
    entry = find_vision_module(policy)
    if entry is None or any(p.requires_grad for p in entry[2].parameters()):
        return
    for model in others:
        other = find_vision_module(model)
        if other is not None:
            other[0]._modules[other[1]] = entry[2]


def remove_vision_cache(*models: nn.Module) -> None:
    """Undo :func:`install_vision_cache` (the shared tower stays shared)."""
    for model in models:
        entry = find_vision_module(model)
        if entry is not None:
            entry[0].__dict__.pop(entry[1], None)
