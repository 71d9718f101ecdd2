"""Load a config dataclass from a YAML file plus command-line overrides.

Values live in YAML (one flat mapping of field names); the command line may override any of them. Unknown or
duplicated keys are errors that name their source, so a typo never silently falls back to a default. Type
conversion goes through ``transformers.HfArgumentParser``, so a YAML ``1e-6`` (a string to YAML 1.1) and a CLI
``--beta 0.1`` become the same floats the parser would produce from a plain command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import re
from typing import Any, TypeVar, get_type_hints

import yaml
from transformers import HfArgumentParser

logger = logging.getLogger(__name__)

T = TypeVar("T")
_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ValueError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_overrides(overrides: list[str]) -> list[tuple[str, list[str]]]:
    """Split ``--key v [v ...]``, ``--key=v``, ``key=v`` and bare ``--flag`` tokens into ``(key, values)`` pairs.

    The token right after a bare ``--key`` is its value even if it contains ``=`` (so a bare boolean ``--flag`` goes
    last or before another ``--key``). Hyphens in keys become underscores (``--per-device-train-batch-size``), as
    the transformers parser allows.
    """
    pairs: list[tuple[str, list[str]]] = []
    expects_value = False  # right after a bare "--key", the next token is its value even if it contains "="
    for token in overrides:
        if token.startswith("--"):
            key, sep, value = token[2:].partition("=")
            if not key:
                raise ValueError(f"override {token!r} has no key")
            pairs.append((key.replace("-", "_"), [value] if sep else []))
            expects_value = not sep
            continue
        if expects_value:
            pairs[-1][1].append(token)
        elif (m := _KEY_VALUE.match(token)) is not None:
            pairs.append((m.group(1).replace("-", "_"), [m.group(2)]))
        elif pairs and token:
            pairs[-1][1].append(token)  # one more value of the previous --key (lists take several)
        else:
            raise ValueError(f"override {token!r} is neither '--key value' nor 'key=value'")
        expects_value = False
    return pairs


def _unknown_key_error(source: str, key: str, known: set[str]) -> ValueError:
    hint = difflib.get_close_matches(key, known, n=1)
    suffix = f"; did you mean {hint[0]!r}?" if hint else ""
    return ValueError(f"{source}: unknown key {key!r}{suffix}")


def _convert(parser: HfArgumentParser, source: str, key: str, values: list[str]) -> Any:
    """Convert strings for one field exactly as the transformers argument parser would."""
    try:
        namespace, extra = parser.parse_known_args([f"--{key}", *values])
    except (argparse.ArgumentError, SystemExit) as err:  # SystemExit: argparse's own error path
        raise ValueError(f"{source}: bad value {values!r} for {key!r}: {err}") from None
    if extra:
        raise ValueError(f"{source}: {key!r} takes one value, got {values!r}")
    return getattr(namespace, key)


def _nargs(parser: HfArgumentParser, key: str) -> Any:
    for action in parser._actions:
        if action.dest == key:
            return action.nargs
    return None


def load_config(cls: type[T], yaml_path: str | os.PathLike | None, overrides: list[str] | None = None) -> T:
    """Build ``cls`` from ``yaml_path`` (a flat mapping of field names) and CLI ``overrides`` (which win).

    Raises ``ValueError`` naming the file (or the command line) and the key for unknown keys, duplicated keys and
    values that do not convert.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    parser = HfArgumentParser(cls, exit_on_error=False)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    bool_fields = {name for name, hint in get_type_hints(cls).items() if hint is bool or hint == bool | None}
    values: dict[str, Any] = {}

    if yaml_path is not None:
        source = os.fspath(yaml_path)
        with open(source, encoding="utf-8") as fh:
            try:
                data = yaml.load(fh, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
            except (ValueError, yaml.YAMLError) as err:
                raise ValueError(f"{source}: {err}") from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
        for key, value in data.items():
            if key not in known:
                raise _unknown_key_error(source, str(key), known)
            if isinstance(value, str):
                value = _convert(parser, source, key, [value])
            elif isinstance(value, list) and value and _nargs(parser, key) in ("+", "*"):
                value = _convert(parser, source, key, [str(v) for v in value])
            values[key] = value

    for key, args in parse_overrides(list(overrides or [])):
        if key not in known and key.startswith("no_") and key[3:] in bool_fields and not args:
            key, args = key[3:], ["false"]
        if key not in known:
            raise _unknown_key_error("command-line override", key, known)
        values[key] = _convert(parser, "command-line override", key, args)

    logger.debug("config %s from %s with %d overrides", cls.__name__, yaml_path, len(overrides or []))
    (config,) = parser.parse_dict(values, allow_extra_keys=False)
    return config
