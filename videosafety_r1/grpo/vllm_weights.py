"""The policy's weights as the engine loads them: plain transformers names, alarm vectors baked into their rows.

The engine serves a plain export (:func:`videosafety_r1.alarm.export_plain_checkpoint`), so each push must look like
that export's weights: a LoRA adapter merged into its base, the two alarm vectors written into the input-embedding
rows of the alarm ids, names as the transformers model's own ``state_dict`` gives them (vLLM's loaders map them).
Under DeepSpeed ZeRO-3 each module's parameters are gathered while they are read (every rank must call).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn

from ..zero3 import any_partitioned, full_shape, gathered

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def merged_lora(model: nn.Module) -> Iterator[nn.Module]:
    """The transformers model under ``model`` (an ``AlarmVideoLLM``, a PEFT model or a plain one), with a LoRA
    adapter merged into its base weights inside the block and unmerged after it (as TRL does for vLLM).

    Under ZeRO-3 a merge needs whole weights: the whole model is gathered for the block (a collective, as TRL does),
    and the merged values are dropped when it is partitioned again."""
    base = getattr(model, "base", model)  # AlarmVideoLLM -> its base
    if not hasattr(base, "peft_config"):
        yield base
        return
    with gathered(list(model.parameters())) if any_partitioned(base) else contextlib.nullcontext():
        base.merge_adapter()
        try:
            yield base.get_base_model()
        finally:
            base.unmerge_adapter()


def _clean_name(name: str) -> str | None:
    """PEFT's names back to the base model's (``...q_proj.base_layer.weight`` -> ``...q_proj.weight``, a trained
    ``modules_to_save`` copy under its module's name); None for adapter parameters (merged in already) and for the
    stale original of a ``modules_to_save`` module."""
    if "lora_" in name or ".original_module." in name:
        return None
    return name.replace(".base_layer", "").replace(".modules_to_save.default", "")


def _plain_model(model: nn.Module) -> nn.Module:
    """The transformers model whose parameters are pushed (a PEFT model's base model; its LoRA names are cleaned)."""
    base = getattr(model, "base", model)
    return base.get_base_model() if hasattr(base, "peft_config") else base


class EngineWeights:
    """The pushed weights of ``model``: iterate for ``(name, tensor)`` pairs (see :func:`engine_weights`);
    :meth:`specs` announces their ``(name, dtype, shape)`` in the same order without reading any value (no ZeRO-3
    gather, no LoRA merge), for transports that must announce a push before sending it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def specs(self) -> list[tuple[str, str, list[int]]]:
        out = []
        for _, params in _module_params(_plain_model(self.model)):
            for name, p in params:
                out.append((name, str(p.dtype).removeprefix("torch."), list(full_shape(p))))
        return out

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return _engine_weights(self.model)


def _module_params(plain: nn.Module) -> Iterator[tuple[nn.Module, list[tuple[str, nn.Parameter]]]]:
    """Per module, its own parameters under their pushed names (adapter parameters and stale copies left out)."""
    for module_name, module in plain.named_modules():
        params = []
        for pname, p in module.named_parameters(recurse=False):
            name = _clean_name(f"{module_name}.{pname}" if module_name else pname)
            if name is not None:
                params.append((name, p))
        if params:
            yield module, params


def engine_weights(model: nn.Module) -> EngineWeights:
    """``(name, tensor)`` of every LLM and vision parameter the checkpoint holds, detached, with the alarm vectors
    in their embedding rows, a LoRA adapter merged (the base weights are unmerged again once an iteration is
    exhausted; the yielded tensors are copies then). Each iteration reads the weights anew (ZeRO-3: a collective)."""
    return EngineWeights(model)


def _engine_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    alarm = getattr(model, "alarm_embedding", None)
    lora = hasattr(getattr(model, "base", model), "peft_config")
    with merged_lora(model) as plain:
        emb = plain.get_input_embeddings().weight
        ids = torch.tensor(getattr(model, "alarm_token_ids", []), dtype=torch.long, device=emb.device)
        # under ZeRO-3 each module is gathered in turn; with LoRA the whole model already is (merged_lora)
        partitioned = any_partitioned(plain) and not lora
        copies = any_partitioned(plain) or lora
        for module, params in _module_params(plain):
            all_params = [p for _, p in module.named_parameters(recurse=False)]
            with gathered(all_params) if partitioned else contextlib.nullcontext():
                for name, p in params:
                    tensor = p.detach()
                    if p is emb and alarm is not None and ids.numel():
                        with gathered([alarm.weight]) if partitioned else contextlib.nullcontext():
                            tensor = tensor.clone()
                            tensor[ids] = alarm.weight.detach().to(tensor.dtype)  # [2, H] rows baked in
                    # copies where the live tensor changes after the block: a merged LoRA weight is unmerged, a
                    # gathered ZeRO-3 parameter is released
                    yield name, tensor.clone() if copies else tensor
