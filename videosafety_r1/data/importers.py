"""Parse the published and public safety-data formats into canonical records (docs/data.md, "Importers").

Every parser is tolerant: it records each problem it meets as a :class:`RowIssue` (field, kind, message) and
still returns what it could build, so that validation can report every problem of a file at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from typing import Any

from videosafety_r1.data.fields import (
    Issues,
    RowIssue,
    canonical_media,
    json_type,
    label_convention,
    optional_strs,
    row_id,
    str_field,
    str_list,
    wrong_type,
)
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
#: What each format is recognised by, for the ``unknown_format`` message.
FORMAT_KEYS = {
    "canonical-sft": "conversation",
    "canonical-grpo": "problem (+ media)",
    "canonical-eval": "query + labels",
    "published-sft": "conversations",
    "published-grpo": "problem + problem_id/data_type/path",
    "vlguard": "instr-resp",
    "video-safetybench": "video_path (or question + video)",
}
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_PLACEHOLDER_RE = re.compile(r"<(video|image)>\s*")
# `$v` / `$t` stood for the alarm positions in early releases; strip them but keep words such as "$value".
_LEGACY_MARKER_RE = re.compile(r"\$v\$t|\$[vt](?![A-Za-z0-9_])")
_VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".gif")
_META = ("category", "sub_category", "language", "split")
_PUBLISHED_TURN = '{"from": "human"|"gpt"|"system", "value": text}'
_CANONICAL_TURN = '{"role": "user"|"assistant"|"system", "content": text}'
_VLGUARD_PAIR = '{"instruction"|"safe_instruction"|"unsafe_instruction": text, "response": text}'


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
            RowIssue(name, "invalid_labels", f"expected [visual, textual] or {{visual, textual}}, got {value!r:.80}")
        )
        return None
    bad = [(k, v) for k, v in (("visual", visual), ("textual", textual)) if type(v) is not int or v not in (0, 1)]
    for key, v in bad:
        issues.append(RowIssue(f"{name}.{key}", "invalid_labels", f"label must be the integer 0 or 1, got {v!r:.40}"))
    return None if bad else SafetyLabels(visual, textual)


def _media_from_paths(row: dict[str, Any], issues: Issues) -> Media:
    """Published SFT: ``video: [path]`` or ``image: path``; neither key means a text-only chat row (the format's
    own convention for text data)."""
    for media_type in ("video", "image"):
        value = row.get(media_type)
        if value is None:
            continue
        paths = value if isinstance(value, list) else [value]
        if len(paths) != 1 or not isinstance(paths[0], str):
            issues.append(RowIssue(media_type, "invalid_field", f"expected one {media_type} path, got {value!r:.80}"))
            return Media()
        return Media(media_type, paths[0])
    return Media()


def _turns(value: Any, name: str, keys: tuple[str, str], shape: str, issues: Issues) -> list[Turn]:
    """A conversation list; each bad turn is reported with the shape expected (a wrong key names the right ones)."""
    if not isinstance(value, list) or not value:
        issues.append(RowIssue(name, "invalid_conversation", f"`{name}` must be a non-empty list of {shape}"))
        return []
    role_key, text_key = keys
    published = role_key == "from"
    roles = _ROLES if published else {r: r for r in ("user", "assistant", "system")}  # canonical: exact names
    turns = []
    for i, turn in enumerate(value):
        role = (
            roles.get(turn.get(role_key)) if isinstance(turn, dict) and isinstance(turn.get(role_key), str) else None
        )
        text = turn.get(text_key) if isinstance(turn, dict) else None
        if role is None or not isinstance(text, str):
            got = sorted(turn) if isinstance(turn, dict) else json_type(turn)
            issues.append(RowIssue(f"{name}[{i}]", "invalid_conversation", f"bad turn (keys {got}): expected {shape}"))
            continue
        turns.append(Turn(role, strip_legacy_markers(text) if role == "user" and published else text))
    return turns


def from_published_sft(row: dict[str, Any], default_id: str, issues: Issues) -> SFTRecord:
    """VideoLLaMA3-style ``{"video": [path], "conversations": [{"from", "value"}], "safety_labels": [v, t]}``."""
    conversation = _turns(row.get("conversations"), "conversations", ("from", "value"), _PUBLISHED_TURN, issues)
    labels = _labels(row.get("safety_labels"), "safety_labels", issues)
    return SFTRecord(
        id=row_id(row, ("id",), default_id, issues),
        media=_media_from_paths(row, issues),
        conversation=conversation,
        safety_labels=labels or SafetyLabels(0, 0),
        problem_type=str_field(row, "problem_type", issues, required=False),
        **optional_strs(row, _META, issues),
    )


def from_published_grpo(row: dict[str, Any], default_id: str, issues: Issues) -> GRPORecord:
    """``{problem_id, data_type, path, problem, problem_type, solution, options}``; labels come from the tags.

    ``path`` is required (``null`` for a text-only prompt); ``data_type`` defaults from the path's extension."""
    media = Media()
    if "path" not in row:
        issues.append(RowIssue("path", "missing_field", "`path` is required (a video or image path, or null)"))
    elif row["path"] is not None:
        path = str_field(row, "path", issues)
        default_type = "video" if str(path).lower().endswith(_VIDEO_EXTS) else "image"
        data_type = row.get("data_type") or default_type
        if data_type not in ("video", "image"):
            issues.append(wrong_type("data_type", '"video" or "image"', data_type))
        elif path is not None:
            media = Media(data_type, path)
    return GRPORecord(
        id=row_id(row, ("problem_id", "id"), default_id, issues),
        media=media,
        problem=strip_legacy_markers(str_field(row, "problem", issues) or ""),
        problem_type=str_field(row, "problem_type", issues) or "",
        solution=str_field(row, "solution", issues) or "",
        options=str_list(row, "options", issues),
        **optional_strs(row, ("category", "language"), issues),
    )


def from_canonical(row: dict[str, Any], default_id: str, issues: Issues, kind: str) -> Record:
    """Rows written by this library (``record.to_dict()``), e.g. by ``make-synthetic``."""
    common: dict[str, Any] = {"id": row_id(row, ("id",), default_id, issues), "media": canonical_media(row, issues)}
    if kind == "canonical-sft":
        conversation = _turns(row.get("conversation"), "conversation", ("role", "content"), _CANONICAL_TURN, issues)
        labels = _labels(row.get("safety_labels"), "safety_labels", issues) or SafetyLabels(0, 0)
        problem_type = str_field(row, "problem_type", issues, required=False)
        return SFTRecord(
            conversation=conversation,
            safety_labels=labels,
            problem_type=problem_type,
            **common,
            **optional_strs(row, _META, issues),
        )
    if kind == "canonical-grpo":
        labels = (
            _labels(row["safety_labels"], "safety_labels", issues) if row.get("safety_labels") is not None else None
        )
        return GRPORecord(
            problem=str_field(row, "problem", issues) or "",
            problem_type=str_field(row, "problem_type", issues) or "",
            solution=str_field(row, "solution", issues) or "",
            options=str_list(row, "options", issues),
            safety_labels=labels,
            **common,
            **optional_strs(row, ("category", "language"), issues),
        )
    labels = _labels(row.get("labels"), "labels", issues) or SafetyLabels(0, 0)
    return EvalRecord(
        split=str_field(row, "split", issues) or "",
        query=str_field(row, "query", issues) or "",
        labels=labels,
        **common,
        **optional_strs(row, ("category", "language"), issues),
    )


def _vlguard_pair(pair: Any, name: str, issues: Issues) -> tuple[str, str, str] | None:
    keys = ("safe_instruction", "unsafe_instruction", "instruction")
    key = next((k for k in keys if k in pair), None) if isinstance(pair, dict) else None
    if key is None or not isinstance(pair.get("response"), str):
        got = sorted(pair) if isinstance(pair, dict) else json_type(pair)
        issues.append(RowIssue(name, "invalid_conversation", f"bad pair (keys {got}): expected {_VLGUARD_PAIR}"))
        return None
    if not isinstance(pair[key], str):
        issues.append(wrong_type(f"{name}.{key}", "a string", pair[key]))
        return None
    return key, pair[key], pair["response"]


def from_vlguard(row: dict[str, Any], default_id: str, issues: Issues) -> list[SFTRecord]:
    """One VLGuard image record -> one SFT record per instruction-response pair.

    Visual label = not ``safe``; ``safe_instruction`` -> textual 0, ``unsafe_instruction`` -> textual 1, and the
    plain ``instruction`` of an unsafe image -> textual 0 (the harm is in the image).
    """
    safe = row.get("safe")
    if not isinstance(safe, bool):
        issues.append(RowIssue("safe", "missing_labels", f"`safe` must be true or false, got {safe!r:.40}"))
        safe = True
    path = str_field(row, "image", issues)
    media = Media("image", path) if path is not None else Media()
    base_id = row_id(row, ("id",), default_id, issues)
    meta = optional_strs(row, ("harmful_category", "harmful_subcategory"), issues)
    pairs = row.get("instr-resp")
    if not isinstance(pairs, list):
        issues.append(wrong_type("instr-resp", f"a list of {_VLGUARD_PAIR}", pairs))
        pairs = []
    records = []
    for i, pair in enumerate(pairs):
        parsed = _vlguard_pair(pair, f"instr-resp[{i}]", issues)
        if parsed is None:
            continue
        key, instruction, response = parsed
        records.append(
            SFTRecord(
                id=f"{base_id}-{i}",
                media=media,
                conversation=[Turn("user", instruction), Turn("assistant", response)],
                safety_labels=SafetyLabels(int(not safe), int(key == "unsafe_instruction")),
                category=meta.get("harmful_category"),
                sub_category=meta.get("harmful_subcategory"),
            )
        )
    return records


def from_video_safetybench(row: dict[str, Any], default_id: str, issues: Issues) -> EvalRecord:
    """Video-SafetyBench ``{video_path, query|question, category}`` -> an eval record.

    Its videos depict the harm, so visual = 1; a ``query_type`` of ``"benign"`` marks a safe query (split SafeQ),
    anything else a harmful one (split HH).
    """
    path_key = "video_path" if "video_path" in row else "video"
    path = str_field(row, path_key, issues)
    query = str_field(row, "query" if "query" in row else "question", issues)
    query_type = str_field(row, "query_type", issues, required=False) or "harmful"
    textual = 0 if query_type.lower() in ("benign", "safe") else 1
    meta = optional_strs(row, ("category", "language"), issues)
    return EvalRecord(
        id=row_id(row, ("id",), default_id, issues),
        split="HH" if textual else "SafeQ",
        query=query or "",
        media=Media("video", path) if path is not None else Media(),
        labels=SafetyLabels(1, textual),
        category=meta.get("category"),
        language=meta.get("language", "en"),
    )


# every key a canonical row of each kind may hold (record.to_dict(), plus what make-synthetic adds to eval rows)
_CANONICAL_KEYS = {
    "canonical-sft": {f.name for f in dataclasses.fields(SFTRecord)},
    "canonical-grpo": {f.name for f in dataclasses.fields(GRPORecord)},
    "canonical-eval": {f.name for f in dataclasses.fields(EvalRecord)} | {"reference", "reference_keyword"},
}


def _misspelt_keys(row: dict[str, Any], fmt: str, issues: Issues) -> None:
    """A key no canonical format has, very close to a key of this format that the row lacks ("catgory" without
    "category"), is a typo whose value would be lost; any other extra key ("uid", "category_id", "language_code")
    is the user's metadata and passes."""
    anywhere = set().union(*_CANONICAL_KEYS.values())
    missing = sorted(_CANONICAL_KEYS[fmt] - set(row))
    for key in row:
        if key not in anywhere and (close := difflib.get_close_matches(str(key), missing, n=1, cutoff=0.85)):
            msg = f"unknown key {key!r}: did you mean {close[0]!r}? (its value would be ignored)"
            issues.append(RowIssue(str(key), "misspelt_field", msg))


def parse_row(row: dict[str, Any], fmt: str, default_id: str, issues: Issues) -> list[Record]:
    """Parse one row of a file in format ``fmt``; VLGuard rows expand into several records.

    A declared ``label_convention`` (any format) is kept on the records, so legacy conversion can check it.
    """
    if fmt.startswith("canonical-"):
        _misspelt_keys(row, fmt, issues)
        records: list[Record] = [from_canonical(row, default_id, issues, fmt)]
    else:
        parsers: dict[str, Callable[..., Any]] = {
            "published-sft": from_published_sft,
            "published-grpo": from_published_grpo,
            "vlguard": from_vlguard,
            "video-safetybench": from_video_safetybench,
        }
        result = parsers[fmt](row, default_id, issues)
        records = result if isinstance(result, list) else [result]
    declared = label_convention(row, issues)
    if declared is not None:
        records = [dataclasses.replace(r, label_convention=declared) for r in records]
    return records
