"""Safety-GRPO: config, loss math, rollouts, the video-aware trainer and its logging, one module each.

| module | holds |
|---|---|
| ``config`` | :class:`GRPOConfig` (``trl.GRPOConfig`` with the paper's defaults) |
| ``loss`` | pure loss math on ``[B*G, T]`` tensors: advantages, clipped loss, log-probs |
| ``rollout`` | per-prompt inputs, batch assembly with repeated visuals, generators |
| ``vision_cache`` | runs the frozen vision tower once per prompt |
| ``data`` | raw prompt rows, the generation-batch sampler, reward resolution |
| ``logs`` | metrics, reward histories and the sample table |
| ``trainer`` | :class:`VideoGRPOTrainer` |
| ``vllm_*`` | rollouts on vLLM (``use_vllm``): config checks, generator, weight push, IS correction, server, the
  logits processor vLLM loads; only ``vllm_logits`` and ``vllm_server.serve`` import vLLM |

The trainer imports transformers' ``Trainer`` and loads on first use, so ``import videosafety_r1.grpo`` stays light.
The pre-0.2 flat modules (``videosafety_r1.grpo_trainer``, ``videosafety_r1.rollout``, ...) are aliases of these.
"""

from importlib import import_module
from typing import Any

from .config import ADVANTAGE_SCALES, LOSS_TYPES, GRPOConfig
from .loss import entropy_from_logits, group_advantages, grpo_loss, selective_log_softmax

_LAZY = {"VideoGRPOTrainer": "videosafety_r1.grpo.trainer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videosafety_r1.grpo' has no attribute {name!r}")


__all__ = [
    "ADVANTAGE_SCALES",
    "LOSS_TYPES",
    "GRPOConfig",
    "VideoGRPOTrainer",
    "entropy_from_logits",
    "group_advantages",
    "grpo_loss",
    "selective_log_softmax",
]
