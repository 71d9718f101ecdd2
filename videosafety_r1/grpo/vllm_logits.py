"""A vLLM logits processor that never lets an alarm id or a visual placeholder id be sampled.

vLLM ignores ``generation_config.suppress_tokens``, so the plain export alone would let the engine sample alarm ids
(measured: 16 in 64 x 64 tokens at temperature 1.5). This processor sets those columns to ``-inf`` for every
request, before temperature and top-k/top-p, so greedy and random sampling both skip them.

The package registers it under vLLM's ``vllm.logits_processors`` entry-point group, so any vLLM (``vllm serve
EXPORT``, ``vllm.LLM(EXPORT)``) in an environment where ``videosafety-r1`` is installed loads it by itself. It acts
only on models whose config names alarm ids (``visual_alarm_token_id`` / ``textual_alarm_token_id``, which
``add_alarm_tokens`` writes and the export keeps); any other model is left untouched. Where the package is not
installed as a distribution, pass it explicitly: ``--logits-processors
videosafety_r1.grpo.vllm_logits:AlarmTokenBlocker`` or ``LLM(..., logits_processors=[AlarmTokenBlocker])``.

Import this module only where vLLM is installed.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

from .vllm_config import blocked_token_ids

logger = logging.getLogger(__name__)


class AlarmTokenBlocker(LogitsProcessor):
    """Sets the logits of :func:`blocked_token_ids` to ``-inf`` in every row, every step."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        ids = blocked_token_ids(vllm_config.model_config.hf_config)
        self.ids = torch.tensor(ids, dtype=torch.long, device=device)
        if ids:
            logger.info("vLLM: blocking alarm and visual placeholder ids %s", ids)

    def is_argmax_invariant(self) -> bool:
        return False  # it changes greedy choices too

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        return None  # the same ids for every request: no per-request state

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self.ids.numel():
            logits.index_fill_(1, self.ids, float("-inf"))  # [num_reqs, vocab]
        return logits
