"""The one road from a record to model inputs, shared by training, evaluation, inference and generators.

    prompt = build_prompt(processor, user_text, media_loader.load(record.media, record.id))
    batch = processor_inputs(processor, [prompt], padding_side="left")

Every caller goes through these functions: ``SFTCollator`` and ``GRPOPromptCollator`` (training),
``evaluation.build_eval_inputs``, ``predict_harm`` / ``build_alarm_inputs`` (inference), and the vLLM generator
(:func:`build_prompt` returns the prompt text and the exact frames + metadata the processor saw). So for the same
record all of them produce the same ``input_ids``, pixel tensors, grids and temporal metadata.

The steps, in order:

1. **Text.** The chat template renders the messages after every special token of the tokenizer typed in their
   text (``<|im_start|>``, ``<|video_pad|>``, the alarm literals, ...) is neutralised
   (:func:`videosafety_r1.alarm.tokens.neutralise_messages`): typed text can never fake a turn, a visual
   placeholder or an alarm. Then the two alarm tokens are placed (``insert_alarm_tokens``).
2. **Media.** Loaded from under the data root (:class:`videosafety_r1.media.MediaLoader`), video frames padded to
   the model's temporal patch with exact timing (:func:`videosafety_r1.media.pad_video`).
3. **Processor.** One call with ``do_sample_frames=False`` and the metadata of the frames actually given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .alarm.tokens import AlarmConfig, insert_alarm_tokens, neutralise_messages, special_token_literals
from .constants import DEFAULT_VIDEO_FPS, DEFAULT_VIDEO_MAX_FRAMES, SAFETY_PROBLEM_TYPE
from .data.schema import EvalRecord, GRPORecord, SFTRecord
from .media import LoadedMedia, MediaLoader, SampledVideoMetadata, pad_video, temporal_multiple

__all__ = [
    "REASONING_INSTRUCTION",
    "SAFETY_INSTRUCTION",
    "PromptInput",
    "build_prompt",
    "eval_user_text",
    "grpo_prompt_text",
    "padded_media",
    "processor_inputs",
    "prompt_text",
    "record_prompt",
    "record_user_text",
    "render_chat",
    "user_message",
    "video_sampling",
]

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


def grpo_prompt_text(record: Any) -> str:
    """The user text of a GRPO prompt (a ``GRPORecord``): the question, its options (one per line under
    ``Options:``), then the reasoning instruction, a per-type answer hint and, for safety rows
    (``free-form-and-choice``), the instruction to label video and text in ``<vidType>``/``<textType>``."""
    text = record.problem
    if record.options:
        text += "\nOptions:\n" + "\n".join(record.options)
    text += "\n" + REASONING_INSTRUCTION + _TYPE_HINTS.get(record.problem_type, "")
    if record.problem_type == SAFETY_PROBLEM_TYPE:
        text += SAFETY_INSTRUCTION
    return text


def eval_user_text(query: str, prompt_format: str = "query") -> str:
    """The user text of an evaluation prompt: the bare query, or (``"reasoning"``) the query plus the format
    instructions a CoT/GRPO-trained model saw, equal to :func:`grpo_prompt_text` of a safety row."""
    if prompt_format not in ("query", "reasoning"):
        raise ValueError(f"prompt_format must be 'query' or 'reasoning', got {prompt_format!r}")
    return query + ("\n" + REASONING_INSTRUCTION + SAFETY_INSTRUCTION if prompt_format == "reasoning" else "")


def record_user_text(record: Any, prompt_format: str = "query") -> str:
    """The user text the model sees for a record: a ``GRPORecord``'s :func:`grpo_prompt_text`, an ``EvalRecord``'s
    :func:`eval_user_text`, an ``SFTRecord``'s first user turn."""
    if isinstance(record, GRPORecord):
        return grpo_prompt_text(record)
    if isinstance(record, EvalRecord):
        return eval_user_text(record.query, prompt_format)
    if isinstance(record, SFTRecord):
        return record.query
    raise TypeError(f"expected a GRPORecord, EvalRecord or SFTRecord, got {type(record).__name__}")


def record_prompt(
    processor: Any,
    record: Any,
    loader: MediaLoader,
    *,
    alarm: bool = True,
    alarm_config: AlarmConfig | None = None,
    prompt_format: str = "query",
) -> PromptInput:
    """One record's generation prompt: text (``PromptInput.token_ids`` for its ids) and the exact padded frames and
    metadata the processor is given. Media paths are confined to ``loader``'s data root. The entry point for
    generators that run outside the processor (vLLM): feed ``prompt.text`` and ``prompt.media`` and they see what
    training and evaluation see."""
    media = loader.load(record.media, record.id)
    text = record_user_text(record, prompt_format)
    return build_prompt(processor, text, media, alarm=alarm, alarm_config=alarm_config, fps=loader.fps)


def user_message(kind: str, text: str) -> dict[str, Any]:
    """A user message: the visual placeholder first (``kind`` video | image), then the text."""
    content: list[dict[str, Any]] = [{"type": kind}] if kind in ("video", "image") else []
    return {"role": "user", "content": content + [{"type": "text", "text": text}]}


def render_chat(
    processor: Any,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool,
    alarm: bool = True,
    alarm_config: AlarmConfig | None = None,
) -> str:
    """Chat-template text of ``messages`` with typed special tokens (the alarm literals included, even for a model
    without alarm tokens) neutralised and, with ``alarm``, the alarm tokens placed; visual placeholders are not
    expanded yet (the processor does that)."""
    cfg = alarm_config or getattr(processor, "alarm_config", None) or AlarmConfig()
    safe = neutralise_messages(messages, special_token_literals(processor.tokenizer, cfg))
    text = processor.apply_chat_template(safe, tokenize=False, add_generation_prompt=add_generation_prompt)
    return insert_alarm_tokens(text, processor, cfg) if alarm else text


def padded_media(processor: Any, media: LoadedMedia, fps: float | None = None) -> LoadedMedia:
    """``media`` with video frames padded to the processor's temporal patch (exact metadata); others unchanged.
    Already padded media (a :class:`SampledVideoMetadata`) pass through."""
    if media.kind != "video" or isinstance(media.metadata, SampledVideoMetadata):
        return media
    frames, meta = pad_video(media.data, media.metadata, temporal_multiple(processor), fps)
    return LoadedMedia("video", frames, meta)


@dataclass
class PromptInput:
    """One record's prompt as the model sees it: ``text`` (chat template, alarm tokens placed, visual
    placeholders not yet expanded) and ``media`` (the decoded, padded frames and the metadata given to the
    processor). What a generator such as vLLM needs to feed the same frames."""

    text: str
    media: LoadedMedia = field(default_factory=LoadedMedia)

    def token_ids(self, processor: Any) -> list[int]:
        """The prompt's token ids with the visual placeholders not expanded (one pad token per image/video, the
        form vLLM's ``prompt_token_ids`` takes; the processor expands them)."""
        return processor.tokenizer(self.text, add_special_tokens=False)["input_ids"]


def build_prompt(
    processor: Any,
    user_text: str,
    media: LoadedMedia,
    *,
    alarm: bool = True,
    alarm_config: AlarmConfig | None = None,
    fps: float | None = None,
) -> PromptInput:
    """The generation prompt of one user turn (text + media), the same for GRPO, evaluation and inference."""
    media = padded_media(processor, media, fps)
    return PromptInput(prompt_text(processor, user_text, media.kind, alarm=alarm, alarm_config=alarm_config), media)


def prompt_text(
    processor: Any, user_text: str, kind: str = "none", *, alarm: bool = True, alarm_config: AlarmConfig | None = None
) -> str:
    """The generation-prompt text of one user turn with media of ``kind`` (video | image | none): the text part
    of :func:`build_prompt`, for callers that need no media."""
    message = user_message(kind, user_text)
    return render_chat(processor, [message], add_generation_prompt=True, alarm=alarm, alarm_config=alarm_config)


def processor_inputs(
    processor: Any, prompts: Sequence[PromptInput], padding_side: str | None = None, ids: Sequence[Any] | None = None
) -> Any:
    """One processor call for a batch of prompts (each with at most one video or image): ``input_ids``,
    ``attention_mask`` ``[B, L]``, pixel tensors, grids and the family's temporal fields. ``padding_side``
    (``"left"`` for generation) overrides the tokenizer's for this call only. A processor error is re-raised as a
    ``ValueError`` naming the records (``ids``)."""
    videos = [p.media for p in prompts if p.media.kind == "video"]
    images = [p.media.data for p in prompts if p.media.kind == "image"]
    kwargs: dict[str, Any] = {}
    if videos:
        kwargs.update(videos=[m.data for m in videos], video_metadata=[m.metadata for m in videos])
        kwargs["do_sample_frames"] = False
    if images:
        kwargs["images"] = images
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    try:
        return processor(text=[p.text for p in prompts], padding=True, return_tensors="pt", **kwargs)
    except Exception as err:
        if ids is None:
            raise
        raise ValueError(f"records {list(ids)}: the processor failed: {type(err).__name__}: {err}") from err
    finally:
        tokenizer.padding_side = side


def video_sampling(source: Any = None, fps: float | None = None, max_frames: int | None = None) -> tuple[float, int]:
    """``(fps, max_frames)``: the caller's values where given, else what the checkpoint recorded at training
    (``source`` is a model, whose ``video_sampling`` comes from ``alarm_config.json``, or that record itself, see
    ``alarm.read_video_sampling``), else 1.0 fps and 90 frames."""
    recorded = (source if isinstance(source, Mapping) else getattr(source, "video_sampling", None)) or {}
    return (
        float(fps if fps is not None else recorded.get("video_fps", DEFAULT_VIDEO_FPS)),
        int(max_frames if max_frames is not None else recorded.get("video_max_frames", DEFAULT_VIDEO_MAX_FRAMES)),
    )
