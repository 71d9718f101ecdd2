"""Alarm tokens: two learnable input vectors and two harm heads attached to a Video LLM (method.md, section 1)."""

from .calibration import apply_calibration, calibrate_alarm_heads, load_calibration, save_calibration
from .io import (
    build_alarm_inputs,
    export_plain_checkpoint,
    load_checkpoint_weights,
    load_pretrained,
    predict_harm,
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
)

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
    "predict_harm",
    "register_alarm_tokens",
    "save_pretrained",
]
