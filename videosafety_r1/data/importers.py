"""Parse the published and public safety-data formats into canonical records (docs/data.md, "Importers").

Every parser is tolerant: it records each problem it meets as a :class:`RowIssue` (field, kind, message) and
still returns what it could build, so that validation can report every problem of a file at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from videosafety_r1.data.schema import (  # noqa: F401  (converter re-exported)
    CANONICAL_CONVENTION,
    EvalRecord,
    GRPORecord,
    LabelConventionError,
    Media,
    Record,
    SafetyLabels,
    SFTRecord,
    Turn,
    convert_legacy_labels,
    mark_legacy,
)

FORMATS = (
    "canonical-sft",
    "canonical-grpo",
    "canonical-eval",
    "published-sft",
    "published-grpo",
    "vlguard",
    "video-safetybench",
)
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_PLACEHOLDER_RE = re.compile(r"<(video|image)>\s*")
# `$v` / `$t` stood for the alarm positions in early releases; strip them but keep words such as "$value".
_LEGACY_MARKER_RE = re.compile(r"\$v\$t|\$[vt](?![A-Za-z0-9_])")
_VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".gif")


@dataclasses.dataclass(frozen=True)
class RowIssue:
    """One problem of one row: the offending field, a stable kind (docs/data.md lists them) and a message."""

    field: str
    kind: str
    message: str


Issues = list[RowIssue]


def strip_legacy_markers(text: str) -> str:
    """Remove ``<video>``/``<image>`` placeholders and the legacy ``$v$t`` alarm markers from user text."""
    return _LEGACY_MARKER_RE.sub("", _PLACEHOLDER_RE.sub("", text)).strip()


def detect_format(row: dict[str, Any]) -> str | None:
    """Name the format of one parsed JSON row (one of :data:`FORMATS`), or None when nothing matches."""
    if "conversations" in row:
        return "published-sft"
    if "conversation" in row:
        return "canonical-sft"
    if "instr-resp" in row:
        return "vlguard"
    if "problem" in row and ("problem_id" in row or "data_type" in row or "path" in row):
        return "published-grpo"
    if "problem" in row:
        return "canonical-grpo"
    if "query" in row and "labels" in row:
        return "canonical-eval"
    if "video_path" in row or ("question" in row and "video" in row):
        return "video-safetybench"
    return None


def _labels(value: Any, name: str, issues: Issues) -> SafetyLabels | None:
    if value is None:
        issues.append(RowIssue(name, "missing_labels", f"`{name}` is required (0 = safe, 1 = harmful); got none"))
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        visual, textual = value
    elif isinstance(value, dict) and {"visual", "textual"} <= value.keys():
        visual, textual = value["visual"], value["textual"]
    else:
        issues.append(
            RowIssue(name, "invalid_labels", f"expected [visual, textual] or {{visual, textual}}, got {value!r}")
        )
        return None
    bad = [(k, v) for k, v in (("visual", visual), ("textual", textual)) if type(v) is not int or v not in (0, 1)]
    for key, v in bad:
        issues.append(RowIssue(f"{name}.{key}", "invalid_labels", f"label must be the integer 0 or 1, got {v!r}"))
    return None if bad else SafetyLabels(visual, textual)


def _str_field(row: dict[str, Any], key: str, issues: Issues, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            issues.append(RowIssue(key, "missing_field", f"`{key}` is required"))
        return None
    if not isinstance(value, str):
        issues.append(RowIssue(key, "invalid_field", f"`{key}` must be a string, got {type(value).__name__}"))
        return None
    return value


def _media_from_paths(row: dict[str, Any], issues: Issues) -> Media:
    for media_type in ("video", "image"):
        value = row.get(media_type)
        if value is None:
            continue
        paths = value if isinstance(value, list) else [value]
        if len(paths) != 1 or not isinstance(paths[0], str):
            issues.append(RowIssue(media_type, "invalid_field", f"expected one {media_type} path, got {value!r}"))
            return Media()
        return Media(media_type, paths[0])
    return Media()


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("category", "sub_category", "language", "split")
    return {k: row[k] for k in keys if isinstance(row.get(k), str)}


def from_published_sft(row: dict[str, Any], default_id: str, issues: Issues) -> SFTRecord:
    """VideoLLaMA3-style ``{"video": [path], "conversations": [{"from", "value"}], "safety_labels": [v, t]}``."""
    conversation = []
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        issues.append(RowIssue("conversations", "invalid_conversation", "`conversations` must be a non-empty list"))
        turns = []
    for i, turn in enumerate(turns):
        role = _ROLES.get(turn.get("from")) if isinstance(turn, dict) else None
        value = turn.get("value") if isinstance(turn, dict) else None
        if role is None or not isinstance(value, str):
            issues.append(RowIssue(f"conversations[{i}]", "invalid_conversation", f"bad turn {turn!r}"))
            continue
        conversation.append(Turn(role, strip_legacy_markers(value) if role == "user" else value))
    labels = _labels(row.get("safety_labels"), "safety_labels", issues)
    return SFTRecord(
        id=str(row.get("id", default_id)),
        media=_media_from_paths(row, issues),
        conversation=conversation,
        safety_labels=labels or SafetyLabels(0, 0),
        **_meta(row),
    )


def from_published_grpo(row: dict[str, Any], default_id: str, issues: Issues) -> GRPORecord:
    """``{problem_id, data_type, path, problem, problem_type, solution, options}``; labels come from the tags."""
    path = row.get("path")
    data_type = row.get("data_type") or ("video" if str(path).lower().endswith(_VIDEO_EXTS) else "image")
    if path is not None and data_type not in ("video", "image"):
        issues.append(RowIssue("data_type", "invalid_field", f"`data_type` must be video or image, got {data_type!r}"))
    media = Media(data_type, path) if isinstance(path, str) and data_type in ("video", "image") else Media()
    options = row.get("options")
    return GRPORecord(
        id=str(row.get("problem_id", row.get("id", default_id))),
        media=media,
        problem=strip_legacy_markers(_str_field(row, "problem", issues) or ""),
        problem_type=_str_field(row, "problem_type", issues) or "",
        solution=_str_field(row, "solution", issues) or "",
        options=options if isinstance(options, list) and options else None,
        **{k: v for k, v in _meta(row).items() if k in ("category", "language")},
    )


def from_canonical(row: dict[str, Any], default_id: str, issues: Issues, kind: str) -> Record:
    """Rows written by this library (``record.to_dict()``), e.g. by ``make-synthetic``."""
    media_value = row.get("media")
    media = Media()
    if media_value is not None:
        if not isinstance(media_value, dict) or media_value.get("type") not in ("video", "image", "none"):
            issues.append(RowIssue("media", "invalid_field", f"expected {{type, path}}, got {media_value!r}"))
        else:
            media = Media.from_dict(media_value)
    common = {"id": str(row.get("id", default_id)), "media": media}
    common["label_convention"] = row.get("label_convention", CANONICAL_CONVENTION)
    if kind == "canonical-sft":
        conversation = []
        for i, turn in enumerate(row.get("conversation") or []):
            if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant", "system"):
                issues.append(RowIssue(f"conversation[{i}]", "invalid_conversation", f"bad turn {turn!r}"))
            elif not isinstance(turn.get("content"), str):
                issues.append(RowIssue(f"conversation[{i}].content", "invalid_conversation", "content must be text"))
            else:
                conversation.append(Turn(turn["role"], turn["content"]))
        labels = _labels(row.get("safety_labels"), "safety_labels", issues) or SafetyLabels(0, 0)
        return SFTRecord(conversation=conversation, safety_labels=labels, **common, **_meta(row))
    if kind == "canonical-grpo":
        labels = _labels(row["safety_labels"], "safety_labels", issues) if row.get("safety_labels") else None
        return GRPORecord(
            problem=_str_field(row, "problem", issues) or "",
            problem_type=_str_field(row, "problem_type", issues) or "",
            solution=_str_field(row, "solution", issues) or "",
            options=row.get("options") or None,
            safety_labels=labels,
            **common,
            **{k: v for k, v in _meta(row).items() if k in ("category", "language")},
        )
    labels = _labels(row.get("labels"), "labels", issues) or SafetyLabels(0, 0)
    return EvalRecord(
        split=_str_field(row, "split", issues) or "",
        query=_str_field(row, "query", issues) or "",
        labels=labels,
        category=row.get("category"),
        language=row.get("language"),
        **common,
    )


def from_vlguard(row: dict[str, Any], default_id: str, issues: Issues) -> list[SFTRecord]:
    """One VLGuard image record -> one SFT record per instruction-response pair.

    Visual label = not ``safe``; ``safe_instruction`` -> textual 0, ``unsafe_instruction`` -> textual 1, and the
    plain ``instruction`` of an unsafe image -> textual 0 (the harm is in the image).
    """
    safe = row.get("safe")
    if not isinstance(safe, bool):
        issues.append(RowIssue("safe", "missing_labels", f"`safe` must be true or false, got {safe!r}"))
        safe = True
    media = Media("image", row["image"]) if isinstance(row.get("image"), str) else Media()
    if media.type == "none":
        issues.append(RowIssue("image", "missing_field", "`image` path is required"))
    records = []
    for i, pair in enumerate(row.get("instr-resp") or []):
        key = next((k for k in ("safe_instruction", "unsafe_instruction", "instruction") if k in pair), None)
        if key is None or not isinstance(pair.get("response"), str):
            issues.append(RowIssue(f"instr-resp[{i}]", "invalid_conversation", f"bad pair {pair!r}"))
            continue
        records.append(
            SFTRecord(
                id=f"{row.get('id', default_id)}-{i}",
                media=media,
                conversation=[Turn("user", pair[key]), Turn("assistant", pair["response"])],
                safety_labels=SafetyLabels(int(not safe), int(key == "unsafe_instruction")),
                category=row.get("harmful_category"),
                sub_category=row.get("harmful_subcategory"),
            )
        )
    return records


def from_video_safetybench(row: dict[str, Any], default_id: str, issues: Issues) -> EvalRecord:
    """Video-SafetyBench ``{video_path, query|question, category}`` -> an eval record.

    Its videos depict the harm, so visual = 1; a ``query_type`` of ``"benign"`` marks a safe query (split SafeQ),
    anything else a harmful one (split HH).
    """
    path = row.get("video_path", row.get("video"))
    if not isinstance(path, str):
        issues.append(RowIssue("video_path", "missing_field", "`video_path` is required"))
    query = row.get("query", row.get("question"))
    if not isinstance(query, str):
        issues.append(RowIssue("query", "missing_field", "`query` is required"))
    textual = 0 if str(row.get("query_type", "harmful")).lower() in ("benign", "safe") else 1
    return EvalRecord(
        id=str(row.get("id", default_id)),
        split="HH" if textual else "SafeQ",
        query=query if isinstance(query, str) else "",
        media=Media("video", path) if isinstance(path, str) else Media(),
        labels=SafetyLabels(1, textual),
        category=row.get("category"),
        language=row.get("language", "en"),
    )


def parse_row(row: dict[str, Any], fmt: str, default_id: str, issues: Issues) -> list[Record]:
    """Parse one row of a file in format ``fmt``; VLGuard rows expand into several records."""
    if fmt.startswith("canonical-"):
        return [from_canonical(row, default_id, issues, fmt)]
    parsers: dict[str, Callable[..., Any]] = {
        "published-sft": from_published_sft,
        "published-grpo": from_published_grpo,
        "vlguard": from_vlguard,
        "video-safetybench": from_video_safetybench,
    }
    result = parsers[fmt](row, default_id, issues)
    return result if isinstance(result, list) else [result]
