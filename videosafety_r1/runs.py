"""Run bookkeeping shared by the recipes and ``run_evaluation``: which run an output folder holds, whether to resume
it, which checkpoint is intact, and finishing a training run.

Every output folder holds ``run_fingerprint.json``: the settings that make two runs the same run (training: the
config minus the fields listed in ``HARMLESS_FIELDS``; evaluation: model path and weights digest, generation and
video settings, ``prompt_format``, judge and data). A rerun into a folder whose fingerprint differs is refused,
naming the fields, before any checkpoint is resumed or any finished item skipped. ``on_existing_output`` chooses:

- ``resume`` (default): continue when the fingerprint matches, refuse when it differs;
- ``error``: refuse any folder that already holds a run;
- ``overwrite``: delete the previous run's outputs (checkpoints, ``final/``, ``export/``, samples, results) and start
  fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from videosafety_r1.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "FINGERPRINT_FILE",
    "ON_EXISTING_OUTPUT",
    "HARMLESS_FIELDS",
    "training_fingerprint",
    "eval_fingerprint",
    "prepare_output_dir",
    "checkpoint_problem",
    "last_valid_checkpoint",
    "resume_checkpoint",
    "weights_digest",
    "finish_run",
    "load_train_files",
]

FINGERPRINT_FILE = "run_fingerprint.json"
ON_EXISTING_OUTPUT = ("resume", "error", "overwrite")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

# Fields that change how a run is logged, saved or fed, never what it learns: a rerun may change them and resume.
HARMLESS_FIELDS = frozenset(
    {
        "output_dir", "on_existing_output", "resume_from_checkpoint", "logging_dir", "logging_steps",
        "logging_strategy", "logging_first_step", "logging_nan_inf_filter", "log_level", "log_level_replica",
        "log_on_each_node", "report_to", "run_name", "project", "trackio_space_id", "disable_tqdm",
        "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
        "dataloader_prefetch_factor", "save_steps", "save_strategy", "save_total_limit", "save_on_each_node",
        "save_only_model", "push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo",
        "hub_always_push", "hub_revision", "eval_steps", "eval_strategy", "eval_delay", "eval_on_start",
        "per_device_eval_batch_size", "eval_accumulation_steps", "eval_file", "eval_data_root", "export_plain",
        "ddp_timeout", "local_rank", "log_completions", "num_completions_to_print", "plots", "checkpoints",
        "judge_concurrency", "judge_cache", "judge_api_key_env", "batch_size", "judge_batch_size",
        "bootstrap_samples", "dsr_split",
    }
)  # fmt: skip
_TRAINING_OUTPUTS = ("final", "export", "completions.jsonl", "reward_curve.png", "trainer_state.json")
_EVAL_OUTPUTS = ("samples.jsonl", "results.json")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def training_fingerprint(args: Any) -> dict[str, Any]:
    """The training config (``TrainingArguments.to_dict()``) minus ``HARMLESS_FIELDS``, JSON-ready."""
    values = args.to_dict() if hasattr(args, "to_dict") else dict(vars(args))
    return _jsonable({k: v for k, v in values.items() if k not in HARMLESS_FIELDS and not k.startswith("_")})


def weights_digest(path: str | os.PathLike) -> str | None:
    """sha256 over each weight file's name, size, first and last MiB (full hashing of 15 GB would take minutes).

    A fine-tuned copy differs in both ends of every shard, so two checkpoints get different digests; None when
    ``path`` is not a local folder (a hub id: its name identifies it).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file())
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root)}:{size}".encode())
        with file.open("rb") as fh:
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, size - (1 << 20)))
            digest.update(fh.read(1 << 20))
    return digest.hexdigest()


_EVAL_KEYS = (
    "model_name_or_path", "eval_file", "data_root", "dtype", "attn_implementation",
    "video_fps", "video_max_frames", "prompt_format", "max_new_tokens", "temperature", "top_p",
    "seed", "judge", "judge_keywords", "judge_model", "judge_template", "judge_use_chat_template", "judge_base_url",
)  # fmt: skip


def eval_fingerprint(config: Any, model: Any = None) -> dict[str, Any]:
    """What makes two evaluations' samples interchangeable: model and weights, data, generation, video, judge.

    Settings that only add or drop items (``max_samples``, ``text_only_pass``, ``on_bad_row``) or change how work is
    batched and reported are left out: a rerun may change them and resume.
    """
    values = {key: getattr(config, key) for key in _EVAL_KEYS if hasattr(config, key)}
    if model is not None:  # an in-memory model: its parameters are the weights
        import torch

        with torch.no_grad():
            total = sum(float(p.detach().double().sum()) for p in model.parameters())
        values["weights"] = f"in-memory {type(model).__name__}, parameter sum {total:.12e}"
    else:
        values["weights"] = weights_digest(config.model_name_or_path)
    return _jsonable(values)


def _differences(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(new))
    return [
        f"{k}: {saved.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in keys if saved.get(k) != new.get(k)
    ]


def _holds_run(out: Path, outputs: Iterable[str]) -> bool:
    """Whether a previous run left work here. A fingerprint alone does not count: a start that failed before any
    checkpoint or sample (a typo in a path, bad data) must not block the corrected rerun."""
    if not out.is_dir():
        return False
    return any((out / name).exists() for name in outputs) or bool(_checkpoints(out)) or any(out.glob("samples.part*"))


def _holds_other_kind(out: Path, kind: str) -> bool:
    """Whether ``out`` holds the other kind's own outputs: an evaluation's samples for a training run, a training
    run's checkpoints or ``final/`` for an evaluation."""
    if not out.is_dir():
        return False
    if kind == "training":
        return any((out / name).exists() for name in _EVAL_OUTPUTS) or any(out.glob("samples.part*"))
    return any((out / name).exists() for name in ("final", "trainer_state.json")) or bool(_checkpoints(out))


def _checkpoints(out: Path) -> list[Path]:
    """``checkpoint-N`` folders, newest first."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _remove_outputs(out: Path, outputs: Iterable[str]) -> None:
    for path in [*_checkpoints(out), *(out / name for name in outputs), out / FINGERPRINT_FILE]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for part in out.glob("samples.part*.jsonl"):
        part.unlink()
    logger.warning("on_existing_output=overwrite: removed the previous run's outputs in %s", out)


def prepare_output_dir(
    output_dir: str | os.PathLike,
    fingerprint: Mapping[str, Any],
    policy: str = "resume",
    *,
    kind: str = "training",
    is_main_process: bool = True,
    explicit_resume: bool = False,
) -> bool:
    """Apply ``on_existing_output`` to ``output_dir`` and record ``fingerprint``; return True when a previous run
    may be continued (resume and the fingerprints match).

    Raises ``ValueError`` naming the differing fields (``resume``) or the folder (``error``). ``explicit_resume``
    (the user named a checkpoint) turns a mismatch into a warning. Only the main process deletes or writes; every
    process runs the checks, so all of them raise alike.
    """
    if policy not in ON_EXISTING_OUTPUT:
        raise ValueError(f"on_existing_output must be one of {ON_EXISTING_OUTPUT}, got {policy!r}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir {out} is a file, not a folder")
    outputs = _TRAINING_OUTPUTS if kind == "training" else _EVAL_OUTPUTS
    if _holds_other_kind(out, kind):  # one fingerprint file per folder: another kind of run would overwrite it
        other = "an evaluation" if kind == "training" else "a training"
        raise InputError(f"{out} holds {other} run; give this {kind} run its own output_dir")
    new = _jsonable(dict(fingerprint))
    resumable = False
    if _holds_run(out, outputs):
        saved_path = out / FINGERPRINT_FILE
        if policy == "overwrite":
            if is_main_process:
                _remove_outputs(out, outputs)
        elif policy == "error":
            raise InputError(
                f"{out} already holds a previous {kind} run and on_existing_output=error; choose a new output_dir"
            )
        elif not saved_path.exists():
            raise InputError(
                f"{out} holds a previous {kind} run without {FINGERPRINT_FILE}, so it cannot be told apart from "
                "another run: set on_existing_output=overwrite to start fresh or choose a new output_dir"
            )
        else:
            diff = _differences(json.loads(saved_path.read_text(encoding="utf-8")), new)
            if diff and not explicit_resume:
                raise InputError(
                    f"{out} holds a different {kind} run ({saved_path}); differing settings: "
                    + "; ".join(diff)
                    + ". Use a new output_dir, restore these settings to resume, or set on_existing_output=overwrite"
                )
            if diff:
                logger.warning("resuming a checkpoint named explicitly despite differing settings: %s", diff)
            resumable = True
    _barrier()  # every process has compared against the old fingerprint before the main one replaces it
    if is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / FINGERPRINT_FILE).write_text(json.dumps(new, indent=1, sort_keys=True), encoding="utf-8")
    _barrier()
    return resumable


def _barrier() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def checkpoint_problem(checkpoint: str | os.PathLike) -> str | None:
    """Why ``checkpoint`` cannot be resumed (naming the file), or None when every file in it reads back.

    Checks headers and sizes, not tensor values: safetensors headers against the file length, ``torch.save`` zip
    archives' central directories, JSON files' syntax, and that ``trainer_state.json`` exists.
    """
    root = Path(checkpoint)
    if not (root / "trainer_state.json").is_file():
        return f"{root / 'trainer_state.json'} is missing"
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            if file.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(file), framework="pt") as fh:
                    fh.keys()
            elif file.suffix in (".pt", ".bin", ".pth") and zipfile.is_zipfile(file) is False:
                return f"{file} is not a complete torch archive (truncated?)"
            elif file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
        except Exception as err:  # noqa: BLE001 (any read failure makes the checkpoint unusable)
            return f"{file} cannot be read: {err}"
    return None


def last_valid_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` whose files read back; damaged newer ones are skipped with a
    warning naming the file."""
    for checkpoint in _checkpoints(Path(output_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        logger.warning("skipping damaged checkpoint %s: %s", checkpoint, problem)
    return None


def resume_checkpoint(args: Any, is_main_process: bool = True) -> str | None:
    """Decide where a training run starts: apply ``args.on_existing_output`` with the config's fingerprint, then
    return the checkpoint to resume (``args.resume_from_checkpoint`` when set, else the newest intact one) or None.
    """
    explicit = getattr(args, "resume_from_checkpoint", None)
    if explicit:
        problem = checkpoint_problem(explicit) if Path(explicit).is_dir() else f"{explicit} is not a folder"
        if problem:
            raise InputError(f"resume_from_checkpoint: {problem}")
    resumable = prepare_output_dir(
        args.output_dir,
        training_fingerprint(args),
        getattr(args, "on_existing_output", "resume"),
        kind="training",
        is_main_process=is_main_process,
        explicit_resume=bool(explicit),
    )
    if explicit:
        return str(explicit)
    last = last_valid_checkpoint(args.output_dir) if resumable else None
    if last:
        logger.info("resuming from %s", last)
    elif resumable and (Path(args.output_dir) / "final").is_dir():
        logger.warning(
            "%s holds a finished run of these settings but no checkpoint to resume (save_strategy 'no'): training "
            "again from the start; its final/ (and export/, with export_plain) is replaced at the end",
            args.output_dir,
        )
    return last


def finish_run(
    trainer: Any,
    train_output: Any = None,
    *,
    export_plain: bool = True,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    close: bool = True,
) -> Path:
    """End a training run the same way everywhere; returns ``<output_dir>/final``.

    Saves the training form to ``final/`` (alarm format, what the next stage loads), writes a plain transformers
    ``export/`` built by reloading ``final/`` on the main process (whole weights even under ZeRO-3), logs and saves
    the train metrics of ``train_output`` and any extra ``metrics`` (``{"eval": {...}}``) as
    ``<split>_results.json``, saves ``trainer_state.json``, and, with ``close``, closes the process group so every
    rank leaves together (one leaving alone can abort at exit).
    """
    from videosafety_r1 import zero3
    from videosafety_r1.alarm import AlarmVideoLLM, export_plain_checkpoint, load_pretrained

    final = Path(trainer.args.output_dir) / "final"
    trainer.save_model(str(final))
    trainer.accelerator.wait_for_everyone()
    splits = dict(metrics or {})
    if train_output is not None:
        splits = {"train": dict(train_output.metrics), **splits}
    for split, values in splits.items():
        trainer.log_metrics(split, dict(values))
        trainer.save_metrics(split, dict(values))
    trainer.save_state()
    if export_plain and trainer.accelerator.is_main_process:
        with zero3.zero3_init_disabled():  # one rank reloads whole weights, even under DeepSpeed ZeRO-3
            reloaded, processor = load_pretrained(final)
        if isinstance(reloaded, AlarmVideoLLM):
            export_plain_checkpoint(reloaded, processor, final.parent / "export")
        else:  # a run without alarm tokens (GRPO from a plain model): final/ is plain already; merge any LoRA
            plain = reloaded.merge_and_unload() if hasattr(reloaded, "peft_config") else reloaded
            plain.save_pretrained(final.parent / "export")
            processor.save_pretrained(final.parent / "export")
    trainer.accelerator.wait_for_everyone()
    if close:
        zero3.close_process_group()
    return final


def load_train_files(
    files: str | os.PathLike | list[str],
    roots: str | os.PathLike | list[str] | None,
    kind: str = "sft",
    on_bad_row: str = "error",
    **check: Any,
) -> list[Any]:
    """Validated records of every file, concatenated in order; ``files``: one path or a list; ``roots``: None, one
    folder for all files, or one per file. With several files each record keeps its own root (``Media.root``),
    against which its path is checked. ``check`` goes to ``load_dataset_checked`` (``video_fps``,
    ``video_max_frames``: decode as training will; ``alarm_config``: the alarm literals to refuse in text)."""
    from videosafety_r1.data import load_dataset_checked
    from videosafety_r1.media import with_data_root

    files = [files] if isinstance(files, (str, os.PathLike)) else list(files)  # a path is one file, not its letters
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots or [])
    if len(roots) > 1 and len(roots) != len(files):
        raise InputError(f"data_root has {len(roots)} folders for {len(files)} train files: give one or one each")
    pairs = list(zip(files, roots if len(roots) > 1 else [roots[0] if roots else None] * len(files), strict=True))
    records: list[Any] = []
    for path, root in pairs:
        rows, report = load_dataset_checked(path, root, kind=kind, on_bad_row=on_bad_row, **check)
        summary = report.summary().splitlines()[0] if report.problems else "clean"
        logger.info("%s: %d rows (%s)", path, len(rows), summary)
        records += with_data_root(rows, root) if len(pairs) > 1 and root is not None else rows
    return records
