"""The alarm-token model: learnable alarm embeddings and two harm heads around any supported Video LLM.

The wrapper never edits the base model's code. A forward hook on the input-embedding module swaps in the alarm
vectors wherever an alarm id appears, so every path that embeds ids (training forward, `generate` prefill, the
RL log-prob and reference passes) sees them; a hook on the final norm captures the hidden state the heads read.
The base model's state dict keeps its own keys, so `save_pretrained` of the base stays a normal checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..constants import VISION_MODULE_NAMES
from ..zero3 import full_shape, gathered
from .tokens import AlarmConfig

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Keys of `alarm.safetensors` that hold the base's rows of the alarm ids (saved with LoRA, see save_pretrained).
VOCAB_ROWS_PREFIX = "vocab_rows."
_VISION_MODULE_NAMES = VISION_MODULE_NAMES


@dataclass
class AlarmOutput(ModelOutput):
    """The base model's causal-LM output plus the two harm logits (`[B]`, present when heads are enabled)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    rope_deltas: torch.Tensor | None = None
    visual_alarm_logits: torch.Tensor | None = None
    textual_alarm_logits: torch.Tensor | None = None


class AlarmEmbedding(nn.Module):
    """Two learnable vectors that replace the token embedding at the alarm ids.

    A module of its own (called, not read) so that DeepSpeed ZeRO-3 gathers its parameter whenever it is used,
    including inside `generate`.
    """

    def __init__(self, hidden_size: int, visual_id: int, textual_id: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, hidden_size))
        self.visual_id = visual_id
        self.textual_id = textual_id

    def forward(self, input_ids: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        vec = self.weight.to(embeds.dtype)
        is_v = (input_ids == self.visual_id).unsqueeze(-1)  # [B, L, 1]
        is_t = (input_ids == self.textual_id).unsqueeze(-1)
        out = torch.where(is_v, vec[0], embeds)
        return torch.where(is_t, vec[1], out)


def find_alarm_positions(input_ids: torch.Tensor, token_id: int, name: str = "alarm") -> torch.Tensor:
    """Column of the single `token_id` in each row of `input_ids` `[B, L]` -> `[B]`; a clear error otherwise."""
    hits = input_ids == token_id  # [B, L]
    counts = hits.sum(-1)
    if not bool((counts == 1).all()):
        bad = [(i, int(c)) for i, c in enumerate(counts.tolist()) if c != 1]
        raise ValueError(
            f"each row must hold exactly one {name} token (id {token_id}); rows (index, count) {bad[:8]} do not. "
            "Build prompts with insert_alarm_tokens()."
        )
    return hits.int().argmax(-1)


def _final_norm(model: nn.Module) -> nn.Module:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    norm = getattr(decoder, "norm", None)
    if isinstance(norm, nn.Module):
        return norm
    for name, module in model.named_modules():
        if name.endswith("language_model.norm") or name.endswith("model.norm"):
            return module
    raise ValueError(f"cannot find the final norm of {type(model).__name__}; heads need the last hidden state")


def is_vision_parameter(name: str) -> bool:
    """True for parameters of the vision tower or the projector (frozen in every stage of the method)."""
    parts = name.split(".")
    return any(p in _VISION_MODULE_NAMES for p in parts)


class AlarmVideoLLM(nn.Module):
    """A Video LLM with alarm tokens. Use it as the model: its forward and `generate` carry the alarm behaviour.

    Attribute access falls through to the wrapped model, so `model.config`, `model.device` or
    `model.gradient_checkpointing_enable()` work as on the base model.
    """

    def __init__(self, base: nn.Module, visual_id: int, textual_id: int, config: AlarmConfig) -> None:
        super().__init__()
        self.base = base
        self.alarm_config = config
        hidden = full_shape(base.get_input_embeddings().weight)[-1]  # ZeRO-3 holds only a slice of it
        self.alarm_embedding = AlarmEmbedding(hidden, visual_id, textual_id)
        self.visual_head = nn.Linear(hidden, 1) if config.use_heads else None
        self.textual_head = nn.Linear(hidden, 1) if config.use_heads else None
        self._captured: torch.Tensor | None = None
        self._capture = False
        self._hooks = [
            base.get_input_embeddings().register_forward_hook(self._embed_hook),
            _final_norm(base).register_forward_hook(self._norm_hook),
        ]

    # --- hooks -------------------------------------------------------------------------------------------------
    def _embed_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self.alarm_embedding(args[0], output)

    def _norm_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if self._capture:
            self._captured = output

    # --- delegation --------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["base"], name)

    @property
    def visual_alarm_token_id(self) -> int:
        return self.alarm_embedding.visual_id

    @property
    def textual_alarm_token_id(self) -> int:
        return self.alarm_embedding.textual_id

    @property
    def alarm_token_ids(self) -> list[int]:
        return [self.alarm_embedding.visual_id, self.alarm_embedding.textual_id]

    def get_base_model(self) -> nn.Module:
        """The transformers model underneath (a PEFT wrapper's base when LoRA is applied)."""
        base = self.base
        return base.get_base_model() if hasattr(base, "peft_config") else base

    # --- forward / generate ------------------------------------------------------------------------------------
    def forward(
        self, input_ids: torch.Tensor | None = None, detach_head_inputs: bool = False, **kwargs: Any
    ) -> AlarmOutput:
        """Base forward plus `visual_alarm_logits` / `textual_alarm_logits` `[B]` at the alarm positions.

        With `detach_head_inputs` the heads read the hidden states with the gradient stopped, so a head loss trains
        the heads alone (AT-SFT's `cot_head_loss: detached`).

        Alarm label fields (`visual_alarm_labels`, `textual_alarm_labels`) are accepted and ignored here: the
        trainer turns them into the ATC loss.
        """
        kwargs.pop("visual_alarm_labels", None)
        kwargs.pop("textual_alarm_labels", None)
        heads = self.visual_head is not None and input_ids is not None
        self._capture, self._captured = heads, None
        try:
            out = self.base(input_ids=input_ids, **kwargs)
        finally:
            self._capture = False
        result = AlarmOutput(**{k: v for k, v in out.items() if k in AlarmOutput.__dataclass_fields__})
        if heads:
            hidden, self._captured = self._captured, None  # [B, L, H], after the final norm
            if hidden is None or hidden.shape[1] != input_ids.shape[1]:
                raise RuntimeError("the final hidden state was not captured for the whole sequence")
            if detach_head_inputs:
                hidden = hidden.detach()
            rows = torch.arange(input_ids.shape[0], device=input_ids.device)
            v_pos = find_alarm_positions(input_ids, self.visual_alarm_token_id, "visual alarm")
            t_pos = find_alarm_positions(input_ids, self.textual_alarm_token_id, "textual alarm")
            result.visual_alarm_logits = self.visual_head(hidden[rows, v_pos].to(self.visual_head.weight.dtype))[:, 0]
            result.textual_alarm_logits = self.textual_head(hidden[rows, t_pos].to(self.textual_head.weight.dtype))[
                :, 0
            ]
        return result

    @torch.no_grad()
    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """`generate` of the base model with the alarm ids suppressed at every step."""
        gen_config = kwargs.get("generation_config")
        if gen_config is not None:
            gen_config = gen_config.__class__.from_dict(gen_config.to_dict())
            gen_config.suppress_tokens = sorted(set(gen_config.suppress_tokens or []) | set(self.alarm_token_ids))
            kwargs["generation_config"] = gen_config
        else:
            existing = kwargs.get("suppress_tokens") or self.base.generation_config.suppress_tokens or []
            kwargs["suppress_tokens"] = sorted(set(existing) | set(self.alarm_token_ids))
        return self.base.generate(*args, **kwargs)

    # --- trainability -----------------------------------------------------------------------------------------
    def apply_trainability(self, config: AlarmConfig | None = None) -> None:
        """Set `requires_grad` from the config: LLM, alarm vectors, heads; vision tower and projector frozen (with
        ``freeze_vision``, also any LoRA adapter inside them, e.g. from a checkpoint made with a broad pattern)."""
        cfg = config or self.alarm_config
        self.alarm_config = cfg
        for name, p in self.base.named_parameters():
            if cfg.freeze_vision and is_vision_parameter(name):  # LoRA adapters inside the tower included
                p.requires_grad_(False)
            elif "lora_" in name:
                p.requires_grad_(True)
            elif hasattr(self.base, "peft_config"):
                p.requires_grad_(False)  # LoRA: only adapters train inside the base
            else:
                p.requires_grad_(cfg.train_llm)
        self.alarm_embedding.weight.requires_grad_(cfg.train_vectors)
        for head in (self.visual_head, self.textual_head):
            if head is not None:
                head.requires_grad_(cfg.train_heads)

    def alarm_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the alarm parameters (vectors and heads), whole, detached, on CPU.

        Under DeepSpeed ZeRO-3 the parameters are gathered first: call it on every rank.
        """
        sd = {"alarm_embedding.weight": self.alarm_embedding.weight}
        for head_name in ("visual_head", "textual_head"):
            head = getattr(self, head_name)
            if head is not None:
                sd[f"{head_name}.weight"] = head.weight
                sd[f"{head_name}.bias"] = head.bias
        with gathered(sd.values()):
            return {k: v.detach().cpu().clone().contiguous() for k, v in sd.items()}

    def _vocab_tensors(self) -> dict[str, torch.Tensor]:
        base = self.get_base_model()
        emb = base.get_input_embeddings().weight
        head = base.get_output_embeddings()
        tensors = {VOCAB_ROWS_PREFIX + "embed_tokens": emb}
        if head is not None and head.weight is not emb:  # tied: one matrix
            tensors[VOCAB_ROWS_PREFIX + "lm_head"] = head.weight
        return tensors

    def vocab_rows_state_dict(self, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The embedding and LM-head rows of the two alarm ids (`[2, H]` each), whole, on CPU.

        Under LoRA these rows live in the frozen base, which a PEFT adapter does not save; when `add_alarm_tokens`
        had to grow a vocabulary with no spare rows they are new random rows, which every reload would draw again.
        `save_pretrained` stores them in `alarm.safetensors`. `state_dict`: the wrapper's gathered state dict
        (ZeRO-3 via the Trainer); without it the parameters are gathered here (call on every rank).
        """
        ids = self.alarm_token_ids
        tensors = self._vocab_tensors()
        if state_dict is not None:
            names = {id(p): n for n, p in self.named_parameters(remove_duplicate=False)}
            missing = [names.get(id(t)) for t in tensors.values() if names.get(id(t)) not in state_dict]
            if missing:
                raise ValueError(f"the state dict passed to save_pretrained lacks {missing}")
            return {k: state_dict[names[id(t)]][ids].detach().cpu().clone().contiguous() for k, t in tensors.items()}
        with gathered(tensors.values()):
            return {k: t[ids].detach().cpu().clone().contiguous() for k, t in tensors.items()}

    @torch.no_grad()
    def load_vocab_rows(self, rows: dict[str, torch.Tensor]) -> None:
        """Write rows saved by `vocab_rows_state_dict` back into the base's embedding / LM head (a collective under
        ZeRO-3). A key the model does not have (e.g. `lm_head` for a tied model) is an error."""
        if not rows:
            return  # written without LoRA (the base holds the rows), or by an older version
        tensors = self._vocab_tensors()
        unknown = sorted(set(rows) - set(tensors))
        if unknown:
            raise ValueError(f"saved vocabulary rows {unknown} do not match this model's {sorted(tensors)}")
        ids = self.alarm_token_ids
        targets = [tensors[k] for k in rows]
        with gathered(targets, modifier_rank=0):
            for key, value in rows.items():
                tensors[key][ids] = value.to(device=tensors[key].device, dtype=tensors[key].dtype)

    def save_pretrained(self, save_directory: Any, processor: Any = None, **kwargs: Any) -> None:
        from .io import save_pretrained

        save_pretrained(self, save_directory, processor=processor, **kwargs)


def _init_vectors(model: AlarmVideoLLM, config: AlarmConfig) -> None:
    weight = model.alarm_embedding.weight
    with torch.no_grad():
        if config.init == "zeros":
            weight.zero_()
        elif config.init == "normal":
            weight.normal_(0.0, config.init_std)
        else:
            emb = model.base.get_input_embeddings().weight
            with gathered([emb]):  # a collective under ZeRO-3, as add_alarm_tokens runs on every rank
                weight.copy_(emb.float().mean(0, keepdim=True).expand_as(weight))


def register_alarm_tokens(processor: Any, config: AlarmConfig | None = None) -> tuple[int, int]:
    """Add the two alarm tokens to the processor's tokenizer (once) and return their ids."""
    cfg = config or AlarmConfig()
    tokenizer = getattr(processor, "tokenizer", processor)
    new = [t for t in (cfg.visual_token, cfg.textual_token) if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    ids = tokenizer.convert_tokens_to_ids([cfg.visual_token, cfg.textual_token])
    if processor is not tokenizer:
        processor.alarm_config = cfg
    return int(ids[0]), int(ids[1])


def add_alarm_tokens(model: nn.Module, processor: Any, config: AlarmConfig | None = None) -> AlarmVideoLLM:
    """Register the alarm tokens and return the model to use from now on (an `AlarmVideoLLM`).

    Resizes the embeddings only when the vocabulary has no room (a padded vocabulary is never shrunk), stores the
    ids in `model.config`, initialises the vectors per `config.init`, and applies the trainability switches. An
    `AlarmVideoLLM` (a trained checkpoint from `load_pretrained`) comes back unchanged when `config` is None or names
    the same tokens and heads; other tokens raise `ValueError`.
    """
    if isinstance(model, AlarmVideoLLM):  # e.g. load_pretrained already returned a trained alarm checkpoint
        have = model.alarm_config
        if config is not None and (config.visual_token, config.textual_token, config.use_heads) != (
            have.visual_token,
            have.textual_token,
            have.use_heads,
        ):
            raise ValueError(
                f"model already has alarm tokens {have.visual_token!r}/{have.textual_token!r} "
                f"(use_heads={have.use_heads}); the requested {config.visual_token!r}/{config.textual_token!r} "
                f"(use_heads={config.use_heads}) differ: load the base model to add other tokens"
            )
        logger.info(
            "model already has alarm tokens %s / %s: returned unchanged", have.visual_token, have.textual_token
        )
        return model
    cfg = config or AlarmConfig()
    visual_id, textual_id = register_alarm_tokens(processor, cfg)
    tokenizer = getattr(processor, "tokenizer", processor)
    base = model.get_base_model() if hasattr(model, "peft_config") else model
    current = full_shape(base.get_input_embeddings().weight)[0]  # not the empty slice ZeRO-3 leaves on a rank
    if len(tokenizer) > current:
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        logger.info("resized token embeddings %d -> %d", current, len(tokenizer))
    for conf in (base.config, getattr(base.config, "text_config", None)):
        if conf is not None:
            conf.visual_alarm_token_id = visual_id
            conf.textual_alarm_token_id = textual_id
    wrapped = AlarmVideoLLM(model, visual_id, textual_id, cfg)
    emb = base.get_input_embeddings().weight
    for part in (wrapped.alarm_embedding, wrapped.visual_head, wrapped.textual_head):
        if part is not None:
            part.to(device=emb.device, dtype=emb.dtype)
    _init_vectors(wrapped, cfg)
    gen = getattr(base, "generation_config", None)
    if gen is not None:
        gen.suppress_tokens = sorted(set(gen.suppress_tokens or []) | {visual_id, textual_id})
    wrapped.apply_trainability(cfg)
    return wrapped
