"""vLLM tests: run in the venv `make vllm-env` builds (`make test-vllm`). A missing vLLM fails them, never skips.

The main suite deselects them (marker `vllm`); nothing here imports vLLM at collection time. The folder is not
called `tests/vllm`: pytest puts `tests/` on `sys.path`, and a `vllm` folder there would pass for the vllm package
(TRL would then believe vLLM is installed).
"""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def vllm_cpu_engine_env():
    """The engine in-process (weights pushed as tensors, engines created inside pytest) and a 1 GiB KV cache."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    try:
        import vllm  # noqa: F401
    except ImportError as e:  # a failure, not a skip: CI must not pass without the engine
        pytest.fail(f"vLLM is not importable ({e}): build its venv with `make vllm-env` and run `make test-vllm`")
    yield


@pytest.fixture(scope="session")
def make_blocked_logits_large():
    return _make_blocked_logits_large


def _make_blocked_logits_large(model, scale: float = 2.0) -> None:
    """Make the alarm and visual-placeholder logits dominate on purpose (untied LM head): every text embedding row
    gets a shared direction `c`, and the blocked ids' output rows point along it, so their logits are ~ +10 at every
    text position. Unblocked sampling would then pick them almost always."""
    import torch

    from videosafety_r1.grpo.rollout import placeholder_token_ids

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    emb, head = base.get_input_embeddings().weight, base.get_output_embeddings().weight
    assert emb.data_ptr() != head.data_ptr(), "needs an untied LM head"
    blocked = list(model.alarm_token_ids) + placeholder_token_ids(base)
    with torch.no_grad():
        c = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
        c = c / c.norm()
        emb.add_(scale * emb.norm(dim=1).mean() * c)  # [V, H]
        head[blocked] = c
    return blocked
