"""Typed reads of JSON row fields: every wrong type or missing key becomes a located :class:`RowIssue`, never a
traceback (a row is user data, and a bad one must name its field)."""

from __future__ import annotations

import dataclasses
from typing import Any

from videosafety_r1.data.schema import CANONICAL_CONVENTION, LEGACY_CONVENTION, Media

_MEDIA_TYPES = ("video", "image", "none")


@dataclasses.dataclass(frozen=True)
class RowIssue:
    """One problem of one row: the offending field, a stable kind (docs/data.md lists them) and a message."""

    field: str
    kind: str
    message: str


Issues = list[RowIssue]


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages (``null``, ``number``, ``array`` ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def wrong_type(name: str, expected: str, value: Any) -> RowIssue:
    got = "null" if value is None else f"{json_type(value)} {value!r:.60}"
    return RowIssue(name, "invalid_field", f"`{name}` must be {expected}, got {got}")


def str_field(row: dict[str, Any], key: str, issues: Issues, required: bool = True, name: str = "") -> str | None:
    """A string field; absent/null is ``missing_field`` when required, any other type ``invalid_field``."""
    value = row.get(key)
    name = name or key
    if value is None:
        if required:
            issues.append(RowIssue(name, "missing_field", f"`{name}` is required"))
        return None
    if not isinstance(value, str):
        issues.append(wrong_type(name, "a string", value))
        return None
    return value


def optional_strs(row: dict[str, Any], keys: tuple[str, ...], issues: Issues) -> dict[str, str]:
    """Optional metadata strings (category, language ...): absent or null is fine, any other type is not."""
    out = {}
    for key in keys:
        value = str_field(row, key, issues, required=False)
        if value is not None:
            out[key] = value
    return out


def row_id(row: dict[str, Any], keys: tuple[str, ...], default: str, issues: Issues) -> str:
    """The row's id from the first key present: a non-empty string or an integer; ``null`` is an error (a silent
    ``"None"`` id would collide); absent means the file-and-line default."""
    for key in keys:
        if key not in row:
            continue
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            issues.append(wrong_type(key, "a non-empty string or an integer", value))
            return default
        return str(value)
    return default


def str_list(row: dict[str, Any], key: str, issues: Issues) -> list[str] | None:
    """An optional list of strings (e.g. ``options``); an empty list or null is None."""
    value = row.get(key)
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        issues.append(wrong_type(key, "a list of strings or null", value))
        return None
    return value


def canonical_media(row: dict[str, Any], issues: Issues) -> Media:
    """``media``: ``{"type": "video"|"image", "path": str}`` or an explicit ``null`` (text only). A row without the
    key is a missing field: a forgotten video must not silently turn a row into a text-only one."""
    if "media" not in row:
        issues.append(RowIssue("media", "missing_field", '`media` is required: {"type", "path"}, or null for text'))
        return Media()
    value = row["media"]
    if value is None:
        return Media()
    if not isinstance(value, dict):
        issues.append(wrong_type("media", 'an object {"type": "video"|"image", "path": ...} or null', value))
        return Media()
    media_type, path = value.get("type"), value.get("path")
    if media_type not in _MEDIA_TYPES:
        issues.append(
            RowIssue("media.type", "invalid_field", f"`media.type` must be video or image, got {media_type!r}")
        )
        return Media()
    if media_type == "none":
        return Media()
    if not isinstance(path, str):
        issues.append(wrong_type("media.path", "a string", path))
        return Media()
    return Media(media_type, path)


def label_convention(row: dict[str, Any], issues: Issues) -> str | None:
    """The declared ``label_convention`` (None when absent); an unknown value or type is an error."""
    value = row.get("label_convention")
    if value is None or value in (CANONICAL_CONVENTION, LEGACY_CONVENTION):
        return value
    issues.append(
        RowIssue(
            "label_convention",
            "invalid_field",
            f"`label_convention` must be {CANONICAL_CONVENTION!r} or {LEGACY_CONVENTION!r}, got {value!r:.60}",
        )
    )
    return None


def bad_unicode(value: Any, name: str = "") -> list[RowIssue]:
    """Strings that are not valid Unicode (unpaired surrogate escapes such as ``"\\ud800"``), located by field."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            char = f"\\u{ord(value[err.start]):04x}"
            return [
                RowIssue(name or "<row>", "invalid_unicode", f"unpaired surrogate {char} at character {err.start}")
            ]
        return []
    if isinstance(value, dict):
        issues = []
        for key, item in value.items():
            where = f"{name}.{key.encode('utf-8', 'backslashreplace').decode()}".lstrip(".")
            issues += bad_unicode(key, where + " (key)") + bad_unicode(item, where)
        return issues
    if isinstance(value, list):
        return [i for n, v in enumerate(value) for i in bad_unicode(v, f"{name}[{n}]")]
    return []
