"""``run_evaluation``: generate, judge and score a checkpoint on a benchmark, resumably.

Flow: validated eval rows (plus optional text-only copies of harmful rows) -> batches of one modality, left-padded
-> one forward for the alarm heads' probabilities and a greedy ``generate`` on the same inputs -> the ``<answer>``
span (never the ``<think>``) goes to the judge -> one ``samples.jsonl`` line per item, flushed at once. A killed run
restarts where it stopped (``read_done_ids``). When every item is done: metrics, ``results.json``, CSV tables and
plots. With N processes (``accelerate launch``) the pending items are sharded by rank, each rank appends to its own
``samples.part<rank>.jsonl``, and rank 0 merges the parts into ``samples.jsonl`` before scoring.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from videosafety_r1.runs import eval_fingerprint, prepare_output_dir

from ..constants import parse_dtype
from ..errors import InputError
from ..inputs import video_sampling
from .alarm_metrics import alarm_metrics_from_records
from .config import EvalConfig
from .judges import Judge, JudgeItem, KeywordJudge
from .metrics import SAFE_SPLITS, compute_metrics
from .parsing import response_for_judging
from .report import (
    SampleWriter,
    build_sample,
    data_hash,
    read_done_ids,
    read_judge_pending,
    read_latest_samples,
    read_samples,
    rejudge_samples,
    write_csv,
    write_results_json,
)

__all__ = [
    "EvalItem",
    "build_eval_items",
    "build_eval_inputs",
    "generate_batch",
    "make_judge",
    "distributed_state",
    "summary_rows",
    "run_evaluation",
    "TEXT_ONLY_SUFFIX",
]

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
TEXT_ONLY_SUFFIX = "::text"
_MODALITY_ORDER = {"video": 0, "image": 1, "none": 2}


@dataclass(frozen=True)
class EvalItem:
    """One prompt to answer: the canonical row (what ``build_sample`` reads) and its resolved media."""

    row: dict[str, Any]
    media_type: str  # "video" | "image" | "none"
    media_path: Path | None
    text_only_pass: bool = False
    data_root: Path | None = None  # the root the row's media path must stay under (None: media_path is trusted)

    @property
    def id(self) -> str:
        return str(self.row["id"])


def build_eval_items(records: Sequence[Any], data_root: str | Path, text_only_pass: bool = False) -> list[EvalItem]:
    """Items in file order, then (with ``text_only_pass``) a media-free copy of every harmful-query row with media,
    id ``<id>::text``, so DSR with and without the video is measured on the same queries."""
    root = Path(data_root)
    items: list[EvalItem] = []
    for record in records:
        row = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        media = row.get("media") or {}
        mtype = media.get("type", "none") or "none"
        items.append(EvalItem(row, mtype, root / media["path"] if mtype != "none" else None, data_root=root))
    if text_only_pass:
        for item in list(items):
            if item.media_type != "none" and item.row.get("split") not in SAFE_SPLITS:
                labels = {**(item.row.get("labels") or {}), "visual": 0}  # no video, nothing harmful to see
                row = {**item.row, "id": item.id + TEXT_ONLY_SUFFIX, "media": None, "labels": labels}
                items.append(EvalItem(row, "none", None, text_only_pass=True))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        why = f" (the text-only pass names its copies '<id>{TEXT_ONLY_SUFFIX}')" if text_only_pass else ""
        raise InputError(f"eval ids must be unique (resume relies on them){why}; duplicated: {dupes[:5]}")
    return items


def distributed_state() -> Any:
    """accelerate's process state; honours ``accelerate launch --cpu`` (ACCELERATE_USE_CPU), which PartialState only
    reads when told, so N CPU processes shard rows too. The first call fixes the state for the process."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _has_alarm(model: Any) -> bool:
    return hasattr(model, "alarm_token_ids")


def _has_heads(model: Any) -> bool:
    return _has_alarm(model) and getattr(model, "visual_head", None) is not None


def build_eval_inputs(
    processor: Any,
    items: Sequence[EvalItem],
    fps: float,
    max_frames: int,
    alarm_tokens: bool = True,
    prompt_format: str = "query",
    alarm_config: Any = None,
) -> Any:
    """Processor inputs for a batch through the input road (:mod:`videosafety_r1.inputs`), left-padded so the
    last position is every row's next token: the same prompt, frames and metadata as training and ``predict_harm``.
    Alarm tokens are placed when the model has them (``alarm_tokens``). Videos are decoded at ``fps`` (at most
    ``max_frames``) from under the item's data root, images read as RGB. ``prompt_format="reasoning"`` appends the
    format instructions a CoT/GRPO-trained model saw in training."""
    from videosafety_r1.data.schema import Media
    from videosafety_r1.inputs import build_prompt, eval_user_text, processor_inputs
    from videosafety_r1.media import LoadedMedia, MediaLoader

    prompts = []
    for item in items:
        text = eval_user_text(str(item.row.get("query") or ""), prompt_format)
        if item.media_type == "none":
            loaded = LoadedMedia()
        elif item.data_root is not None:  # a data row: its path must stay under its root
            path = (item.row.get("media") or {}).get("path")
            loaded = MediaLoader(item.data_root, fps, max_frames).load(Media(item.media_type, path), item.id)
        else:  # an item built by the caller around a path of its own
            path = Path(item.media_path)
            loaded = MediaLoader(path.parent, fps, max_frames).load(Media(item.media_type, path.name), item.id)
        prompts.append(build_prompt(processor, text, loaded, alarm=alarm_tokens, alarm_config=alarm_config, fps=fps))
    return processor_inputs(processor, prompts, padding_side="left", ids=[it.id for it in items])


@torch.no_grad()
def generate_batch(
    model: Any, processor: Any, inputs: Mapping[str, Any], config: EvalConfig
) -> tuple[list[str], dict[str, list[float]] | None]:
    """Completions (new tokens only, decoded) and, when the model has heads, their P(harmful) per row from one
    forward on the same prompt batch."""
    device = model.get_input_embeddings().weight.device
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
    probs = None
    if _has_heads(model):
        out = model(**batch, use_cache=False, logits_to_keep=1)
        probs = {
            "visual": torch.sigmoid(out.visual_alarm_logits.float()).cpu().tolist(),
            "textual": torch.sigmoid(out.textual_alarm_logits.float()).cpu().tolist(),
        }
    tokenizer = processor.tokenizer
    gen: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "do_sample": config.temperature > 0}
    if config.temperature > 0:
        gen.update(temperature=config.temperature, top_p=config.top_p)
    else:
        gen.update(temperature=None, top_p=None, top_k=None)  # greedy: silence sampling defaults of the checkpoint
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    output = model.generate(**batch, pad_token_id=pad, **gen)
    new_tokens = output[:, batch["input_ids"].shape[1] :]  # [B, T_new]; left padding keeps prompts aligned
    return processor.batch_decode(new_tokens, skip_special_tokens=True), probs


def make_judge(config: EvalConfig) -> Judge:
    """The judge named by the config (keyword, local transformers LM, or an OpenAI-compatible server)."""
    if config.judge == "keyword":
        return KeywordJudge(config.judge_keywords)
    if config.judge == "transformers":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .local_judge import TransformersJudge

        tokenizer = AutoTokenizer.from_pretrained(config.judge_model)
        lm = (
            AutoModelForCausalLM.from_pretrained(config.judge_model, dtype="auto")
            .to(distributed_state().device)
            .eval()
        )
        return TransformersJudge(
            lm,
            tokenizer,
            template=config.judge_template or "guard_safe_unsafe",
            batch_size=config.judge_batch_size,
            use_chat_template=config.judge_use_chat_template,
        )
    from .http_judge import OpenAIJudge

    return OpenAIJudge(
        model=str(config.judge_model),
        base_url=config.judge_base_url,
        api_key_env=config.judge_api_key_env,
        template=config.judge_template or "refusal_harm_json",
        concurrency=config.judge_concurrency,
        timeout_s=config.judge_timeout_s,
        max_retries=config.judge_max_retries,
        backoff_s=config.judge_backoff_s,
        cache_path=Path(config.output_dir) / "judge_cache.jsonl" if config.judge_cache else None,
    )


def summary_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (modality, split) of ``compute_metrics`` output: the console table and ``summary.csv``."""
    rows = []
    for modality, key in (("video", "splits"), ("text", "text_only")):
        for split, m in (metrics.get(key) or {}).items():
            rows.append(
                {
                    "modality": modality,
                    "split": split,
                    "n": m.get("n"),
                    "dsr": m.get("dsr"),
                    "asr": m.get("asr"),
                    "frr": m.get("frr"),
                    "refusal_rate": m.get("refusal_rate"),
                    "helpfulness": m.get("helpfulness"),
                    "judge_fail": m.get("n_judge_failures"),
                    "format_fail": m.get("n_format_failures"),
                }
            )
    return rows


def _load_model(config: EvalConfig) -> tuple[Any, Any]:
    from videosafety_r1.alarm import load_pretrained

    dtype = parse_dtype(config.dtype)
    return load_pretrained(config.model_name_or_path, dtype=dtype, attn_implementation=config.attn_implementation)


def _batches(items: Sequence[EvalItem], size: int) -> list[list[EvalItem]]:
    """Batches of one modality each (the processor gets one kind of media per call), in a stable order."""
    ordered = sorted(items, key=lambda it: _MODALITY_ORDER.get(it.media_type, 3))
    out: list[list[EvalItem]] = []
    for item in ordered:
        if out and len(out[-1]) < size and out[-1][0].media_type == item.media_type:
            out[-1].append(item)
        else:
            out.append([item])
    return out


def _part_files(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("samples.part*.jsonl"))


def _merge_parts(out_dir: Path) -> None:
    """Append rank parts to samples.jsonl (ids already there are skipped, so a merge interrupted midway is safe)."""
    target = out_dir / SAMPLES_FILE
    done = set(read_latest_samples(target))
    with SampleWriter(target) as writer:
        for part in _part_files(out_dir):
            for sample in read_samples(part):
                if str(sample.get("id")) not in done:
                    writer.write(sample)
                    done.add(str(sample.get("id")))
    for part in _part_files(out_dir):
        part.unlink()


def _checkpoint_results(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(results.json path, its content) of a ``checkpoints:`` entry: an earlier evaluation's output folder or its
    results.json. Raises ``InputError`` saying why the entry is neither."""
    path = Path(path)
    results_path = path / RESULTS_FILE if path.is_dir() else path
    if not path.exists():
        raise InputError(f"{str(path)!r} not found (give an earlier evaluation's output folder or its {RESULTS_FILE})")
    if not results_path.is_file():
        raise InputError(f"{str(path)!r} has no {RESULTS_FILE} (give an earlier evaluation's output folder)")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{str(results_path)!r} is not an evaluation's {RESULTS_FILE} (not JSON: {err})") from None
    if not isinstance(results, dict) or not isinstance(results.get("metrics"), dict):
        raise InputError(f"{str(results_path)!r} is not an evaluation's {RESULTS_FILE} (no 'metrics' object)")
    return results_path, results


def _checkpoint_point(path: str | Path, split: str) -> dict[str, Any] | None:
    """A DSR-vs-FRR point from an earlier evaluation's output dir or results.json (None if it lacks the numbers, or
    the entry, checked before generating, has changed since)."""
    try:
        results_path, results = _checkpoint_results(path)
    except InputError as err:
        logger.warning("checkpoint %s; left out of the DSR-vs-FRR plot", err)
        return None
    return _point(results, label=Path(results.get("model_id") or results_path.parent).name, split=split)


def _point(results: Mapping[str, Any], label: str, split: str) -> dict[str, Any] | None:
    splits = (results.get("metrics") or {}).get("splits") or {}
    dsr = (splits.get(split) or {}).get("dsr")
    frr = next((splits[s].get("frr") for s in SAFE_SPLITS if s in splits), None)
    if dsr is None or frr is None or (isinstance(dsr, float) and math.isnan(dsr)):
        return None
    return {"label": label, "dsr": dsr, "frr": frr}


def _write_report(config: EvalConfig, records: list[dict[str, Any]], judge: Judge, out_dir: Path) -> dict[str, Any]:
    """Metrics, results.json, CSVs and plots from the finished samples; returns what results.json holds."""
    metrics = compute_metrics(records, n_resamples=config.bootstrap_samples, seed=config.seed)
    head_records = [r for r in records if not r.get("text_only_pass")]
    metrics["alarm"] = alarm_metrics_from_records(head_records)
    path = write_results_json(
        out_dir / RESULTS_FILE,
        metrics,
        config=config.to_dict(),
        judge=judge.info(),
        model_id=config.model_name_or_path,
        data_sha256=data_hash(config.eval_file),
    )
    results = json.loads(path.read_text(encoding="utf-8"))
    write_csv(out_dir / "summary.csv", summary_rows(metrics))
    write_csv(out_dir / "by_category.csv", metrics["by_category"])
    write_csv(out_dir / "by_language.csv", metrics["by_language"])
    if metrics["alarm"]:
        write_csv(out_dir / "alarm.csv", [{"head": h, **m} for h, m in metrics["alarm"].items()])
    if config.plots:
        from .plots import plot_category_dsr, plot_dsr_vs_frr, plot_roc_curves

        plot_category_dsr(metrics["by_category"], out_dir / "category_dsr.png")
        heads = {}
        for head in ("visual", "textual"):
            rows = [
                r for r in head_records if r.get(f"{head}_prob") is not None and r.get(f"{head}_label") is not None
            ]
            if rows:
                heads[head] = ([int(r[f"{head}_label"]) for r in rows], [float(r[f"{head}_prob"]) for r in rows])
        if heads:
            plot_roc_curves(heads, out_dir / "roc_curves.png")
        if config.checkpoints:
            points = [p for c in config.checkpoints if (p := _checkpoint_point(c, config.dsr_split))]
            if (own := _point(results, Path(config.model_name_or_path).name, config.dsr_split)) is not None:
                points.append(own)
            if points:
                plot_dsr_vs_frr(points, out_dir / "dsr_vs_frr.png", split=config.dsr_split)
    return results


def run_evaluation(config: EvalConfig, model: Any = None, processor: Any = None) -> dict[str, Any]:
    """Evaluate ``config.model_name_or_path`` (or an already loaded ``model``/``processor``) and return the dict
    written to ``results.json``. Items already in ``samples.jsonl`` are not generated again."""
    from tqdm.auto import tqdm
    from transformers import set_seed

    from videosafety_r1.data import load_dataset_checked

    if (model is None) != (processor is None):
        raise ValueError("pass both model and processor, or neither (then model_name_or_path is loaded)")
    if not config.eval_file or (model is None and not config.model_name_or_path):
        raise ValueError("run_evaluation needs config.eval_file and a model (config.model_name_or_path or model=)")
    if config.judge == "transformers":  # a judge that cannot load fails here, not after the data check and output
        from videosafety_r1.config import check_model_path

        check_model_path(str(config.judge_model), "judge_model")
    bad = []
    for checkpoint in config.checkpoints or []:  # the plot reads them only after generating: check them now
        try:
            _checkpoint_results(checkpoint)
        except InputError as err:
            bad.append(str(err))
    if bad:
        raise InputError("checkpoints: " + "; ".join(bad))
    state = distributed_state()
    out_dir = Path(config.output_dir)
    data_root = config.data_root or str(Path(config.eval_file).parent)
    # unset fps / max_frames: as the checkpoint was trained (read before any model loads, so validation decodes alike)
    if model is not None:
        recorded = getattr(model, "video_sampling", None)
    else:
        from videosafety_r1.alarm import read_video_sampling

        recorded = read_video_sampling(config.model_name_or_path)
    fps, max_frames = video_sampling(recorded, config.video_fps, config.video_max_frames)
    records, _ = load_dataset_checked(
        config.eval_file,
        data_root,
        kind="eval",
        on_bad_row=config.on_bad_row,
        video_fps=fps,  # decode as generation will
        video_max_frames=max_frames,
    )
    if config.max_samples is not None:
        records = records[: config.max_samples]
    try:
        items = build_eval_items(records, data_root, config.text_only_pass)
    except InputError as err:
        raise InputError(f"{config.eval_file}: {err}") from None
    # the data is checked before the output folder is touched; a folder holding another model's / settings' samples
    # is refused before any finished id is skipped
    policy, fingerprint = config.on_existing_output, eval_fingerprint(config, model)
    prepare_output_dir(out_dir, fingerprint, policy, kind="evaluation", is_main_process=state.is_main_process)
    samples_path = out_dir / SAMPLES_FILE
    done = read_done_ids(samples_path)
    judge_pending: dict[str, dict[str, Any]] = {}  # generated, but the judge call failed: judge again only
    for part in [*_part_files(out_dir), samples_path]:
        done |= read_done_ids(part)
        judge_pending.update(read_judge_pending(part))
    judge_pending = {i: s for i, s in judge_pending.items() if i not in done}
    state.wait_for_everyone()  # every rank has read the same done set before any rank appends
    pending = [it for it in items if it.id not in done and it.id not in judge_pending]
    shard = pending[state.process_index :: state.num_processes]
    logger.info(
        "%d items (%d done, %d to judge again, %d pending; %d on this rank of %d)",
        len(items),
        len(items) - len(pending) - len(judge_pending),
        len(judge_pending),
        len(pending),
        len(shard),
        state.num_processes,
    )
    judge = make_judge(config)
    if shard:
        set_seed(config.seed + state.process_index)
        if model is None:
            model, processor = _load_model(config)
            model.to(state.device)
        model.eval()
        alarm = _has_alarm(model)
        if not _has_heads(model):
            logger.info("model has no alarm heads: no head probabilities or head metrics")
        target = samples_path if state.num_processes == 1 else out_dir / f"samples.part{state.process_index}.jsonl"
        n_format_failures, start = 0, time.perf_counter()
        with SampleWriter(target) as writer:
            for batch in tqdm(_batches(shard, config.batch_size), desc="evaluate", disable=not state.is_main_process):
                inputs = build_eval_inputs(
                    processor,
                    batch,
                    fps,
                    max_frames,
                    alarm,
                    prompt_format=config.prompt_format,
                    alarm_config=getattr(model, "alarm_config", None),
                )
                completions, probs = generate_batch(model, processor, inputs, config)
                responses = [response_for_judging(c) for c in completions]
                n_format_failures += sum(not has_answer for _, has_answer in responses)
                verdicts = judge.judge(
                    [
                        JudgeItem(str(it.row.get("query") or ""), text or "", it.id)
                        for it, (text, _) in zip(batch, responses)
                    ]
                )
                for i, (item, completion, verdict) in enumerate(zip(batch, completions, verdicts, strict=True)):
                    extra: dict[str, Any] = {"text_only_pass": item.text_only_pass}
                    writer.write(
                        build_sample(
                            item.row,
                            completion,
                            verdict,
                            visual_prob=probs["visual"][i] if probs else None,
                            textual_prob=probs["textual"][i] if probs else None,
                            **extra,
                        )
                    )
        logger.info(
            "generated %d items in %.1fs (%d without an <answer> span)",
            len(shard),
            time.perf_counter() - start,
            n_format_failures,
        )
    state.wait_for_everyone()
    results: dict[str, Any] = {}
    if state.is_main_process:
        if state.num_processes > 1 or _part_files(out_dir):
            _merge_parts(out_dir)
        wanted = {it.id for it in items}
        retry = [sample for i, sample in judge_pending.items() if i in wanted]
        if retry:
            with SampleWriter(samples_path) as writer:
                rejudge_samples(retry, judge, writer)
        latest = read_latest_samples(samples_path)
        records_by_id = {i: sample for i, sample in latest.items() if i in wanted}
        stale = len(set(latest) - wanted)
        if stale:
            logger.warning("%d samples in %s are not in the eval set; ignored", stale, samples_path)
        missing = wanted - set(records_by_id)
        if missing:
            raise RuntimeError(f"{len(missing)} items have no sample after generation, e.g. {sorted(missing)[:3]}")
        ordered = [records_by_id[it.id] for it in items]
        results = _write_report(config, ordered, judge, out_dir)
        logger.info("wrote %s", out_dir / RESULTS_FILE)
    state.wait_for_everyone()
    if not state.is_main_process:
        results = json.loads((out_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    return results
