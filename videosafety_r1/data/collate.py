"""Collators: typed records in, model batches out.

SFT batches are built from the processor's own chat template, with alarm tokens inserted as text before the
processor expands the visual placeholders (so `mm_token_type_ids` and M-RoPE grids stay right), loss only on
assistant tokens, and the alarm labels as explicit `[B]` fields. GRPO prompt batches carry the published prompt
template and the reference columns the rewards need.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from videosafety_r1.alarm.tokens import AlarmConfig, insert_alarm_tokens, neutralise_alarm_literals

from .schema import GRPORecord, Media, SFTRecord
from .video import load_video

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

REASONING_INSTRUCTION = (
    "First reason step by step inside <think> </think> tags, then give your final response inside "
    "<answer> </answer> tags."
)
SAFETY_INSTRUCTION = (
    " Finally, label the video and the text as harmful (1) or safe (0) inside <vidType> </vidType> and "
    "<textType> </textType> tags."
)
_TYPE_HINTS = {
    "multiple choice": " Answer with the option letter only.",
    "numerical": " Answer with a number only.",
    "OCR": " Answer with the text you read.",
    "regression": " Answer with a number only.",
}


def grpo_prompt_text(record: GRPORecord) -> str:
    """The user text of a GRPO prompt: question, options, then the reasoning (and safety) instruction."""
    text = record.problem
    if record.options:
        text += "\nOptions:\n" + "\n".join(record.options)
    text += "\n" + REASONING_INSTRUCTION + _TYPE_HINTS.get(record.problem_type, "")
    if record.problem_type == "free-form-and-choice":
        text += SAFETY_INSTRUCTION
    return text


@dataclass
class MediaLoader:
    """Loads a record's media relative to the data root, with the sampling the processor should see."""

    data_root: str | os.PathLike[str] | None = None
    fps: float = 1.0
    max_frames: int = 90
    num_frames_multiple: int = 2

    def resolve(self, media: Media) -> Path:
        path = Path(media.path or "")
        return path if path.is_absolute() or self.data_root is None else Path(self.data_root) / path

    def load(self, media: Media) -> tuple[str, Any, Any]:
        """`(kind, data, metadata)` with kind in video | image | none."""
        if media.type == "video":
            frames, meta = load_video(
                self.resolve(media), self.fps, self.max_frames, num_frames_multiple=self.num_frames_multiple
            )
            return "video", frames, meta
        if media.type == "image":
            from PIL import Image

            with Image.open(self.resolve(media)) as img:
                return "image", img.convert("RGB"), None
        return "none", None, None


def with_absolute_media(records: list[Any], data_root: str | os.PathLike[str] | None) -> list[Any]:
    """Copies of `records` whose media paths are absolute, so one collator serves sets with different roots."""
    from dataclasses import replace

    loader = MediaLoader(data_root)
    return [
        replace(r, media=Media(r.media.type, str(loader.resolve(r.media).resolve()))) if r.media.path else r
        for r in records
    ]


def _user_content(kind: str, text: str) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": kind}] if kind in ("video", "image") else []
    return content + [{"type": "text", "text": text}]


def _processor_call(processor: Any, texts: list[str], loaded: list[tuple[str, Any, Any]]) -> Any:
    kwargs: dict[str, Any] = {}
    videos = [(d, m) for k, d, m in loaded if k == "video"]
    images = [d for k, d, _ in loaded if k == "image"]
    if videos:
        kwargs.update(videos=[d for d, _ in videos], video_metadata=[m for _, m in videos], do_sample_frames=False)
    if images:
        kwargs["images"] = images
    return processor(text=texts, padding=True, return_tensors="pt", **kwargs)


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
        messages = []
        first_user = True
        for turn in record.conversation:
            content: Any = turn.content
            if turn.role == "user" and first_user:
                content, first_user = _user_content(kind, turn.content), False
            messages.append({"role": turn.role, "content": content})
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return insert_alarm_tokens(text, self.processor, self.alarm_config)

    def __call__(self, records: list[SFTRecord]) -> dict[str, torch.Tensor]:
        loaded = [self.media.load(r.media) for r in records]
        texts = [self.render(r, kind) for r, (kind, _, _) in zip(records, loaded)]
        batch = _processor_call(self.processor, texts, loaded)
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
        content = _user_content(kind, neutralise_alarm_literals(grpo_prompt_text(record), self.alarm_config))
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        return insert_alarm_tokens(text, self.processor, self.alarm_config)

    def __call__(self, records: list[GRPORecord]) -> dict[str, Any]:
        loaded = [self.media.load(r.media) for r in records]
        prompts = [self.prompt(r, kind) for r, (kind, _, _) in zip(records, loaded)]
        tok = self.processor.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            batch = dict(_processor_call(self.processor, prompts, loaded))
        finally:
            tok.padding_side = side
        batch["prompts"] = prompts
        batch["solution"] = [r.solution for r in records]
        batch["problem_type"] = [r.problem_type for r in records]
        batch["ids"] = [r.id for r in records]
        return batch
