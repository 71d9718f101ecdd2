"""Reading dataset files row by row: JSONL, or one JSON array of objects, with line numbers and per-line errors.

Bytes that are not UTF-8 and JSON that does not parse are problems of their line, never exceptions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from videosafety_r1.data.fields import RowIssue


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key twice in one object is refused (``json`` would keep the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _duplicate(key: str) -> RowIssue:
    return RowIssue(key, "duplicate_key", f"key {key!r} appears twice in one JSON object (which value is meant?)")


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:160]


def _decode_line(raw: bytes, number: int) -> tuple[int, Any, RowIssue | None]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return number, None, RowIssue("<line>", "invalid_utf8", f"not UTF-8 at byte {err.start}: {err.reason}")
    try:
        return number, json.loads(line, object_pairs_hook=_unique_keys), None
    except _DuplicateKey as err:
        return number, None, _duplicate(err.key)
    except json.JSONDecodeError as err:
        return number, None, RowIssue("<json>", "malformed_json", f"invalid JSON at column {err.pos + 1}: {err.msg}")
    except RecursionError:
        return number, None, RowIssue("<json>", "malformed_json", "invalid JSON: nested too deeply")
    except ValueError as err:  # parses, but Python refuses the value (an integer of more than 4300 digits)
        return number, None, RowIssue("<json>", "malformed_json", f"unreadable JSON value: {_short(err)}")


_WHITESPACE = re.compile(r"[ \t\r\n]*")


def _array_rows(text: str) -> Iterator[tuple[int, Any, RowIssue | None]]:
    """Elements of a file holding one JSON array (VLGuard's ``train.json``), each with the line it starts on.

    The array's own grammar is checked too: a file cut short between elements (no closing ``]``), a trailing or
    doubled comma, or text after the ``]`` is a ``malformed_json`` issue, so a partial file never passes for a whole
    one."""
    decoder, pos = json.JSONDecoder(object_pairs_hook=_unique_keys), text.index("[") + 1
    line = 1 + text.count("\n", 0, pos)

    def skip(at: int) -> int:  # past JSON whitespace, counting lines (a match, not a slice: big arrays stay linear)
        nonlocal line
        end = _WHITESPACE.match(text, at).end()
        line += text.count("\n", at, end)
        return end

    def problem(what: str, at: int | None = None) -> tuple[int, None, RowIssue]:
        # "<file>": reading stops here, so the rest of the file is lost: no on_bad_row policy may skip past it
        msg = f"JSON array: {what}; nothing after it was read: fix it or convert to JSONL"
        return line if at is None else at, None, RowIssue("<file>", "malformed_json", msg)

    pos = skip(pos)
    if text.startswith("]", pos):  # an empty array
        pos += 1
    else:
        while True:
            if pos >= len(text):
                yield problem("no closing ] (is the file cut short?)")
                return
            if text[pos] in ",]":
                yield problem(f"{text[pos]!r} where an element should be")
                return
            start, issue = pos, None
            try:
                try:
                    value, end = decoder.raw_decode(text, start)
                except _DuplicateKey as err:  # a key twice: the row is refused; find its end without the hook
                    value, (_, end), issue = None, json.JSONDecoder().raw_decode(text, start), _duplicate(err.key)
            except RecursionError:
                yield problem("an element is nested too deeply")
                return
            except json.JSONDecodeError as err:  # the element is broken (a repeated key in it or not)
                yield problem(f"{err.msg} at line {err.lineno} column {err.colno}", err.lineno)
                return
            except ValueError as err:  # parses, but Python refuses the value (an integer of more than 4300 digits)
                yield problem(f"an unreadable value ({_short(err)})")
                return
            yield line, value, issue
            line += text.count("\n", start, end)
            pos = skip(end)
            if text.startswith("]", pos):
                pos += 1
                break
            if not text.startswith(",", pos):
                yield problem("no closing ] (is the file cut short?)" if pos >= len(text) else "expected ',' or ']'")
                return
            pos = skip(pos + 1)
    pos = skip(pos)
    if pos < len(text):
        yield problem("text after the closing ]")


def _object(number: int, row: Any, issue: RowIssue | None) -> tuple[int, dict[str, Any] | None, RowIssue | None]:
    if issue is None and not isinstance(row, dict):
        issue = RowIssue("<json>", "not_an_object", f"expected a JSON object, got {type(row).__name__}")
    return number, row if issue is None else None, issue


def _blank(lines: list[bytes], start: int) -> bool:
    """Whether every line from ``start`` on is blank (asked once per file, for its first row only)."""
    return all(not line.strip() for line in lines[start:])


def read_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any] | None, RowIssue | None]]:
    """Yield ``(line_number, row_or_None, issue_or_None)`` per row of a JSONL file, or of a file holding one JSON
    array of objects (VLGuard's ``train.json``; line = where the element starts). Bytes that are not UTF-8 and JSON
    that does not parse are issues of their line; blank lines are skipped."""
    with open(path, "rb") as f:
        raw_lines = f.read().removeprefix(b"\xef\xbb\xbf").split(b"\n")
    first = True
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        parsed = _decode_line(raw, number)
        # one JSON array: spread over lines (the first line alone does not parse) or on one line (json.dump)
        if first and raw.lstrip().startswith(b"[") and (parsed[2] is not None or _blank(raw_lines, number)):
            data = b"\n" * (number - 1) + b"\n".join(raw_lines[number - 1 :])
            for row in _array_rows(data.decode("utf-8", errors="surrogateescape")):
                yield _object(*row)
            return
        first = False
        yield _object(*parsed)


#: Kept for callers of the old name.
read_jsonl = read_rows
