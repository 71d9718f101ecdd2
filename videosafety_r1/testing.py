"""Tiny, offline Video-LLM fixtures for tests, demos and benchmarks.

Nothing here downloads anything: the tokenizer is a byte-level BPE trained locally in well under a second, the
models are random weights built from small configs of the real transformers classes, and the processors are the
real transformers processors. The same code path that loads a hub checkpoint (`from_pretrained`) is exercised by
saving these to disk with `save_tiny_video_llm` and loading them back.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "video_llama_3")

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# A Qwen-style chat template. `visual` is the placeholder one image/video becomes in the text; the processor then
# expands the pad token to one token per visual patch group.
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '@IMAGE@' }}"
    "{%- elif part['type'] == 'video' -%}{{ '@VIDEO@' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_QWEN_VISUALS = {
    "@IMAGE@": "<|vision_start|><|image_pad|><|vision_end|>",
    "@VIDEO@": "<|vision_start|><|video_pad|><|vision_end|>",
}
# Native transformers VideoLLaMA3 places bare pad tokens; the processor prefixes per-frame timestamps.
_VIDEOLLAMA3_VISUALS = {"@IMAGE@": "<|image_pad|>\\n", "@VIDEO@": "<|video_pad|>\\n"}


def chat_template(family: str) -> str:
    """The Jinja chat template the tiny processor of `family` ships with."""
    visuals = _VIDEOLLAMA3_VISUALS if family == "video_llama_3" else _QWEN_VISUALS
    template = _CHAT_TEMPLATE
    for marker, text in visuals.items():
        template = template.replace(marker, text)
    return template


_WORDS = (
    "the a video clip shows person people car street dog cat red green blue square circle moving fast slowly "
    "how what why when where can could would please tell me describe explain make build weapon knife fire "
    "safe harmful danger help cook recipe garden park ball game play watch answer question think reason "
    "is are was were be not no yes i you we they it this that there here of in on at to from with for and or"
).split()
_EXTRA_TEXT = [
    "<think>reasoning</think><answer>response</answer><vidType>0</vidType><textType>1</textType>",
    "请描述这个视频中发生了什么。我不能帮助你做这件事。",
    "ما الذي يحدث في هذا الفيديو؟ لا أستطيع المساعدة في ذلك.",
    "Что происходит на видео? Я не могу с этим помочь.",
    "この動画で何が起きていますか。お手伝いできません。",
    "¿Qué ocurre en este vídeo? No puedo ayudar con eso.",
    "0 1 2 3 4 5 6 7 8 9 . , ! ? : ; ( ) < > / | _ - seconds Time s:",
]


def _corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16))) for _ in range(n)]
    return lines + _EXTRA_TEXT * 20


@functools.cache
def _trained_tokenizer_json(
    vocab_size: int, seed: int, corpus: tuple[str, ...] | None = None, han_words: tuple[str, ...] | None = None
) -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if han_words is not None:  # Han text -> the listed words (longest first), else single characters
        words = "|".join(re.escape(w) for w in sorted(set(han_words), key=len, reverse=True) if w)
        han = Regex(f"{words}|\\p{{Han}}" if words else "\\p{Han}")
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(han, behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = _corpus(5000, seed) if corpus is None else [*corpus, *_EXTRA_TEXT * 20]
    tok.train_from_iterator(lines, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(
    family: str = "qwen2_5_vl",
    vocab_size: int = 512,
    seed: int = 0,
    corpus: tuple[str, ...] | None = None,
    han_words: tuple[str, ...] | None = None,
) -> Any:
    """A byte-level BPE tokenizer trained locally, with the Qwen special tokens and the family's chat template.

    ``corpus`` (lines of text) replaces the built-in English word list, as a real model's tokenizer covers the
    languages it serves: the demo trains it on its own training rows, so its five languages are not cut to bytes."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json(vocab_size, seed, corpus, han_words)),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        padding_side="left",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = chat_template(family)
    return tokenizer


@dataclass(frozen=True)
class _FamilySpec:
    model_cls: str
    processor_cls: str
    image_processor_cls: str
    video_processor_cls: str
    patch_size: int
    tie_word_embeddings: bool


_SPECS = {
    "qwen2_vl": _FamilySpec(
        "Qwen2VLForConditionalGeneration",
        "Qwen2VLProcessor",
        "Qwen2VLImageProcessor",
        "Qwen2VLVideoProcessor",
        14,
        False,
    ),
    "qwen2_5_vl": _FamilySpec(
        "Qwen2_5_VLForConditionalGeneration",
        "Qwen2_5_VLProcessor",
        "Qwen2VLImageProcessor",
        "Qwen2VLVideoProcessor",
        14,
        False,
    ),
    # Tied input/output embeddings, like the small Qwen3-VL checkpoints: exercises the tied-export path.
    "qwen3_vl": _FamilySpec(
        "Qwen3VLForConditionalGeneration",
        "Qwen3VLProcessor",
        "Qwen2VLImageProcessor",
        "Qwen3VLVideoProcessor",
        16,
        True,
    ),
    "video_llama_3": _FamilySpec(
        "VideoLlama3ForConditionalGeneration",
        "VideoLlama3Processor",
        "VideoLlama3ImageProcessor",
        "VideoLlama3VideoProcessor",
        14,
        False,
    ),
}


def _check_family(family: str) -> _FamilySpec:
    if family not in _SPECS:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    return _SPECS[family]


def tiny_processor(
    family: str = "qwen2_5_vl",
    seed: int = 0,
    vocab_size: int = 512,
    corpus: tuple[str, ...] | None = None,
    han_words: tuple[str, ...] | None = None,
) -> Any:
    """The real transformers processor of `family`, sized so a 64x64 frame pair becomes a handful of tokens
    (``vocab_size`` and ``corpus``: :func:`tiny_tokenizer`)."""
    import transformers

    spec = _check_family(family)
    tokenizer = tiny_tokenizer(family, vocab_size=vocab_size, seed=seed, corpus=corpus, han_words=han_words)
    unit = spec.patch_size * 2  # patch x spatial merge
    size = {"shortest_edge": unit * unit * 4, "longest_edge": unit * unit * 16}
    image_processor = getattr(transformers, spec.image_processor_cls)(size=size, patch_size=spec.patch_size)
    video_processor = getattr(transformers, spec.video_processor_cls)(size=size, patch_size=spec.patch_size)
    if family == "video_llama_3":
        # Per-frame timestamps make no sense without sampling metadata; our loaders always pass it.
        video_processor.do_sample_frames = False
    processor = getattr(transformers, spec.processor_cls)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template(family),
    )
    return processor


def _padded_vocab(tokenizer: Any, multiple: int = 64) -> int:
    # Real checkpoints pad the vocabulary beyond the tokenizer (Qwen: 151936 rows for 151665 tokens); keep spare
    # rows so adding the alarm tokens must not resize (and must never shrink) the embeddings.
    return (len(tokenizer) + multiple) // multiple * multiple


def tiny_config(family: str = "qwen2_5_vl", tokenizer: Any | None = None, head_dim: int | None = None) -> Any:
    """A ~0.2M-parameter config of `family` whose special-token ids match the tiny tokenizer.

    `head_dim=None` keeps the 64-wide, 4-head text model (head_dim 16). A value (even, >= 8) builds 2 heads of that
    size instead (width `2 * head_dim`): vLLM's CPU attention needs head_dim >= 32, so engine tests pass 64.
    """
    if head_dim is not None and (head_dim < 8 or head_dim % 8):
        raise ValueError(f"head_dim must be a multiple of 8 and >= 8, got {head_dim}")
    import transformers

    spec = _check_family(family)
    tokenizer = tokenizer or tiny_tokenizer(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(
        vocab_size=_padded_vocab(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=spec.tie_word_embeddings,
    )
    token_ids = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"])
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    small_vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)
    if head_dim is not None:
        width = 2 * head_dim
        text.update(hidden_size=width, intermediate_size=2 * width, num_attention_heads=2, num_key_value_heads=1)
        half = head_dim // 2  # M-RoPE sections (temporal, height, width) sum to head_dim / 2
        rope["mrope_section"] = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
        small_vision["out_hidden_size"] = width
    if family in ("qwen2_vl", "qwen2_5_vl"):
        text["rope_parameters"] = rope
        if family == "qwen2_vl":
            vision = dict(
                depth=2, embed_dim=32, hidden_size=text["hidden_size"], mlp_ratio=2, num_heads=2, patch_size=14
            )
        else:
            vision = dict(small_vision, patch_size=14, window_size=56, fullatt_block_indexes=[1])
        token_ids.update(vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    elif family == "qwen3_vl":
        text.update(head_dim=head_dim or 16)
        text["rope_parameters"] = dict(rope, mrope_interleaved=True)
        vision = dict(small_vision, patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[0, 1])
        token_ids.update(vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    else:  # video_llama_3: a Qwen2 text model and a SigLIP-style encoder
        text.update(model_type="qwen2")
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14)
    config_cls = getattr(transformers, spec.model_cls).config_class
    return config_cls(
        text_config=text, vision_config=vision, tie_word_embeddings=spec.tie_word_embeddings, **token_ids
    )


def tiny_video_llm(family: str = "qwen2_5_vl", seed: int = 0, head_dim: int | None = None) -> tuple[Any, Any]:
    """A tiny random **base** model (no alarm tokens yet) of `family` and its real processor, offline.

    `head_dim=64` builds a model vLLM's CPU attention accepts (see `tiny_config`)."""
    import transformers

    spec = _check_family(family)
    processor = tiny_processor(family)
    config = tiny_config(family, processor.tokenizer, head_dim=head_dim)
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, spec.model_cls)(config)
    model.eval()
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    return model, processor


def save_tiny_video_llm(
    path: str | Path, family: str = "qwen2_5_vl", seed: int = 0, head_dim: int | None = None
) -> Path:
    """Write a tiny checkpoint directory (model + processor) that `from_pretrained` and `load_pretrained` read."""
    path = Path(path)
    model, processor = tiny_video_llm(family, seed, head_dim=head_dim)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def write_synthetic_video(
    path: str | Path, num_frames: int = 16, size: int = 64, fps: int = 8, seed: int = 0, harmful: bool = False
) -> Path:
    """Write a small mp4 whose harm label is visible (see `videosafety_r1.data.synthetic`)."""
    from videosafety_r1.data.synthetic import write_synthetic_video as _write

    return _write(path, num_frames=num_frames, size=size, fps=fps, seed=seed, harmful=harmful)


def random_frames(num_frames: int = 4, size: int = 64, seed: int = 0) -> Any:
    """Random uint8 frames `[T, H, W, 3]`, for tests that need a video tensor but not a file."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)


def tiny_grpo_config(output_dir: str | Path, data_root: str | Path | None = None, **overrides: Any) -> Any:
    """A `GRPOConfig` sized for tiny-model tests on CPU (2 steps, 2 prompts x G=2, 6 new tokens); any field can be
    overridden. Keeps TRL's mixed-precision default (bf16) unless ``bf16=False`` is passed."""
    from videosafety_r1.grpo.config import GRPOConfig

    args: dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        max_steps=2,
        learning_rate=1e-2,
        warmup_steps=0,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        data_root=str(data_root) if data_root is not None else None,
        video_fps=8.0,
        video_max_frames=4,
        use_cpu=True,
        seed=0,
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    args.update(overrides)
    return GRPOConfig(**args)
