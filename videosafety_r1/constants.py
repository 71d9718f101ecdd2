"""Constants and small parsers shared by data, rewards, evaluation and the trainers.

A low module: it imports nothing of this package and no model code, so every layer can use it without import
cycles. Labels everywhere: 0 = safe, 1 = harmful.
"""

from __future__ import annotations

from typing import Any

#: The problem type of Safety-GRPO rows (answer + ``<vidType>``/``<textType>`` labels, DRA reward).
SAFETY_PROBLEM_TYPE = "free-form-and-choice"
#: Every problem type a GRPO row may have (the published mixed-task set plus the safety type).
PROBLEM_TYPES = (SAFETY_PROBLEM_TYPE, "free-form", "multiple choice", "numerical", "OCR", "regression")
#: The two label values of ``<vidType>`` / ``<textType>``: 0 = safe, 1 = harmful.
LABELS = ("0", "1")
SAFE, HARMFUL = 0, 1

#: The default alarm-token literals (``AlarmConfig.visual_token`` / ``textual_token``).
VISUAL_ALARM = "<|visual_alarm|>"
TEXTUAL_ALARM = "<|textual_alarm|>"

#: Video sampling when neither the caller nor the checkpoint says otherwise (the published setting).
DEFAULT_VIDEO_FPS = 1.0
DEFAULT_VIDEO_MAX_FRAMES = 90

#: Names of vision-encoder submodules across the supported families (Qwen2/2.5/3-VL: ``visual``;
#: VideoLLaMA3: ``vision_model``; LLaVA-style: ``vision_tower``).
VISION_TOWER_NAMES = ("visual", "vision_model", "vision_tower")
#: Names of the projectors between the vision encoder and the language model (frozen with the tower).
VISION_PROJECTOR_NAMES = ("multi_modal_projector", "projector", "mm_projector")
#: Every vision-side module name: what ``AlarmConfig.freeze_vision`` freezes.
VISION_MODULE_NAMES = VISION_TOWER_NAMES + VISION_PROJECTOR_NAMES

DTYPE_NAMES = ("auto", "bfloat16", "float16", "float32")


def parse_dtype(name: Any) -> Any:
    """``"auto"`` stays ``"auto"``; ``"bfloat16"``/``"float16"``/``"float32"`` (or a ``torch.dtype``) become the
    ``torch.dtype``. Anything else raises ``ValueError`` naming the accepted values (never a bare AttributeError)."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        return "auto"
    if not isinstance(name, str) or name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {name!r}")
    return getattr(torch, name)
