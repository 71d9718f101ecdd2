"""DeepSpeed ZeRO-3 helpers: parameters partitioned across ranks, gathered wherever a whole tensor is needed.

Under ZeRO-3 every parameter holds only this rank's slice (an empty tensor outside a forward), with its real shape
in ``ds_shape``. Reading ``.shape``, ``.sum()`` or ``.detach()`` of such a parameter silently gives an empty tensor,
so code that needs the whole value goes through these helpers. Without DeepSpeed (or under ZeRO-1/2) they are
no-ops. This module imports nothing from the package (every layer may use it) and DeepSpeed only when a parameter
is actually partitioned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn


def is_partitioned(param: torch.Tensor) -> bool:
    """True for a ZeRO-3 parameter (its data may be only this rank's slice)."""
    return hasattr(param, "ds_id")


def full_shape(param: torch.Tensor) -> torch.Size:
    """The parameter's real shape, also while ZeRO-3 holds only a slice of it."""
    return param.ds_shape if is_partitioned(param) else param.shape


@contextlib.contextmanager
def gathered(params: Iterable[torch.Tensor], modifier_rank: int | None = None) -> Iterator[None]:
    """Inside the block, every partitioned parameter of ``params`` is whole on every rank.

    A collective under ZeRO-3: every rank must enter the block with the same parameters. With ``modifier_rank``,
    that rank's in-place changes are scattered back on exit (as ``deepspeed.zero.GatheredParameters``).
    """
    parts = [p for p in params if is_partitioned(p)]
    if not parts:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(parts, modifier_rank=modifier_rank):
        yield


def any_partitioned(module: nn.Module) -> bool:
    """True when some parameter of ``module`` is ZeRO-3 partitioned."""
    return any(is_partitioned(p) for p in module.parameters())


@contextlib.contextmanager
def zero3_init_disabled() -> Iterator[None]:
    """Models built inside the block load whole, not partitioned, although a ZeRO-3 Trainer is configured.

    transformers partitions every model that ``from_pretrained`` builds while a ZeRO-3 config is registered, which
    needs all ranks; use this block for work one rank does alone, such as reloading a saved checkpoint to export it.
    """
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:  # pragma: no cover - transformers always has the module
        yield
        return
    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    config = ref() if ref is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


@torch.no_grad()
def parameter_checksum(model: nn.Module) -> float:
    """Sum of every parameter (float64), each gathered whole first under ZeRO-3.

    A collective under ZeRO-3 (call it on every rank); every rank returns the same number for the same weights.
    """
    total = 0.0
    for param in model.parameters():
        with gathered([param]):
            total += float(param.detach().double().sum())
    return total


def close_process_group() -> None:
    """End a multi-process run together: every rank waits, then the process group is destroyed.

    A rank that leaves while another still works (rank 0 exporting) can abort at interpreter exit with live gloo /
    NCCL threads ("terminate called without an active exception"). A no-op in a single process.
    """
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()
