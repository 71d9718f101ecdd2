"""Collators: typed records in, model batches out, through the one input road (:mod:`videosafety_r1.inputs`).

SFT batches are built from the processor's own chat template, with typed special tokens neutralised and alarm
tokens inserted as text before the processor expands the visual placeholders (so `mm_token_type_ids` and M-RoPE
grids stay right), loss only on assistant tokens, and the alarm labels as explicit `[B]` fields. GRPO prompt
batches carry the published prompt template and the reference columns the rewards need.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from videosafety_r1.alarm.tokens import AlarmConfig
from videosafety_r1.inputs import (
    REASONING_INSTRUCTION,
    SAFETY_INSTRUCTION,
    PromptInput,
    build_prompt,
    grpo_prompt_text,
    padded_media,
    processor_inputs,
    prompt_text,
    render_chat,
    user_message,
)
from videosafety_r1.media import MediaLoader, MediaPathError, with_data_root

from .schema import GRPORecord, SFTRecord

__all__ = [
    "IGNORE_INDEX",
    "REASONING_INSTRUCTION",
    "SAFETY_INSTRUCTION",
    "GRPOPromptCollator",
    "MediaLoader",
    "MediaPathError",
    "SFTCollator",
    "grpo_prompt_text",
    "with_absolute_media",
    "with_data_root",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

#: Old name of :func:`videosafety_r1.media.with_data_root` (paths now stay relative, checked against their root).
with_absolute_media = with_data_root


def _assistant_mask(input_ids: torch.Tensor, header: list[int], end_id: int) -> torch.Tensor:
    """True on assistant reply tokens (after each assistant header, up to and including the turn end)."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    h = len(header)
    for b, row in enumerate(input_ids.tolist()):
        i, inside = 0, False
        while i < len(row):
            if not inside and row[i : i + h] == header:
                inside, i = True, i + h
                continue
            if inside:
                mask[b, i] = True
                if row[i] == end_id:
                    inside = False
            i += 1
    return mask


@dataclass
class SFTCollator:
    """SFT batch from `SFTRecord`s: input ids, `labels` on assistant tokens only, alarm labels, media tensors.

    `max_length` applies to the whole sequence; `truncation="error"` raises naming the record, `"drop"` drops the
    row (logged). Visual and alarm tokens are never cut.
    """

    processor: Any
    media: MediaLoader = field(default_factory=MediaLoader)
    alarm_config: AlarmConfig | None = None
    max_length: int | None = None
    truncation: str = "error"
    assistant_header: str = "<|im_start|>assistant\n"

    def __post_init__(self) -> None:
        if self.truncation not in ("error", "drop"):
            raise ValueError(f"truncation must be 'error' or 'drop', got {self.truncation!r}")
        tok = self.processor.tokenizer
        self._header = tok(self.assistant_header, add_special_tokens=False)["input_ids"]
        cfg = self.alarm_config or AlarmConfig()
        self._end_id = tok.convert_tokens_to_ids(cfg.turn_end)

    def render(self, record: SFTRecord, kind: str) -> str:
        """Chat text of the whole conversation; the media placeholder goes into the first user turn."""
        messages: list[dict[str, Any]] = []
        first_user = True
        for turn in record.conversation:
            if turn.role == "user" and first_user:
                messages.append(user_message(kind, turn.content))
                first_user = False
            else:
                messages.append({"role": turn.role, "content": turn.content})
        return render_chat(self.processor, messages, add_generation_prompt=False, alarm_config=self.alarm_config)

    def __call__(self, records: list[SFTRecord]) -> dict[str, torch.Tensor]:
        loaded = [padded_media(self.processor, self.media.load(r.media, r.id), self.media.fps) for r in records]
        prompts = [PromptInput(self.render(r, m.kind), m) for r, m in zip(records, loaded)]
        batch = processor_inputs(self.processor, prompts, ids=[r.id for r in records])
        if self.max_length is not None:
            lengths = batch["attention_mask"].sum(-1)
            too_long = [i for i, n in enumerate(lengths.tolist()) if n > self.max_length]
            if too_long:
                ids = [records[i].id for i in too_long]
                if self.truncation == "error":
                    raise ValueError(
                        f"records {ids} exceed max_length={self.max_length} (visual tokens are never cut)"
                    )
                logger.warning("dropping %d over-long records: %s", len(ids), ids)
                keep = [i for i in range(len(records)) if i not in too_long]
                if not keep:
                    raise ValueError(f"every record of the batch exceeds max_length={self.max_length}")
                return self([records[i] for i in keep])
        ids = batch["input_ids"]
        labels = ids.masked_fill(~_assistant_mask(ids, self._header, self._end_id), IGNORE_INDEX)
        labels = labels.masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        batch["labels"] = labels
        batch["visual_alarm_labels"] = torch.tensor([r.safety_labels.visual for r in records], dtype=torch.long)
        batch["textual_alarm_labels"] = torch.tensor([r.safety_labels.textual for r in records], dtype=torch.long)
        return dict(batch)


@dataclass
class GRPOPromptCollator:
    """Prompt batch for GRPO rollouts: left-padded prompt ids with alarm tokens, media tensors, and the columns the
    rewards read (`solution`, `problem_type`, labels) as lists."""

    processor: Any
    media: MediaLoader = field(default_factory=MediaLoader)
    alarm_config: AlarmConfig | None = None

    def prompt(self, record: GRPORecord, kind: str) -> str:
        """The record's prompt text for media of ``kind``: :func:`grpo_prompt_text` in the chat template, typed
        special tokens neutralised, alarm tokens placed."""
        return prompt_text(self.processor, grpo_prompt_text(record), kind, alarm_config=self.alarm_config)

    def prompt_input(self, record: GRPORecord) -> PromptInput:
        """The record's prompt text with its loaded, padded media (what a generator such as vLLM consumes)."""
        media = self.media.load(record.media, record.id)
        return build_prompt(
            self.processor, grpo_prompt_text(record), media, alarm_config=self.alarm_config, fps=self.media.fps
        )

    def __call__(self, records: list[GRPORecord]) -> dict[str, Any]:
        return self.batch_from_prompts(records, [self.prompt_input(r) for r in records])

    def batch_from_prompts(self, records: list[GRPORecord], prompts: list[PromptInput]) -> dict[str, Any]:
        """The batch of ``records`` from their already built prompts (one decode shared with a generator)."""
        batch = dict(processor_inputs(self.processor, prompts, padding_side="left", ids=[r.id for r in records]))
        batch["prompts"] = [p.text for p in prompts]
        batch["solution"] = [r.solution for r in records]
        batch["problem_type"] = [r.problem_type for r in records]
        batch["ids"] = [r.id for r in records]
        return batch
