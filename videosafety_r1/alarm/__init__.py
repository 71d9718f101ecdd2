"""Alarm tokens: two learnable input vectors and two harm heads attached to a Video LLM (method.md, section 1).

``predict_harm`` and ``build_alarm_inputs`` live in :mod:`videosafety_r1.inference` (they load media through the
input road); they are importable from here too, loaded on first use so this package never imports the data layer.
"""

from importlib import import_module
from typing import Any

from .calibration import apply_calibration, calibrate_alarm_heads, load_calibration, save_calibration
from .io import (
    export_plain_checkpoint,
    load_checkpoint_weights,
    load_pretrained,
    read_video_sampling,
    save_pretrained,
)
from .model import (
    FORMAT_VERSION,
    AlarmOutput,
    AlarmVideoLLM,
    add_alarm_tokens,
    find_alarm_positions,
    is_vision_parameter,
    register_alarm_tokens,
)
from .tokens import (
    TEXTUAL_ALARM,
    VISUAL_ALARM,
    AlarmConfig,
    alarm_chat_template,
    insert_alarm_tokens,
    neutral_form,
    neutralise_alarm_literals,
    neutralise_messages,
    neutralise_special_tokens,
    special_token_literals,
)

_LAZY = {"build_alarm_inputs": "videosafety_r1.inference", "predict_harm": "videosafety_r1.inference"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videosafety_r1.alarm' has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION",
    "TEXTUAL_ALARM",
    "VISUAL_ALARM",
    "AlarmConfig",
    "AlarmOutput",
    "AlarmVideoLLM",
    "add_alarm_tokens",
    "alarm_chat_template",
    "apply_calibration",
    "calibrate_alarm_heads",
    "load_calibration",
    "save_calibration",
    "build_alarm_inputs",
    "export_plain_checkpoint",
    "find_alarm_positions",
    "insert_alarm_tokens",
    "load_checkpoint_weights",
    "is_vision_parameter",
    "load_pretrained",
    "neutral_form",
    "neutralise_alarm_literals",
    "neutralise_messages",
    "neutralise_special_tokens",
    "special_token_literals",
    "predict_harm",
    "read_video_sampling",
    "register_alarm_tokens",
    "save_pretrained",
]
