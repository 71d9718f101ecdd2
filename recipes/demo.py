"""The built-in CPU demo: a tiny model through every stage of the method, each stage scored on held-out data.

Launch:
    python recipes/demo.py --out demo_out --seed 0

Steps: the synthetic benchmark (videosafety_r1.data.synthetic; the seed changes it) and a tiny random Qwen2.5-VL
(128 wide, 2 decoder layers; the seed changes its init) whose BPE tokenizer is trained on the training rows, then AT-SFT alarm init -> ATC -> CoT cold start (recipes/at_sft.py) and Safety-GRPO
(recipes/grpo.py) with recipes/configs/demo/*.yaml plus command-line overrides (paths, seed). The base model and
the ATC, CoT and GRPO checkpoints are evaluated on the held-out split (recipes/configs/demo/evaluate.yaml: clips
and sentence frames never seen in training); the heads are Platt-calibrated on the separate calibration split.
Prints one table of every stage side by side, writes DIR/summary.json and DIR/dsr_vs_frr.png (docs/demo.md).
"""

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs" / "demo"
STAGES = ("base", "atc", "cot", "grpo")
# BPE entries of the demo tokenizer, trained on the training rows: the longest CoT target is then about 50 tokens,
# which the generation budgets in configs/demo (max_new_tokens, max_completion_length) are sized for.
VOCAB_SIZE = 2048
# Every config key the demo sets, in one place (renamed upstream -> rename here only).
KEYS = {
    "model": "model_name_or_path",
    "train_file": "train_file",
    "data_root": "data_root",
    "output_dir": "output_dir",
    "seed": "seed",
    "reward_funcs": "reward_funcs",
    "eval_file": "eval_file",
    "prompt_format": "prompt_format",
    "on_existing_output": "on_existing_output",
}
# Why --stage-args may not set a key of KEYS: the demo derives it, and its tables and scoring read the result there.
OWNED_BY = {
    KEYS["model"]: "each stage starts from the previous stage's final checkpoint",
    KEYS["train_file"]: "the stage's file in DIR/data; change the data with --n, --safe-share, --text-share",
    KEYS["data_root"]: "DIR/data",
    KEYS["output_dir"]: "DIR/<stage>; choose DIR with --out",
    KEYS["seed"]: "use --seed",
    KEYS["reward_funcs"]: "use --rewards",
    KEYS["eval_file"]: "the held-out DIR/data/eval.jsonl",
    KEYS["prompt_format"]: "set per stage by the evaluation",
    KEYS["on_existing_output"]: "every stage this run trains is trained afresh",
}
# What --from-stage must find unchanged in DIR: these decide the data and the base model the earlier stages saw.
SETTINGS = ("seed", "n", "n_eval", "safe_share", "text_share", "width", "layers", "family")
FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl", "video_llama_3")
COLUMNS = [
    ("dsr_hh", "DSR-HH"), ("dsr_sh", "DSR-SH"), ("frr", "FRR"), ("text_dsr_hh", "tDSR-HH"), ("text_frr", "tFRR"),
    ("video_drop", "vdrop"), ("vid_type_acc", "vidT"), ("text_type_acc", "txtT"), ("format_rate", "fmt"),
    ("safeq_helpful", "help"), ("visual_head_auroc", "vAUC"), ("textual_head_auroc", "tAUC"),
    ("visual_head_ece", "vECE"), ("textual_head_ece", "tECE"), ("visual_head_ece_uncalibrated", "vECE0"),
    ("textual_head_ece_uncalibrated", "tECE0"),
]  # fmt: skip


def _overrides(**values: object) -> list[str]:
    out: list[str] = []
    for name, value in values.items():
        out += [f"--{KEYS[name]}", *(map(str, value) if isinstance(value, (list, tuple)) else [str(value)])]
    return out


def _recipe(script: str) -> object:
    import runpy

    return runpy.run_path(str(HERE / script), run_name="demo_step")["main"]


def training_text(files: list[Path]) -> tuple[str, ...]:
    """Every conversation turn of the given training JSONL files: the corpus the demo's tokenizer learns from
    (never the held-out eval or calibration rows)."""
    lines = []
    for file in files:
        for row in map(json.loads, file.read_text(encoding="utf-8").splitlines()):
            lines += [turn["content"] for turn in row.get("conversation", [])]
    return tuple(lines)


def han_words() -> tuple[str, ...]:
    """The Chinese words the synthetic data is built from (harm and safe phrases, topics, colour and motion words):
    the demo tokenizer keeps them whole and cuts other Chinese text into characters (``tiny_tokenizer``)."""
    from videosafety_r1.data.synthetic_text import (
        CATEGORIES,
        COLOUR_WORDS,
        HARM_WORDS,
        MOTION_WORDS,
        SAFE_WORDS,
        TOPICS,
    )

    words = [w for table in (HARM_WORDS, SAFE_WORDS) for c in CATEGORIES for w in table[c]["zh"]]
    words += [TOPICS[c]["zh"] for c in CATEGORIES] + [
        w["zh"] for w in (*COLOUR_WORDS.values(), *MOTION_WORDS.values())
    ]
    return tuple(sorted(set(words)))


def silence_unseen_tokens(model: object, tokenizer: object, corpus: tuple[str, ...]) -> int:
    """Zero the input-embedding rows of tokens that never occur in the training conversations (chat template
    included; special tokens kept) and return how many were zeroed.

    Why: a pretrained model's embeddings all carry meaning, a random one's are noise. Rows never seen in training
    get no gradient and keep that noise, and a quarter of the held-out queries' tokens (new words split into
    pieces) would inject it. A zero row is a neutral token instead (RMSNorm maps it to zero)."""
    import torch

    seen = set(tokenizer.all_special_ids)
    for line in corpus:
        chat = [{"role": "user", "content": line}, {"role": "assistant", "content": line}]
        seen.update(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"])
    weight = model.get_input_embeddings().weight
    unseen = torch.tensor(sorted(set(range(len(tokenizer))) - seen), dtype=torch.long)
    with torch.no_grad():
        weight[unseen] = 0.0
    return len(unseen)


def motion_sensitive_patches(model: object) -> int:
    """Make half the filters of the vision tower's spatio-temporal patch embedding (a ``Conv3d`` over
    ``temporal_patch_size`` frames) sum to zero over time, so they answer only to change between those frames, and
    return how many filters were changed (0 when the tower has no temporal kernel).

    Why: the demo's tower stands in for a pretrained one, and a pretrained video tower sees motion. A random one
    barely does: the demo model read "moves" vs "still" right on 0.47-0.68 of held-out clips (about chance) with the
    random patch embedding, and on 0.68-0.99 with this one (docs/demo.md). Static content (colour) still reaches the
    LLM through the other half. Only the demo's base model is changed; nothing in the library does this."""
    import torch

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] > 1]
    if not convs:
        return 0
    weight = convs[0].weight  # [out, in, T, h, w]
    half, frames = weight.shape[0] // 2, weight.shape[2]
    with torch.no_grad():  # keep the first frame's filter, the others share its negative: the sum over time is 0
        weight[:half, :, 1:] = -weight[:half, :, :1] / (frames - 1)
    return half


def save_demo_model(
    path: Path,
    family: str,
    width: int,
    layers: int,
    seed: int,
    vocab_size: int = 512,
    corpus: tuple[str, ...] = (),
    han_words: tuple[str, ...] | None = None,
) -> Path:
    """A tiny random base model ``width`` wide with ``layers`` decoder layers (16-dim heads), saved with its
    processor; the demo's model is wider than the test fixtures' 64 x 2. With a ``corpus``, its BPE tokenizer
    (``vocab_size`` entries) is trained on it, so the five languages are words, not bytes."""
    import torch
    from transformers import AutoModelForImageTextToText

    from videosafety_r1.testing import tiny_config, tiny_processor

    processor = tiny_processor(family, vocab_size=vocab_size, corpus=corpus or None, han_words=han_words)
    config = tiny_config(family, processor.tokenizer)
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = width, 2 * width, layers
    text.num_attention_heads, text.num_key_value_heads = width // 16, max(1, width // 32)
    if hasattr(text, "layer_types"):
        text.layer_types = text.layer_types[:1] * layers
    config.vision_config.out_hidden_size = width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
        if not motion_sensitive_patches(model):
            print(f"[demo] {family}: the vision tower has no temporal patch filters; motion_sensitive_patches skipped")
    model.generation_config.pad_token_id = text.pad_token_id
    model.generation_config.eos_token_id = text.eos_token_id
    if corpus:
        silence_unseen_tokens(model, processor.tokenizer, corpus)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def evaluate_stage(stage: str, checkpoint: Path, out: Path, data: dict, seed: int) -> dict:
    """Generate and judge on the held-out split; base and ATC get the bare question, CoT and GRPO the reasoning
    prompt they trained with. Returns the stage's row (head columns filled by :func:`score_heads`)."""
    from videosafety_r1.config import load_config
    from videosafety_r1.evaluation import EvalConfig, format_rate, run_evaluation, safeq_helpfulness, tag_accuracy
    from videosafety_r1.evaluation.report import read_samples

    fmt = "reasoning" if stage in ("cot", "grpo") else "query"
    overrides = _overrides(model=checkpoint, eval_file=data["eval"], data_root=data["videos"].parent, seed=seed)
    # the evaluation is regenerated every run (seconds): a stage --from-stage retrained must not meet its old samples
    overrides += _overrides(prompt_format=fmt, output_dir=out / "eval" / stage, on_existing_output="overwrite")
    results = run_evaluation(load_config(EvalConfig, CONFIGS / "evaluate.yaml", overrides))
    metrics, samples = results["metrics"], list(read_samples(out / "eval" / stage / "samples.jsonl"))
    keywords = {r["id"]: r.get("reference_keyword") for r in map(json.loads, data["eval"].read_text().splitlines())}
    video, text = metrics["splits"], metrics.get("text_only") or {}
    return {
        "dsr_hh": video["HH"]["dsr"],
        "dsr_sh": video["SH"]["dsr"],
        "frr": video["SafeQ"]["frr"],
        "text_dsr_hh": text.get("HH", {}).get("dsr"),
        "text_frr": text.get("SafeQ", {}).get("frr"),
        "video_drop": (metrics.get("video_drop") or {}).get("HH", {}).get("relative"),
        "vid_type_acc": tag_accuracy(samples, "vid_type"),
        "text_type_acc": tag_accuracy(samples, "text_type"),
        "format_rate": format_rate(samples),
        "safeq_helpful": safeq_helpfulness(samples, keywords),
    }


def score_heads(checkpoint: Path, data: dict) -> dict:
    """Head AUROC and ECE (10 bins) on the eval rows, before and after Platt scaling fitted on the calibration rows,
    and the ECE a perfectly calibrated head would show on as many rows (the estimator's floor); the fit is saved as
    alarm_calibration.json in the checkpoint and its export."""
    import numpy as np

    from videosafety_r1.alarm import apply_calibration, calibrate_alarm_heads, load_pretrained, save_calibration
    from videosafety_r1.alarm.calibration import harm_logits, record_inputs
    from videosafety_r1.data import load_dataset_checked
    from videosafety_r1.evaluation import auroc, calibrated_ece_baseline, expected_calibration_error

    model, processor = load_pretrained(checkpoint)
    model.eval()
    root, io = data["videos"].parent, {"fps": 4.0, "max_frames": 8}
    calibration_rows, _ = load_dataset_checked(data["calibration"], root, kind="eval")
    calibration = calibrate_alarm_heads(model, processor, calibration_rows, data_root=root, **io)
    for folder in (checkpoint, checkpoint.parent / "export" / "alarm"):  # the export keeps it beside the heads
        if folder.is_dir():
            save_calibration(folder, calibration)
    rows, _ = load_dataset_checked(data["eval"], root, kind="eval")
    logits = harm_logits(model, processor, *record_inputs(rows, root), **io)
    raw, calibrated = apply_calibration(logits, None), apply_calibration(logits, calibration)
    out = {"n_rows": len(rows)}
    for head in ("visual", "textual"):
        labels = np.array([getattr(r.labels, head) for r in rows])
        out[f"{head}_head_auroc"] = auroc(labels, raw[head].numpy())
        out[f"{head}_head_ece"] = expected_calibration_error(labels, calibrated[head].numpy(), n_bins=10)
        out[f"{head}_head_ece_uncalibrated"] = expected_calibration_error(labels, raw[head].numpy(), n_bins=10)
        out[f"{head}_head_ece_baseline"] = calibrated_ece_baseline(calibrated[head].numpy(), n_bins=10)
        out[f"{head}_head_accuracy"] = float(np.mean((calibrated[head].numpy() >= 0.5) == labels))
    return out


def _cell(value: object) -> str:
    return "   -" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def stage_table(stages: dict) -> str:
    """The stages side by side, one row each (columns: docs/demo.md)."""
    lines = ["stage  " + " ".join(f"{h:>7}" for _, h in COLUMNS)]
    lines += [f"{s:<6} " + " ".join(f"{_cell(row.get(k)):>7}" for k, _ in COLUMNS) for s, row in stages.items()]
    return "\n".join(lines)


def _clean(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default="demo_out", help="folder for data, checkpoints, metrics and plots (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="changes the data, the model init and training (default: %(default)s)"
    )
    parser.add_argument(
        "--n",
        type=int,
        default=600,
        help="synthetic training clips, plus --text-share text-only rows per clip (default: %(default)s)",
    )
    parser.add_argument(
        "--n-eval",
        type=int,
        default=100,
        help="held-out clips per eval split: HH, SH, SafeQ; calibration the same (default: %(default)s)",
    )
    parser.add_argument(
        "--safe-share",
        type=float,
        default=0.6,
        help="share of training rows with a helpful answer (default: %(default)s)",
    )
    parser.add_argument(
        "--text-share", type=float, default=0.75, help="text-only training rows per clip (default: %(default)s)"
    )
    parser.add_argument("--width", type=int, default=128, help="hidden size of the tiny model (default: %(default)s)")
    parser.add_argument(
        "--layers", type=int, default=2, help="decoder layers of the tiny model (default: %(default)s)"
    )
    parser.add_argument(
        "--family", default="qwen2_5_vl", choices=FAMILIES, help="tiny model family (default: %(default)s)"
    )
    parser.add_argument(
        "--rewards",
        nargs="+",
        default=None,
        help="GRPO reward_funcs (default: grpo.yaml's); registry names or package.module:function",
    )
    parser.add_argument(
        "--stage-args",
        nargs=2,
        action="append",
        default=[],
        metavar=("STAGE", "ARGS"),
        help='extra overrides for one stage, e.g. --stage-args cot "--num_train_epochs 20" or cot '
        "num_train_epochs=20 (repeatable)",
    )
    parser.add_argument(
        "--eval-stages", nargs="+", choices=STAGES, help="stages to evaluate (default: every stage up to --until)"
    )
    parser.add_argument(
        "--until", choices=("atc", "cot", "grpo"), default="grpo", help="last stage to train (default: %(default)s)"
    )
    parser.add_argument("--from-stage", choices=("atc", "cot", "grpo"), help="reuse earlier stages already in --out")
    args = parser.parse_args(lone_overrides_as_values(list(sys.argv[1:] if argv is None else argv)))
    check_args(parser, args)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from videosafety_r1.data import make_synthetic_dataset

    out, seed, start = Path(args.out), args.seed, time.time()
    data = make_synthetic_dataset(
        out / "data", n=args.n, seed=seed, n_eval=args.n_eval, safe_share=args.safe_share, text_share=args.text_share
    )
    if not args.from_stage:
        corpus = training_text([data["sft"], data["cot"]])
        save_demo_model(out / "base", args.family, args.width, args.layers, seed, VOCAB_SIZE, corpus, han_words())
        (out / "demo_settings.json").write_text(json.dumps(settings_of(args), indent=2) + "\n")
    print(
        f"[demo] seed {seed}: data in {out / 'data'} (held-out eval.jsonl, calibration.jsonl), base in {out / 'base'}"
    )
    for stale in forget_replaced_results(out, replaced_stages(args)):
        print(f"[demo] removed {stale}: it scored a checkpoint this run replaces")
    checkpoints = train_stages(args, out, data)
    stages = {
        stage: score_stage(stage, checkpoint, out, data, seed)
        for stage, checkpoint in checkpoints.items()
        if stage in args.eval_stages and checkpoint.is_dir()
    }
    if args.from_stage:
        stages = with_earlier_rows(out, args.from_stage, stages)
    summary = write_summary(out, seed, data, stages)
    print(stage_table(stages))
    print(f"[demo] finished in {time.time() - start:.0f} s; {out / 'summary.json'}, {out / 'dsr_vs_frr.png'}")
    return summary


def lone_overrides_as_values(argv: list[str]) -> list[str]:
    """``--stage-args cot --learning_rate=1e-3`` -> ``... cot learning_rate=1e-3``: argparse reads a lone word that
    starts with ``-`` as an option ("expected 2 arguments"), while the recipes' override parser takes ``key=value``
    for ``--key=value`` alike."""
    out = list(argv)
    for i, word in enumerate(out[:-2]):
        value = out[i + 2]
        if word == "--stage-args" and value.startswith("-") and " " not in value and "=" in value:
            out[i + 2] = value.lstrip("-")
    return out


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad values before any data is written (``parser.error``: usage, one error line, exit 2)."""
    from videosafety_r1.cli import MAX_TEXT_SHARE  # the make-synthetic CLI's bound, one number for both

    if not args.out.strip():  # an unset shell variable: the run would write data/, base/, ... into the current folder
        parser.error("--out is empty (an unset shell variable?); name the folder for the run")
    if not 0 <= args.seed < 2**32:  # the training seeds go to NumPy, which takes 0 .. 2**32 - 1
        parser.error(f"--seed must be in [0, 2**32 - 1], got {args.seed}")
    if args.n < 1 or args.n_eval < 1:
        parser.error(f"--n and --n-eval must be at least 1, got {args.n} and {args.n_eval}")
    if not 0.0 <= args.safe_share <= 1.0:
        parser.error(f"need 0 <= --safe-share <= 1, got {args.safe_share}")
    if not 0.0 <= args.text_share <= MAX_TEXT_SHARE:  # also refuses NaN and inf
        parser.error(f"--text-share must be a finite number <= {MAX_TEXT_SHARE:g} and >= 0, got {args.text_share}")
    if args.width < 32 or args.width % 32 or args.layers < 1:
        parser.error(
            f"--width must be a multiple of 32 (16-dim heads) and --layers >= 1, got {args.width}, {args.layers}"
        )
    if args.rewards:
        from videosafety_r1.rewards import reward_signature_errors

        for name in args.rewards:
            for problem in reward_signature_errors(name, {}):  # unknown name, or a signature the trainer cannot call
                parser.error(f"--rewards: {problem.removeprefix('reward_funcs: ')}")
    for stage, extra in args.stage_args:
        if stage not in ("alarm_init", "atc", "cot", "grpo"):
            parser.error(f"--stage-args: unknown stage {stage!r}; expected alarm_init, atc, cot or grpo")
        for key in demo_owned_keys(extra):
            parser.error(f"--stage-args {stage}: --{key} is set by the demo itself ({OWNED_BY[key]})")
    if args.from_stage and STAGES.index(args.from_stage) > STAGES.index(args.until):
        parser.error(f"--from-stage {args.from_stage} comes after --until {args.until}: nothing to train")
    trained = trained_stages(args)
    if args.rewards and "grpo" not in trained:
        parser.error(f"--rewards: GRPO is not trained in this run (--until {args.until})")
    last = STAGES.index(args.until)
    after = [s for s in args.eval_stages or () if STAGES.index(s) > last]
    if after:  # never trained here, and one left in DIR by an earlier run would not follow this run's stages
        parser.error(f"--eval-stages {' '.join(after)}: not trained in this run (--until {args.until})")
    args.eval_stages = args.eval_stages or list(STAGES[: last + 1])
    for stage in dict.fromkeys([s for s, _ in args.stage_args] + (["grpo"] if args.rewards else [])):
        if stage not in trained:
            parser.error(f"--stage-args {stage}: this run does not train {stage} (--from-stage / --until)")
        check_stage_overrides(parser, args, stage)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} exists and is not a folder")
    if args.from_stage:
        check_resume(parser, args, out)


def demo_owned_keys(extra: str) -> list[str]:
    """The config keys in one ``--stage-args`` string that the demo sets itself (``OWNED_BY``), in order, read by
    the recipes' own override parser (``--key value``, ``--key=value``, ``key=value``, hyphens as underscores). A
    string that does not parse is left to :func:`check_stage_overrides`, which names the problem."""
    from videosafety_r1.config import parse_overrides

    try:
        keys = [key for key, _ in parse_overrides(shlex.split(extra))]
    except ValueError:
        return []
    return [k for k in dict.fromkeys(keys) if k in OWNED_BY]


def trained_stages(args: argparse.Namespace) -> list[str]:
    """The recipe stages this run trains, in order (alarm init goes with ATC)."""
    todo = STAGES[STAGES.index(args.from_stage or "atc") : STAGES.index(args.until) + 1]
    return [s for s in ("alarm_init", "atc", "cot", "grpo") if s in todo or (s == "alarm_init" and "atc" in todo)]


def replaced_stages(args: argparse.Namespace) -> list[str]:
    """The table's stages whose checkpoints this run makes anew: the trained ones, and the base model too unless
    ``--from-stage`` reuses it."""
    return [s for s in STAGES if s in trained_stages(args) or (s == "base" and not args.from_stage)]


def forget_replaced_results(out: Path, replaced: list[str]) -> list[Path]:
    """Before anything trains: remove ``out/eval/<stage>`` and the ``summary.json`` row of every stage in
    ``replaced``. They describe checkpoints this run replaces; a run that stops midway must not leave them for the
    benchmark scripts or a later ``--from-stage`` to read as current. The rows of reused stages stay. Returns the
    eval folders removed."""
    stale = [out / "eval" / s for s in replaced if (out / "eval" / s).is_dir()]
    for folder in stale:
        shutil.rmtree(folder)
    summary = out / "summary.json"
    if summary.is_file():
        kept = json.loads(summary.read_text())
        kept["stages"] = {s: row for s, row in kept.get("stages", {}).items() if s not in replaced}
        summary.write_text(json.dumps(kept, indent=2) + "\n")
    return stale


def stage_overrides(args: argparse.Namespace, stage: str) -> list[str]:
    """What the demo adds to ``stage``'s config besides paths and seed: every ``--stage-args`` for it, in order and
    split as a shell would (quoted values stay whole), then ``--rewards`` for GRPO. Checked and trained alike."""
    argv = [a for name, extra in args.stage_args if name == stage for a in shlex.split(extra)]
    if stage == "grpo" and args.rewards:
        argv += _overrides(reward_funcs=args.rewards)
    return argv


def check_stage_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace, stage: str) -> None:
    """Build ``stage``'s config from its YAML and :func:`stage_overrides` before anything trains: an unknown key, a
    value that does not parse or settings that contradict each other fail now, not after the earlier stages."""
    from videosafety_r1.config import load_config

    if stage == "grpo":
        from videosafety_r1.grpo.config import GRPOConfig as config_class
    else:
        from videosafety_r1.sft_config import ATSFTConfig as config_class
    try:
        load_config(config_class, CONFIGS / f"{stage}.yaml", stage_overrides(args, stage))
    except ValueError as err:  # shlex (unclosed quote) and load_config (unknown key, bad value) both raise it
        parser.error(f"--stage-args {stage}: {' '.join(str(err).split())}")


def settings_of(args: argparse.Namespace) -> dict:
    """The options that decide the data and the base model (``SETTINGS``), as DIR/demo_settings.json records them."""
    return {key: getattr(args, key) for key in SETTINGS}


def check_resume(parser: argparse.ArgumentParser, args: argparse.Namespace, out: Path) -> None:
    """``--from-stage`` reuses DIR's earlier stages: refuse, before anything is written, when DIR was made with other
    data or model options (the data would be rewritten under stages trained on the old one) or lacks the checkpoint
    the first retrained stage starts from."""
    recorded = out / "demo_settings.json"
    if not recorded.is_file():
        parser.error(f"--from-stage {args.from_stage}: {recorded} not found (run the demo into {out} first)")
    before = json.loads(recorded.read_text())
    changed = {k: (before.get(k), v) for k, v in settings_of(args).items() if before.get(k) != v}
    if changed:
        listed = ", ".join(f"--{k.replace('_', '-')} {old} -> {new}" for k, (old, new) in changed.items())
        parser.error(f"--from-stage {args.from_stage}: {out} was made with other options ({listed})")
    start = {"atc": out / "base", "cot": out / "atc" / "final", "grpo": out / "cot" / "final"}[args.from_stage]
    if not start.is_dir():
        parser.error(f"--from-stage {args.from_stage}: {start} not found (train the stages before it first)")


def train_stages(args: argparse.Namespace, out: Path, data: dict) -> dict[str, Path]:
    """Run alarm init, ATC, CoT and GRPO in order (each from the previous ``final``); returns the checkpoints."""
    checkpoints, previous = {"base": out / "base"}, out / "base"
    trained = trained_stages(args)
    for stage in ("alarm_init", "atc", "cot", "grpo"):
        final = out / stage / "final"
        if stage in trained:
            t = time.time()
            argv = _overrides(model=previous, data_root=out / "data", output_dir=out / stage, seed=args.seed)
            # a stage this run trains starts afresh over an earlier run's output: its start checkpoint is new
            argv += _overrides(on_existing_output="overwrite")
            argv += stage_overrides(args, stage)
            if stage == "grpo":
                argv += _overrides(train_file=data["grpo"])
                _recipe("grpo.py")(["--config", str(CONFIGS / "grpo.yaml"), *argv])
            else:
                argv += _overrides(train_file=data["cot" if stage == "cot" else "sft"])
                _recipe("at_sft.py")(["--config", str(CONFIGS / f"{stage}.yaml"), *argv])
            print(f"[demo] {stage} trained in {time.time() - t:.0f} s -> {final}")
        previous = final
        if stage != "alarm_init":
            checkpoints[stage] = final
    return checkpoints


def score_stage(stage: str, checkpoint: Path, out: Path, data: dict, seed: int) -> dict:
    """The stage's row of the table: responses (:func:`evaluate_stage`) and heads (:func:`score_heads`)."""
    t = time.time()
    row = evaluate_stage(stage, checkpoint, out, data, seed)
    heads = score_heads(checkpoint, data) if stage != "base" else {}
    row.update({k: heads.get(k) for k, _ in COLUMNS if "head" in k})
    if heads:
        print(
            f"[demo] {stage} heads on held-out eval (calibrated, threshold 0.5): visual accuracy "
            f"{heads['visual_head_accuracy']:.3f}, textual accuracy {heads['textual_head_accuracy']:.3f}; ECE visual "
            f"{heads['visual_head_ece']:.3f}, textual {heads['textual_head_ece']:.3f} (a perfectly calibrated head "
            f"would show {heads['visual_head_ece_baseline']:.3f} and {heads['textual_head_ece_baseline']:.3f} "
            f"on these {heads['n_rows']} rows)"
        )
    print(f"[demo] {stage} evaluated in {time.time() - t:.0f} s")
    return {k: _clean(row[k]) for k, _ in COLUMNS}


def with_earlier_rows(out: Path, from_stage: str, stages: dict) -> dict:
    """``stages`` plus the rows DIR/summary.json already holds for stages before ``from_stage`` (their checkpoints
    were reused, so their rows still hold), in stage order: a partial rerun keeps the whole table. Rows of stages
    retrained now but not evaluated are dropped, since they describe the old checkpoints."""
    previous = out / "summary.json"
    if not previous.is_file():
        return stages
    reused = STAGES[: STAGES.index(from_stage)]
    rows = json.loads(previous.read_text()).get("stages", {})
    merged = {**{s: rows[s] for s in reused if s in rows and s not in stages}, **stages}
    return {s: merged[s] for s in STAGES if s in merged}


def write_summary(out: Path, seed: int, data: dict, stages: dict) -> dict:
    """DIR/summary.json (docs/demo.md has the contract) and DIR/dsr_vs_frr.png, one labelled point per stage."""
    from videosafety_r1.evaluation.plots import plot_dsr_vs_frr

    points = [{"label": s, "dsr": r["dsr_hh"], "frr": r["frr"]} for s, r in stages.items()]
    plot_dsr_vs_frr([p for p in points if None not in (p["dsr"], p["frr"])], out / "dsr_vs_frr.png", split="HH")
    eval_rows = [json.loads(line) for line in data["eval"].read_text().splitlines()]
    summary = {
        "seed": seed,
        "train_files": {k: data[k].relative_to(out).as_posix() for k in ("sft", "cot", "grpo")},
        "eval_file": data["eval"].relative_to(out).as_posix(),
        "calibration_file": data["calibration"].relative_to(out).as_posix(),
        "n_eval": {s: sum(r["split"] == s for r in eval_rows) for s in ("HH", "SH", "SafeQ")},
        "stages": stages,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
