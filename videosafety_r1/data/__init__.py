"""Data layer: canonical records, importers, validation, video decoding and the synthetic dataset.

``SFTCollator``, ``GRPOPromptCollator`` (``data.collate``) and ``MediaLoader`` (``videosafety_r1.media``) load on
first use: they build on the input road, which imports this package's modules.
"""

from importlib import import_module
from typing import Any

from videosafety_r1.data.importers import (
    FORMATS,
    LabelConventionError,
    RowIssue,
    convert_legacy_labels,
    detect_format,
    mark_legacy,
    parse_row,
    strip_legacy_markers,
)
from videosafety_r1.data.schema import (
    ALARM_LITERALS,
    CANONICAL_CONVENTION,
    EVAL_SPLITS,
    LEGACY_CONVENTION,
    PROBLEM_TYPES,
    EvalRecord,
    GRPORecord,
    Media,
    Record,
    SafetyLabels,
    SFTRecord,
    Turn,
    extract_tag,
    format_cot,
)
from videosafety_r1.data.synthetic import make_synthetic_dataset, synthetic_frames, write_synthetic_video
from videosafety_r1.data.validate import (
    DataValidationError,
    Problem,
    ValidationReport,
    load_dataset_checked,
    to_hf_dataset,
    validate_file,
)
from videosafety_r1.data.video import EmptyVideoError, VideoDecodeError, load_video, probe_video, sample_frame_indices

_LAZY = {
    "SFTCollator": "videosafety_r1.data.collate",
    "GRPOPromptCollator": "videosafety_r1.data.collate",
    "MediaLoader": "videosafety_r1.media",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videosafety_r1.data' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "ALARM_LITERALS",
    "CANONICAL_CONVENTION",
    "EVAL_SPLITS",
    "FORMATS",
    "LEGACY_CONVENTION",
    "PROBLEM_TYPES",
    "DataValidationError",
    "EmptyVideoError",
    "EvalRecord",
    "GRPORecord",
    "LabelConventionError",
    "Media",
    "Problem",
    "Record",
    "RowIssue",
    "SFTRecord",
    "SafetyLabels",
    "Turn",
    "ValidationReport",
    "VideoDecodeError",
    "convert_legacy_labels",
    "detect_format",
    "extract_tag",
    "format_cot",
    "load_dataset_checked",
    "load_video",
    "make_synthetic_dataset",
    "mark_legacy",
    "parse_row",
    "probe_video",
    "sample_frame_indices",
    "strip_legacy_markers",
    "synthetic_frames",
    "to_hf_dataset",
    "validate_file",
    "write_synthetic_video",
]
