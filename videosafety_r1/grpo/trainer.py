"""Safety-GRPO trainer: a ``transformers.Trainer`` that carries video through every GRPO pass.

See :class:`VideoGRPOTrainer`. The loss math lives in :mod:`videosafety_r1.grpo.loss`, rollout assembly and generation in
:mod:`videosafety_r1.grpo.rollout`, the vision-once reuse in :mod:`videosafety_r1.grpo.vision_cache`, prompt rows and reward
resolution in :mod:`videosafety_r1.grpo.data`, metrics and the sample table in :mod:`videosafety_r1.grpo.logs`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Sampler
from transformers import Trainer

from ..alarm.io import load_checkpoint_weights, save_pretrained
from ..alarm.model import AlarmVideoLLM
from ..data.collate import GRPOPromptCollator, MediaLoader
from ..rewards import CALL_KEYWORDS, reward_call_problem
from ..zero3 import any_partitioned
from .data import (
    GenerationBatchSampler,
    RewardFunc,
    as_grpo_record,
    keep_rows,
    resolve_reward_funcs,
    reward_name,
    row_columns,
)
from .logs import COMPLETIONS_FILE, RolloutLogMixin
from .loss import GRPOConfig, entropy_from_logits, selective_log_softmax
from .objective import ObjectiveMixin
from .rollout import (
    Generator,
    HFGenerator,
    assemble,
    collate_prompt,
    completion_mask_after_eos,
    placeholder_token_ids,
    unwrapped_for_generation,
)
from .vision_cache import CachedVisionTower, install_vision_cache, share_vision_tower

logger = logging.getLogger(__name__)

__all__ = [
    "COMPLETIONS_FILE",
    "GenerationBatchSampler",
    "VideoGRPOTrainer",
    "as_grpo_record",
    "resolve_reward_funcs",
]

_BATCH_ONLY = (
    "completion_ids",
    "completion_mask",
    "advantages",
    "old_logps",
    "ref_logps",
    "num_items_in_batch",
    "importance_weights",
)


def _check_reward_call(func: RewardFunc, name: str, kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError`` naming the reward when ``func(**kwargs)`` cannot run as configured."""
    problem = reward_call_problem(func, kwargs)
    if problem:
        raise TypeError(f"reward {name!r} cannot take the keywords {sorted(kwargs)}: {problem}")


class VideoGRPOTrainer(ObjectiveMixin, RolloutLogMixin, Trainer):
    """GRPO for Video LLMs with alarm tokens, configured by :class:`videosafety_r1.grpo.GRPOConfig`.

    Why not ``trl.GRPOTrainer``: in TRL 1.16 video reaches the rollout but ``pixel_values_videos`` /
    ``video_grid_thw`` never reach the loss or reference forwards. What differs from ``transformers.Trainer``:

    - the dataloader yields raw prompt rows (one generation batch, repeated per micro-step, see
      :class:`GenerationBatchSampler`); ``_prepare_inputs`` collates them once, samples ``G`` completions per prompt
      with the :class:`~videosafety_r1.grpo.rollout.Generator`, scores them with the rewards, computes group advantages,
      old-policy (``num_iterations > 1``) and reference log-probs, and buffers ``steps_per_generation`` micro-batches;
    - every pass (rollout, policy, old policy, reference) gets the visual tensors, repeated per prompt block;
    - the frozen vision tower runs once per prompt per generation batch (shared with the reference), and logits are
      computed only for completion positions (``logits_to_keep``);
    - ``compute_loss`` is :func:`~videosafety_r1.grpo.grpo_loss`; metrics use TRL's names;
    - ``_save`` / ``_load_from_checkpoint`` handle the ``AlarmVideoLLM`` form (base or adapter + ``alarm.safetensors``);
      under DeepSpeed a resume restores the engine's checkpoint instead; either way the Trainer's saved RNG states and
      the generation schedule (``_continue_schedule``) make a resumed run sample the uninterrupted run's rollouts.

    Unlike TRL, ``per_device_train_batch_size`` must hold whole groups (a multiple of ``num_generations``) and each
    process samples whole groups for its own prompts; statistics TRL takes over the generation batch
    (``scale_rewards="batch"``, the ``dapo`` normaliser, ...) are gathered over processes. Which ``trl.GRPOConfig``
    fields act and which are rejected: :mod:`videosafety_r1.grpo.trl_fields` and docs/grpo.md.
    """

    def __init__(
        self,
        model: nn.Module,
        args: GRPOConfig,
        train_dataset: Any = None,
        processing_class: Any = None,
        reward_funcs: Sequence[str | RewardFunc] | None = None,
        ref_model: nn.Module | str | None = None,
        prompt_collator: Callable[[list[Any]], dict[str, Any]] | None = None,
        generator: Generator | None = None,
        callbacks: list[Any] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        **kwargs: Any,
    ) -> None:
        G = args.num_generations
        if args.per_device_train_batch_size % G != 0:
            raise ValueError(
                f"per_device_train_batch_size ({args.per_device_train_batch_size}) must be a multiple of "
                f"num_generations ({G}): each micro-batch holds whole groups"
            )
        if isinstance(model, AlarmVideoLLM) and getattr(args, "freeze_alarm", True):
            for p in _alarm_params(model):
                p.requires_grad_(False)
        names = reward_funcs if reward_funcs is not None else args.reward_funcs
        self.reward_funcs = resolve_reward_funcs(names, args.reward_params, args.reward_kwargs)
        self.reward_func_names = [reward_name(n) for n in names]
        weights = args.reward_weights or [1.0] * len(self.reward_funcs)
        if len(weights) != len(self.reward_funcs):
            raise ValueError(f"{len(weights)} reward_weights for {len(self.reward_funcs)} reward functions")
        self.reward_weights = torch.tensor(weights, dtype=torch.float32)

        self.ref_model: nn.Module | None = None
        if args.beta > 0:
            if isinstance(ref_model, (str, os.PathLike)):
                from ..alarm.io import load_pretrained

                ref_model = load_pretrained(ref_model)[0]
            self.ref_model = ref_model if ref_model is not None else _default_reference(model, args)
            self.ref_model.eval().requires_grad_(False)
        if args.disable_dropout:
            from trl.trainer.utils import disable_dropout_in_model

            for m in (model, self.ref_model):
                if m is not None:
                    disable_dropout_in_model(m)

        super().__init__(
            model=model,
            args=args,
            data_collator=keep_rows,
            train_dataset=train_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
            **kwargs,
        )
        self._check_reward_calls(train_dataset)
        tokenizer = getattr(processing_class, "tokenizer", processing_class)
        self.pad_token_id = tokenizer.pad_token_id
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = [gen_eos] if isinstance(gen_eos, int) else list(gen_eos or [])
        self.eos_token_ids = sorted(set(eos) | {tokenizer.eos_token_id} - {None})
        self.tokenizer = tokenizer
        self.prompt_collator = prompt_collator or GRPOPromptCollator(
            processing_class, MediaLoader(args.data_root, args.video_fps, args.video_max_frames)
        )
        self.placeholder_ids = placeholder_token_ids(model)  # visual placeholders: never sampled, never scored
        if generator is None and args.use_vllm:
            from .vllm_generator import build_vllm_generator

            generator = build_vllm_generator(
                self.accelerator.unwrap_model(self.model),
                processing_class,
                args,
                self.pad_token_id,
                self.eos_token_ids,
                self.accelerator.process_index,
                self.accelerator.num_processes,
            )
        # ids the generator never samples and the log-probs leave out (vLLM); the HF path scores the whole vocabulary
        blocked = getattr(generator, "blocked_ids", None) or []
        self.masked_logit_ids = torch.tensor(blocked, dtype=torch.long) if blocked else None
        self.generator = generator or HFGenerator(
            max_new_tokens=args.max_completion_length,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k or 0,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_ids,
            suppress_token_ids=self.placeholder_ids,
            extra={
                "min_p": args.min_p,
                "repetition_penalty": args.repetition_penalty,
                **(args.generation_kwargs or {}),  # the user's keys win; suppress_tokens is a union (HFGenerator)
            },
        )
        if self.ref_model is not None:
            if self.is_deepspeed_enabled:
                from trl.models import prepare_deepspeed

                self.ref_model = prepare_deepspeed(self.ref_model, self.accelerator)
            else:
                # as TRL: placed, and run under the policy's mixed-precision autocast (same numerics at step 0)
                self.ref_model = self.accelerator.prepare_model(self.ref_model, evaluation_mode=True)
            if args.sync_ref_model:
                from trl.trainer.callbacks import SyncRefModelCallback

                self.add_callback(SyncRefModelCallback(ref_model=self.ref_model, accelerator=self.accelerator))
        if self.ref_model is not None:
            share_vision_tower(model, self.ref_model)
        self.vision_cache: CachedVisionTower | None = None
        if args.reuse_vision_features:
            models = [model] + ([self.ref_model] if self.ref_model is not None else [])
            self.vision_cache = install_vision_cache(*models)
        self.num_generations = G
        self.reward_history: list[tuple[int, float]] = []
        self.reward_term_history: dict[str, list[tuple[int, float]]] = {n: [] for n in self.reward_func_names}
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self._table: list[dict[str, Any]] = []
        self._buffer: list[dict[str, Any]] | None = None
        self._step = 0
        self._generation = 0
        self._init_entropy_control()
        self._init_logging()

    # --- data -------------------------------------------------------------------------------------------------
    @property
    def prompts_per_micro_batch(self) -> int:
        return self.args.per_device_train_batch_size // self.num_generations

    def _get_train_sampler(self, dataset: Any = None) -> Sampler:
        dataset = dataset if dataset is not None else self.train_dataset
        chunk = self.prompts_per_micro_batch * self.args.steps_per_generation * self.accelerator.num_processes
        repeat = self.args.steps_per_generation * self.args.num_iterations
        return GenerationBatchSampler(
            len(dataset), chunk, repeat, shuffle=self.args.shuffle_dataset, seed=self.args.seed
        )

    def get_train_dataloader(self) -> Any:
        if self.train_dataset is None:
            raise ValueError("VideoGRPOTrainer: training requires a train_dataset")
        return self._get_dataloader(
            dataset=self.train_dataset,
            description="Training",
            batch_size=self.prompts_per_micro_batch * self.args.steps_per_generation,
            sampler_fn=self._get_train_sampler,
            is_training=True,
        )

    def _prepare_inputs(self, rows: Any) -> dict[str, Any]:
        every = self.args.steps_per_generation * self.args.num_iterations
        if self._buffer is None:
            self._continue_schedule(every)
        if self._buffer is None or self._step % every == 0:
            self._buffer = self._generate_and_score(list(rows))
        return self._buffer[self._step % self.args.steps_per_generation]

    def _continue_schedule(self, every: int) -> None:
        """First micro-step of a run: a resumed run (``global_step > 0``) continues the generation schedule where
        the checkpoint left it. A checkpoint inside a generation cycle (``save_steps`` not a multiple of the cycle)
        holds no rollout buffer: that generation batch is sampled again from the restored policy and RNG, a valid
        on-policy continuation but not a replay of the uninterrupted run."""
        self._step = self.state.global_step * self.args.gradient_accumulation_steps
        if self._step == 0:
            return
        if self._step % every:
            logger.warning(
                "resuming inside a generation cycle (micro-step %d of %d): its rollouts are sampled again, so the run "
                "no longer replays the uninterrupted one exactly (save_steps * gradient_accumulation_steps should be "
                "a multiple of steps_per_generation * num_iterations)",
                self._step % every,
                every,
            )
        if self.ref_model is not None and self.args.sync_ref_model:
            logger.warning("resuming with sync_ref_model: the reference restarts from its initial weights")

    def training_step(self, model: nn.Module, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step += 1
        return loss

    # --- rollout ----------------------------------------------------------------------------------------------
    def _vision_dtype(self) -> torch.dtype | None:
        return self.vision_cache.tower.dtype if self.vision_cache is not None else None

    @torch.no_grad()
    def _generate_and_score(self, rows: list[Any]) -> list[dict[str, Any]]:
        G, device = self.num_generations, self.accelerator.device
        self._generation += 1
        if self.vision_cache is not None:
            self.vision_cache.clear()
        engine_prompts = None
        if getattr(self.generator, "wants_media", False):  # vLLM: the same decoded media, as engine inputs
            from .vllm_generator import collate_with_media

            pairs = [collate_with_media(self.prompt_collator, as_grpo_record(r), self.tokenizer) for r in rows]
            items, engine_prompts = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            items = [collate_prompt(self.prompt_collator, as_grpo_record(r)) for r in rows]  # rows: raw, every column
        B = len(items)
        order = [i for i in range(B) for _ in range(G)]
        build = dict(
            pad_token_id=self.pad_token_id,
            device=device,
            vision_dtype=self._vision_dtype(),
            cache=self.vision_cache,
            owner_prefix=self._generation,
        )
        prompt_batch = assemble(items, order, **build)  # [B*G, P]
        gather = self.args.ds3_gather_for_generation
        with unwrapped_for_generation(self.model_wrapped, self.accelerator, gather_zero3=gather) as unwrapped:
            if engine_prompts is None:
                completion_ids = self.generator(unwrapped, prompt_batch)  # [B*G, C]
            else:
                completion_ids = self.generator(unwrapped, prompt_batch, engine_prompts, self.state.global_step)
        placeholders = torch.tensor(self.placeholder_ids, dtype=torch.long, device=device)
        # a generator that cannot suppress them (vLLM): the completion is cut before a sampled placeholder
        bad = torch.isin(completion_ids, placeholders)  # [B*G, C]
        mask = completion_mask_after_eos(completion_ids, self.eos_token_ids) & (bad.cumsum(1) == 0)  # [B*G, C]
        ended = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=device)) & mask  # [B*G, C]
        truncated = ~ended.any(1)  # [B*G]
        completion_ids = completion_ids.masked_fill(~mask, self.pad_token_id)
        lengths = mask.sum(1)  # [B*G]
        completions = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        id_lists = [row[:n].tolist() for row, n in zip(completion_ids, lengths)]
        prompts = [items[i].prompt for i in order]
        per_row = [{**row_columns(r), **item.columns} for r, item in zip(rows, items)]
        columns = {k: [per_row[i].get(k) for i in order] for k in dict.fromkeys(k for c in per_row for k in c)}
        rewards_per_func = self._compute_rewards(prompts, completions, id_lists, columns)  # [B*G, F]
        rewards, advantages = self._advantages(rewards_per_func)  # [B*G], [B*G]
        if self.args.mask_truncated_completions:
            mask = mask & ~truncated.unsqueeze(1)
        num_items = self.accelerator.gather(mask.sum().reshape(1)).sum()  # active tokens, whole generation batch
        self._log_rollout(prompts, completions, rewards_per_func, rewards, advantages, lengths, truncated)

        sampling_logps = getattr(self.generator, "last_logprobs", None) if engine_prompts is not None else None
        correct_is = sampling_logps is not None and self.args.vllm_importance_sampling_correction
        need_old = (
            self.args.num_iterations > 1
            or self.args.steps_per_generation > self.args.gradient_accumulation_steps
            or correct_is  # as TRL: the IS ratio needs the trainer's log-probs of the sampling policy
        )
        per = self.prompts_per_micro_batch
        batches = []
        for s in range(self.args.steps_per_generation):
            ids = list(range(s * per, (s + 1) * per))
            rows_s = slice(s * per * G, (s + 1) * per * G)
            batch = assemble(
                items,
                [i for i in ids for _ in range(G)],
                completion_ids=completion_ids[rows_s],
                completion_mask=mask[rows_s],
                **build,
            )
            batch["completion_ids"] = completion_ids[rows_s]  # [b*G, C]
            batch["completion_mask"] = mask[rows_s]  # [b*G, C]
            batch["advantages"] = advantages[rows_s]  # [b*G]
            batch["num_items_in_batch"] = num_items
            batch["old_logps"] = self._logps(self.model, batch)[0] if need_old else None
            batch["ref_logps"] = self._logps(self.ref_model, batch)[0] if self.ref_model is not None else None
            if correct_is:
                batch["importance_weights"] = self._importance_weights(batch, sampling_logps[rows_s])
            batches.append(batch)
        return batches

    def _importance_weights(self, batch: dict[str, Any], sampling_logps: torch.Tensor) -> torch.Tensor:
        """TRL's vLLM importance-sampling weights ``[b*G, C]`` or ``[b*G, 1]``, with its metrics logged."""
        from .vllm_importance import importance_sampling_ratio

        weights, stats = importance_sampling_ratio(
            batch["old_logps"],
            sampling_logps.to(batch["old_logps"]),
            batch["completion_mask"],
            self.args.vllm_importance_sampling_mode,
            self.args.vllm_importance_sampling_clip_min,
            self.args.vllm_importance_sampling_clip_max,
        )
        for name, value in stats.items():
            gathered = self.accelerator.gather(value.float().reshape(1))
            reduce = {"min": torch.min, "max": torch.max}.get(name.rsplit("/", 1)[1], torch.mean)
            self._metrics[name].append(reduce(gathered).item())
        return weights

    def _compute_rewards(
        self, prompts: list[str], completions: list[str], completion_ids: list[list[int]], columns: dict[str, list]
    ) -> torch.Tensor:
        """``[B*G, F]`` rewards, None -> NaN (as TRL); every function sees every completion once per step."""
        out = torch.full((len(prompts), len(self.reward_funcs)), torch.nan, device=self.accelerator.device)
        kwargs = self._reward_kwargs(prompts, completions, completion_ids, columns)
        for j, (func, name) in enumerate(zip(self.reward_funcs, self.reward_func_names)):
            _check_reward_call(func, name, kwargs)  # e.g. a required argument no column provides
            values = func(**kwargs)
            if len(values) != len(prompts):
                raise ValueError(f"reward {name!r} returned {len(values)} values for {len(prompts)} completions")
            out[:, j] = torch.tensor([torch.nan if v is None else float(v) for v in values], device=out.device)
        return out

    def _reward_kwargs(
        self, prompts: list[str], completions: list[str], completion_ids: list[list[int]], columns: dict[str, list]
    ) -> dict[str, Any]:
        """The keywords every reward is called with (TRL's protocol): the batch, every dataset column, and the
        trainer's own (``trainer_state``, ``log_metric``, ``log_extra``)."""
        clash = sorted(set(columns) & set(CALL_KEYWORDS))
        if clash:
            raise ValueError(f"dataset columns {clash} clash with reward keyword arguments TRL reserves; rename them")
        extra = {"trainer_state": self.state, "log_metric": self._log_metric, "log_extra": self._log_extra}
        return {"prompts": prompts, "completions": completions, "completion_ids": completion_ids, **columns, **extra}

    def _check_reward_calls(self, dataset: Any) -> None:
        """Before any step: every reward must accept the keywords its first call will get, built from the first
        row's columns (a required argument no column provides fails here, not after the first generation)."""
        if dataset is None or not hasattr(dataset, "__getitem__") or len(dataset) == 0:
            return
        columns = {k: [v] for k, v in row_columns(dataset[0]).items()}
        kwargs = self._reward_kwargs([""], [""], [[]], columns)
        for func, name in zip(self.reward_funcs, self.reward_func_names):
            _check_reward_call(func, name, kwargs)

    # --- log-probs and loss -----------------------------------------------------------------------------------
    def _logps(
        self, model: nn.Module, batch: dict[str, Any], entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs ``[N, C]`` of the completion (and entropies), logits only at completion positions."""
        C = batch["completion_ids"].shape[1]
        inputs = {k: v for k, v in batch.items() if k not in _BATCH_ONLY}
        with _head_keeps_last(self.accelerator.unwrap_model(model), C + 1):
            logits = model(**inputs, logits_to_keep=C + 1, use_cache=False).logits[:, :-1]  # [N, C, V]
        if self.masked_logit_ids is not None:  # finite: entropy stays defined; exp() of it is 0 in any precision
            fill = torch.finfo(logits.dtype).min / 4
            logits = logits.index_fill(-1, self.masked_logit_ids.to(logits.device), fill)  # [N, C, V]
        logps = selective_log_softmax(logits, batch["completion_ids"], self.args.temperature)  # [N, C]
        ent = None
        if entropy:  # with a gradient only where the entropy bonus needs one
            with torch.set_grad_enabled(torch.is_grad_enabled() and self._entropy_bonus):
                ent = entropy_from_logits(logits / self.args.temperature)  # [N, C]
        return logps, ent

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> torch.Tensor:
        logps, ent = self._logps(model, inputs, entropy=True)  # [b*G, C]
        return self._policy_loss(logps, ent, inputs)

    # --- checkpoints ------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """As the Trainer's; a resumed run first reloads the checkpoint's reward histories so that
        ``reward_history`` (and the recipe's reward curve) covers the whole run, not only the resumed steps."""
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            from transformers.trainer_utils import get_last_checkpoint

            checkpoint = get_last_checkpoint(self.args.output_dir)
        if isinstance(checkpoint, (str, os.PathLike)):
            self._read_history(checkpoint)
            self._trim_completions(checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        self._flush_completions()  # completions.jsonl holds every step before the checkpoint, none after
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            self._write_history(folder)
            self._save_entropy_state(folder)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self._load_entropy_state(checkpoint)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if not isinstance(model, AlarmVideoLLM):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        # `state_dict` (DeepSpeed: gathered on all ranks, saved here by one) is the wrapper's, alarm weights included
        sampling = {"video_fps": self.args.video_fps, "video_max_frames": self.args.video_max_frames}
        save_pretrained(
            model, output_dir, processor=self.processing_class, state_dict=state_dict, video_sampling=sampling
        )
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Load a checkpoint's weights in place. Under DeepSpeed the engine's own checkpoint (partitioned weights,
        optimizer, scheduler) is the state to restore, as ``Trainer.train`` does without calling this: writing whole
        weights into the module would bypass the ZeRO partitions and fp32 master weights."""
        if self.is_deepspeed_enabled:
            if self.deepspeed is None:
                raise ValueError("under DeepSpeed a checkpoint is restored by train(resume_from_checkpoint=...)")
            from transformers.integrations.deepspeed import deepspeed_load_checkpoint

            deepspeed_load_checkpoint(self.deepspeed, resume_from_checkpoint)
            return
        model = model if model is not None else self.model
        unwrapped = self.accelerator.unwrap_model(model)
        if not isinstance(unwrapped, AlarmVideoLLM):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_checkpoint_weights(unwrapped, resume_from_checkpoint)
        logger.info("loaded model weights from %s", resume_from_checkpoint)


@contextlib.contextmanager
def _head_keeps_last(model: nn.Module, n: int) -> Iterator[None]:
    """Feed only the last ``n`` positions to the output head: a no-op where the forward honours ``logits_to_keep``,
    and the only cut where it ignores it (``VideoLlama3ForConditionalGeneration`` in transformers 5.24)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        yield
        return
    handle = head.register_forward_pre_hook(lambda module, args: (args[0][:, -n:], *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def _default_reference(model: nn.Module, args: GRPOConfig) -> nn.Module:
    """A copy of the policy as the reference. Under DeepSpeed ZeRO-3 a deep copy would hold only empty parameter
    slices, so the reference is loaded again from ``args.model_name_or_path`` (as TRL does)."""
    if not any_partitioned(model):
        return copy.deepcopy(model)
    if not args.model_name_or_path:
        raise ValueError("under DeepSpeed ZeRO-3 pass ref_model or set model_name_or_path to load the reference from")
    from ..alarm.io import load_pretrained

    return load_pretrained(args.model_name_or_path, **{**args.load_kwargs, "dtype": next(model.parameters()).dtype})[0]


def _alarm_params(model: AlarmVideoLLM) -> list[nn.Parameter]:
    parts = [model.alarm_embedding, model.visual_head, model.textual_head]
    return [p for part in parts if part is not None for p in part.parameters()]
