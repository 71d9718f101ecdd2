"""Canonical, typed records for every dataset the library reads (docs/data.md).

Rows are parsed once into dataclasses so that a bad field fails at load time with a line number, not as a
``KeyError`` hours into training. Labels everywhere: 0 = safe, 1 = harmful.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from videosafety_r1.constants import HARMFUL, PROBLEM_TYPES, SAFE, SAFETY_PROBLEM_TYPE, TEXTUAL_ALARM, VISUAL_ALARM
from videosafety_r1.errors import InputError
from videosafety_r1.tags import ANSWER_FORMAT, COT_FORMAT, extract_tag, format_cot

#: Marker of the label convention a record is in; the canonical one is 0 = safe, 1 = harmful.
CANONICAL_CONVENTION = "harmful=1"
#: The convention of some early releases (1 = safe), only ever converted explicitly (importers.convert_legacy_labels).
LEGACY_CONVENTION = "safe=1"
EVAL_SPLITS = ("HH", "SH", "SafeQ")
#: The default alarm literals (``AlarmConfig``'s); validation checks those of the run's ``AlarmConfig``.
ALARM_LITERALS = (VISUAL_ALARM, TEXTUAL_ALARM)
MediaType = Literal["video", "image", "none"]
RecordKind = Literal["sft", "grpo", "eval"]

#: A CoT training target (the grammar of :mod:`videosafety_r1.tags`); kept under its old name.
COT_RE = COT_FORMAT
#: A CoT target of a non-safety row (problem_type other than "free-form-and-choice"), as the format reward asks.
ANSWER_COT_RE = ANSWER_FORMAT

__all__ = [
    "ALARM_LITERALS",
    "ANSWER_COT_RE",
    "CANONICAL_CONVENTION",
    "COT_RE",
    "EVAL_SPLITS",
    "HARMFUL",
    "LEGACY_CONVENTION",
    "PROBLEM_TYPES",
    "SAFE",
    "SAFETY_PROBLEM_TYPE",
    "EvalRecord",
    "GRPORecord",
    "LabelConventionError",
    "Media",
    "Record",
    "SFTRecord",
    "SafetyLabels",
    "Turn",
    "convert_legacy_labels",
    "extract_tag",
    "format_cot",
    "mark_legacy",
]


@dataclass(frozen=True)
class Media:
    """What the sample shows: a video or image path relative to the data root, or nothing (text-only).

    ``root`` is the data root the path belongs to when a loader serves several sets (never read from rows, never
    written back: ``to_dict`` leaves it out)."""

    type: MediaType = "none"
    path: str | None = None
    root: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any] | None:
        return None if self.type == "none" else {"type": self.type, "path": self.path}

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> Media:
        if value is None:
            return cls()
        return cls(type=value.get("type", "none"), path=value.get("path"))


@dataclass(frozen=True)
class SafetyLabels:
    """Harm labels of the video (``visual``) and the query (``textual``), 0 = safe, 1 = harmful."""

    visual: int
    textual: int

    def to_dict(self) -> dict[str, int]:
        return {"visual": self.visual, "textual": self.textual}


@dataclass(frozen=True)
class Turn:
    """One conversation turn; ``role`` is ``"user"`` or ``"assistant"`` (``"system"`` allowed first)."""

    role: str
    content: str


@dataclass
class SFTRecord:
    """An AT-SFT / CoT cold-start sample: media, conversation and the two alarm labels."""

    id: str
    media: Media
    conversation: list[Turn]
    safety_labels: SafetyLabels
    category: str | None = None
    sub_category: str | None = None
    language: str | None = None
    split: str | None = None
    label_convention: str = CANONICAL_CONVENTION
    #: Optional; a CoT target of a row whose type is not "free-form-and-choice" needs only think + answer tags.
    problem_type: str | None = None
    kind: RecordKind = field(default="sft", init=False)

    @property
    def query(self) -> str:
        """The first user turn, which is where the alarm tokens go."""
        return next(t.content for t in self.conversation if t.role == "user")

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k not in ("kind",)}
        row["media"] = self.media.to_dict()
        row["safety_labels"] = self.safety_labels.to_dict()
        if self.problem_type is None:
            del row["problem_type"]
        return row


@dataclass
class GRPORecord:
    """A Safety-GRPO prompt; reference answer and labels live in the tags of ``solution``."""

    id: str
    media: Media
    problem: str
    problem_type: str
    solution: str
    options: list[str] | None = None
    safety_labels: SafetyLabels | None = None
    category: str | None = None
    language: str | None = None
    label_convention: str = CANONICAL_CONVENTION
    kind: RecordKind = field(default="grpo", init=False)

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k not in ("kind",)}
        row["media"] = self.media.to_dict()
        row["safety_labels"] = self.safety_labels.to_dict() if self.safety_labels else None
        return row


@dataclass
class EvalRecord:
    """A benchmark query: VSE-HH (harmful video + query), VSE-SH (safe video + harmful query), VSE-SafeQ."""

    id: str
    split: str
    query: str
    media: Media
    labels: SafetyLabels
    category: str | None = None
    language: str | None = None
    label_convention: str = CANONICAL_CONVENTION
    kind: RecordKind = field(default="eval", init=False)

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k not in ("kind",)}
        row["media"] = self.media.to_dict()
        row["labels"] = self.labels.to_dict()
        return row


Record = SFTRecord | GRPORecord | EvalRecord


class LabelConventionError(InputError):
    """Raised when converting legacy labels on a record that is already in the canonical convention."""


def _flip_tags(text: str) -> str:
    return re.sub(
        r"<(vidType|textType)>\s*([01])\s*</\1>", lambda m: f"<{m.group(1)}>{1 - int(m.group(2))}</{m.group(1)}>", text
    )


def mark_legacy(record: Record) -> Record:
    """Declare that ``record`` was read from a legacy (1 = safe) source, so that it can be converted once."""
    return dataclasses.replace(record, label_convention=LEGACY_CONVENTION)


def convert_legacy_labels(record: Record) -> Record:
    """Flip a legacy (1 = safe) record to the canonical 0 = safe, 1 = harmful, tags in targets included.

    Raises :class:`LabelConventionError` unless the record is marked legacy, so a second pass cannot undo the first.
    """
    if record.label_convention != LEGACY_CONVENTION:
        raise LabelConventionError(
            f"record {record.id!r} is in convention {record.label_convention!r}, not the legacy {LEGACY_CONVENTION!r};"
            " converting it again would invert its labels"
        )

    def flip(labels: SafetyLabels | None) -> SafetyLabels | None:
        return None if labels is None else SafetyLabels(1 - labels.visual, 1 - labels.textual)

    changes: dict[str, Any] = {"label_convention": CANONICAL_CONVENTION}
    if isinstance(record, SFTRecord):
        changes["safety_labels"] = flip(record.safety_labels)
        changes["conversation"] = [
            Turn(t.role, _flip_tags(t.content)) if t.role == "assistant" else t for t in record.conversation
        ]
    elif isinstance(record, GRPORecord):
        changes["safety_labels"] = flip(record.safety_labels)
        changes["solution"] = _flip_tags(record.solution)
    else:
        changes["labels"] = flip(record.labels)
    return dataclasses.replace(record, **changes)
