"""run_evaluation end to end on a tiny alarm checkpoint: outputs, resume, plain models, the recipe and its config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videosafety_r1.config import load_config
from videosafety_r1.evaluation import EvalConfig, read_samples, run_evaluation
from videosafety_r1.evaluation import run as run_mod

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "evaluate.py"
DEMO_YAML = REPO / "recipes" / "configs" / "demo" / "evaluate.yaml"
N_EVAL, N_HARMFUL = 7, 4  # make_synthetic_dataset(n=8): HH, SH, SafeQ twice each, one text-only SafeQ


@pytest.fixture(scope="module")
def alarm_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    from videosafety_r1.alarm import add_alarm_tokens, load_pretrained

    model, processor = load_pretrained(tiny_checkpoint)
    model = add_alarm_tokens(model, processor)
    out = tmp_path_factory.mktemp("alarm_ckpt")
    model.save_pretrained(out, processor=processor)
    return out


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    from videosafety_r1.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("eval_data")
    make_synthetic_dataset(root, n=8, seed=0)
    return root


def _config(model: Path, data: Path, out: Path, eval_file: str = "eval.jsonl", **kw) -> EvalConfig:
    defaults = dict(max_new_tokens=4, batch_size=4, bootstrap_samples=50, video_fps=2.0, video_max_frames=8)
    defaults.update(kw)
    return EvalConfig(model_name_or_path=str(model), eval_file=str(data / eval_file), output_dir=str(out), **defaults)


def _count_rows(monkeypatch) -> list[str]:
    """Patch build_eval_inputs to record every generated item id (the resume test counts them)."""
    seen: list[str] = []
    real_inputs = run_mod.build_eval_inputs

    def inputs(processor, items, *a, **k):
        seen.extend(it.id for it in items)
        return real_inputs(processor, items, *a, **k)

    monkeypatch.setattr(run_mod, "build_eval_inputs", inputs)
    return seen


def test_run_writes_results_samples_and_plots(alarm_checkpoint, eval_data, tmp_path):
    out = tmp_path / "out"
    results = run_evaluation(_config(alarm_checkpoint, eval_data, out, text_only_pass=True))

    on_disk = json.loads((out / "results.json").read_text())
    assert results == on_disk
    m = results["metrics"]
    for split in ("HH", "SH"):
        assert {"dsr", "asr", "dsr_ci"} <= set(m["splits"][split])
        assert m["splits"][split]["asr"] == pytest.approx(1 - m["splits"][split]["dsr"])
    assert "frr" in m["splits"]["SafeQ"]
    # text-only copies of HH/SH rows, plus the file's own text-only SafeQ rows
    assert set(m["text_only"]) == {"HH", "SH", "SafeQ"} and set(m["video_drop"]) <= {"HH", "SH"}
    assert set(m["alarm"]) == {"visual", "textual"} and "auroc" in m["alarm"]["visual"]
    assert m["n_format_failures"] == N_EVAL + N_HARMFUL  # a random tiny model never writes <answer>
    assert results["judge"]["name"] == "keywords-default" and len(results["judge"]["prompt_hash"]) == 64
    assert results["model_id"] == str(alarm_checkpoint) and len(results["data_hash"]) == 64
    assert results["config"]["text_only_pass"] is True

    samples = read_samples(out / "samples.jsonl")
    assert len(samples) == N_EVAL + N_HARMFUL == len({s["id"] for s in samples})
    text_pass = [s for s in samples if s["text_only_pass"]]
    assert len(text_pass) == N_HARMFUL and all(
        s["modality"] == "text" and s["id"].endswith("::text") for s in text_pass
    )
    assert all(0.0 <= s["visual_prob"] <= 1.0 and 0.0 <= s["textual_prob"] <= 1.0 for s in samples)
    for name in (
        "summary.csv",
        "by_category.csv",
        "by_language.csv",
        "alarm.csv",
        "category_dsr.png",
        "roc_curves.png",
    ):
        assert (out / name).stat().st_size > 0, name


def test_resume_generates_only_missing_items(alarm_checkpoint, eval_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    config = _config(alarm_checkpoint, eval_data, out, text_only_pass=True)
    seen = _count_rows(monkeypatch)
    first = run_evaluation(config)
    assert len(seen) == N_EVAL + N_HARMFUL

    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    k = 3
    kept_ids = {json.loads(line)["id"] for line in lines[:k]}
    (out / "samples.jsonl").write_text("".join(lines[:k]) + lines[k][:20])  # killed mid-write: a torn line
    (out / "results.json").unlink()
    seen.clear()
    second = run_evaluation(config)

    assert len(seen) == N_EVAL + N_HARMFUL - k and not kept_ids & set(seen)
    samples = read_samples(out / "samples.jsonl")
    assert len(samples) == N_EVAL + N_HARMFUL == len({s["id"] for s in samples})
    assert (out / "results.json").exists()
    assert second["metrics"]["n"] == first["metrics"]["n"]

    seen.clear()
    run_evaluation(config)  # everything done: nothing is generated, the report is rewritten
    assert seen == []


def test_plain_model_without_heads_on_image_and_text_rows(tiny_checkpoint, eval_data, tmp_path):
    import shutil

    from PIL import Image

    rows = [json.loads(line) for line in (eval_data / "eval.jsonl").read_text().splitlines()]
    shutil.copytree(eval_data / "videos", tmp_path / "videos")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(tmp_path / "im.png")
    sh = next(r for r in rows if r["split"] == "SH")
    extra = [
        {**rows[0], "id": "img-1", "media": {"type": "image", "path": "im.png"}},
        {**sh, "id": "txt-1", "media": None},
    ]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2] + extra))
    out = tmp_path / "out"
    results = run_evaluation(_config(tiny_checkpoint, tmp_path, out, eval_file="mixed.jsonl"))
    samples = read_samples(out / "samples.jsonl")
    assert sorted(s["modality"] for s in samples) == ["image", "text", "video", "video"]
    assert all(s["visual_prob"] is None and s["textual_prob"] is None for s in samples)
    assert results["metrics"]["alarm"] == {}
    assert "text_only" in results["metrics"]
    assert not (out / "roc_curves.png").exists() and (out / "category_dsr.png").exists()


def test_judge_sees_only_the_answer_span(alarm_checkpoint, eval_data, tmp_path, monkeypatch):
    """Reasoning that sounds like a refusal must not count: only <answer> is judged; missing spans are counted."""
    completions = {
        "HH": "<think>I cannot help with harm.</think><answer>Sure, step one is</answer>"
        "<vidType>1</vidType><textType>1</textType>",
        "SH": "<think>Fine.</think><answer>I can't help with that.</answer><vidType>0</vidType><textType>1</textType>",
        "SafeQ": "<think>I cannot refuse this.</think> no answer tag here",
    }

    def fake_generate(model, processor, inputs, config):
        n = inputs["input_ids"].shape[0]
        return [completions[split] for split in fake_generate.splits[:n]], None

    real_inputs = run_mod.build_eval_inputs

    def inputs(processor, items, *a, **k):
        fake_generate.splits = [it.row["split"] for it in items]
        return real_inputs(processor, items, *a, **k)

    monkeypatch.setattr(run_mod, "build_eval_inputs", inputs)
    monkeypatch.setattr(run_mod, "generate_batch", fake_generate)
    previous = tmp_path / "previous"
    (previous).mkdir()
    (previous / "results.json").write_text(
        json.dumps({"model_id": "base", "metrics": {"splits": {"HH": {"dsr": 0.2}, "SafeQ": {"frr": 0.1}}}})
    )
    out = tmp_path / "out"
    results = run_evaluation(_config(alarm_checkpoint, eval_data, out, checkpoints=[str(previous)]))
    m = results["metrics"]["splits"]
    assert m["HH"]["dsr"] == 0.0 and m["SH"]["dsr"] == 1.0 and m["SafeQ"]["frr"] == 0.0
    assert results["metrics"]["n_format_failures"] == 3  # the two video SafeQ rows and the text-only one
    samples = {s["split"]: s for s in read_samples(out / "samples.jsonl")}
    assert samples["HH"]["vid_type"] == 1 and samples["SH"]["format_ok"] and not samples["SafeQ"]["format_ok"]
    assert (out / "dsr_vs_frr.png").exists()


def test_config_loads_demo_yaml_and_validates(tmp_path):
    config = load_config(EvalConfig, DEMO_YAML, ["--model_name_or_path", "ckpt", "--checkpoints", "a", "b"])
    assert config.model_name_or_path == "ckpt" and config.checkpoints == ["a", "b"] and config.temperature == 0.0
    assert DEMO_YAML.read_text().startswith("#")
    for bad in (
        ["--judge", "gpt"],
        ["--judge", "http"],
        ["--temperature", "-1"],
        ["--batch_size", "0"],
        ["--temperature", "nan"],
        ["--video_fps", "inf"],
        ["--temperature", "inf"],  # uniform sampling, recorded as null in results.json
        ["--judge_timeout_s", "nan"],
        ["--judge_backoff_s", "inf"],
    ):
        with pytest.raises(ValueError):
            load_config(EvalConfig, DEMO_YAML, bad)
    with pytest.raises(ValueError, match="renamed to 'video_fps'"):
        load_config(EvalConfig, DEMO_YAML, ["--fps", "2"])
    with pytest.raises(ValueError, match="unknown key"):
        load_config(EvalConfig, DEMO_YAML, ["--judge_modle", "x"])


def _recipe_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def test_recipe_command_runs(alarm_checkpoint, eval_data, tmp_path):
    import ast

    doc = ast.get_docstring(ast.parse(RECIPE.read_text()))
    assert "accelerate launch recipes/evaluate.py --config recipes/configs/demo/evaluate.yaml" in doc
    assert len(RECIPE.read_text().splitlines()) < 100
    out = tmp_path / "out"
    overrides = ["--model_name_or_path", str(alarm_checkpoint), "--eval_file", str(eval_data / "eval.jsonl")]
    overrides += ["--data_root", str(eval_data), "--output_dir", str(out), "--max_new_tokens", "4"]
    proc = subprocess.run(
        [sys.executable, str(RECIPE), "--config", str(DEMO_YAML), *overrides],
        cwd=REPO,
        env=_recipe_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dsr" in proc.stdout and "SafeQ" in proc.stdout
    assert json.loads((out / "results.json").read_text())["metrics"]["splits"]["HH"]["n"] == 2


@pytest.mark.slow
def test_two_processes_shard_and_merge(alarm_checkpoint, eval_data, tmp_path):
    """accelerate launch on 2 CPU processes: each rank generates its share, rank 0 merges and scores every item once."""
    out = tmp_path / "out"
    overrides = ["--model_name_or_path", str(alarm_checkpoint), "--eval_file", str(eval_data / "eval.jsonl")]
    overrides += ["--data_root", str(eval_data), "--output_dir", str(out), "--max_new_tokens", "4"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/cpu_2proc.yaml"]
    proc = subprocess.run(
        [*launch, str(RECIPE), "--config", str(DEMO_YAML), *overrides],
        cwd=REPO,
        env={**_recipe_env(), "ACCELERATE_USE_CPU": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on this rank of 2" in proc.stderr
    samples = read_samples(out / "samples.jsonl")
    assert len(samples) == N_EVAL + N_HARMFUL == len({s["id"] for s in samples})
    assert not list(out.glob("samples.part*.jsonl"))


@pytest.mark.parametrize("prompt_format", ["query", "reasoning"])
def test_prompt_format_matches_the_grpo_prompt(alarm_checkpoint, eval_data, tmp_path, prompt_format, monkeypatch):
    """`reasoning` prompts a CoT/GRPO-trained model exactly as GRPO did (same user text); `query` sends the bare
    benchmark question."""
    from videosafety_r1.alarm import load_pretrained
    from videosafety_r1.data.collate import GRPOPromptCollator, MediaLoader
    from videosafety_r1.data.schema import SAFETY_PROBLEM_TYPE as SAFETY
    from videosafety_r1.data.schema import GRPORecord, Media

    prompts = []
    real = run_mod.build_eval_inputs

    def spy(processor, items, *args, **kwargs):
        inputs = real(processor, items, *args, **kwargs)
        prompts.extend(processor.tokenizer.batch_decode(inputs["input_ids"], skip_special_tokens=False))
        return inputs

    monkeypatch.setattr(run_mod, "build_eval_inputs", spy)
    run_evaluation(_config(alarm_checkpoint, eval_data, tmp_path / "out", prompt_format=prompt_format))
    _, processor = load_pretrained(alarm_checkpoint)
    collator = GRPOPromptCollator(processor, MediaLoader(eval_data, 2.0, 8))
    eval_rows = [json.loads(line) for line in (eval_data / "eval.jsonl").open()]  # held-out: not in grpo.jsonl
    grpo_prompts = {
        collator.prompt(GRPORecord(r["id"], Media(), r["query"], SAFETY, "<answer>x</answer>"), r["media"] and "video")
        for r in eval_rows
    }
    assert len(prompts) == N_EVAL and grpo_prompts
    for prompt in prompts:
        text = prompt.replace(processor.tokenizer.pad_token, "")
        if prompt_format == "reasoning":
            assert "<vidType>" in text
            assert any(_same_prompt(text, g) for g in grpo_prompts)
        else:
            assert "<vidType>" not in text


def _same_prompt(evaluated: str, grpo: str) -> bool:
    # the processor expands the single video placeholder into one token per visual token; compare the text around it
    return evaluated.split("<|vision_end|>")[-1] == grpo.split("<|vision_end|>")[-1]


def test_prompt_format_is_validated():
    with pytest.raises(ValueError, match="prompt_format"):
        EvalConfig(model_name_or_path="m", eval_file="x", prompt_format="cot")


def test_unset_video_sampling_follows_the_checkpoint(tiny_checkpoint, eval_data, tmp_path, monkeypatch):
    """EvalConfig without fps/max_frames decodes as the checkpoint was trained (alarm_config.json), not at 1 fps."""
    from videosafety_r1.alarm import add_alarm_tokens, load_pretrained

    model, processor = load_pretrained(tiny_checkpoint)
    model = add_alarm_tokens(model, processor)
    model.save_pretrained(
        tmp_path / "ckpt", processor=processor, video_sampling={"video_fps": 3.0, "video_max_frames": 5}
    )
    seen = []
    real = run_mod.build_eval_inputs

    def spy(processor, items, fps, max_frames, *args, **kwargs):
        seen.append((fps, max_frames))
        return real(processor, items, fps, max_frames, *args, **kwargs)

    monkeypatch.setattr(run_mod, "build_eval_inputs", spy)
    run_evaluation(_config(tmp_path / "ckpt", eval_data, tmp_path / "out", video_fps=None, video_max_frames=None))
    assert seen and set(seen) == {(3.0, 5)}
    seen.clear()
    run_evaluation(_config(tmp_path / "ckpt", eval_data, tmp_path / "out2", video_fps=2.0, video_max_frames=None))
    assert set(seen) == {(2.0, 5)}  # the caller's value wins where given


def test_failed_judge_items_are_judged_again_not_regenerated(alarm_checkpoint, eval_data, tmp_path, monkeypatch):
    from videosafety_r1.evaluation import KeywordJudge, Verdict

    class FlakyJudge(KeywordJudge):
        """Fails every item whose id ends in an even digit, as a server that kept answering 429 would."""

        def judge(self, items):
            real = super().judge(items)
            return [Verdict(error="HTTP 429") if it.id[-1] in "02468" else v for it, v in zip(items, real)]

    out = tmp_path / "out"
    config = _config(alarm_checkpoint, eval_data, out)
    seen = _count_rows(monkeypatch)
    monkeypatch.setattr(run_mod, "make_judge", lambda config: FlakyJudge())
    first = run_evaluation(config)
    failed = {s["id"] for s in read_samples(out / "samples.jsonl") if s["judge_error"]}
    assert failed and first["metrics"]["n_judge_failures"] == len(failed)

    judged = []

    class CountingJudge(KeywordJudge):
        def judge(self, items):
            judged.extend(it.id for it in items)
            return super().judge(items)

    monkeypatch.setattr(run_mod, "make_judge", lambda config: CountingJudge())
    seen.clear()
    second = run_evaluation(config)
    assert seen == [] and sorted(judged) == sorted(failed)  # judged again, never generated again
    assert second["metrics"]["n_judge_failures"] == 0 and second["metrics"]["n"] == first["metrics"]["n"]
    judged.clear()
    run_evaluation(config)
    assert judged == []  # nothing pending any more


def test_id_clashing_with_a_text_only_copy_and_missing_checkpoints_are_refused_first(
    alarm_checkpoint, eval_data, tmp_path
):
    """Both used to surface late: the clash as a ValueError after the output folder was made, a missing
    ``checkpoints`` path as a warning after every row was generated."""
    from videosafety_r1.errors import InputError

    rows = [json.loads(line) for line in (eval_data / "eval.jsonl").read_text().splitlines()]
    harmful = next(r for r in rows if r["split"] == "HH")
    clash = {**next(r for r in rows if r["split"] == "SafeQ" and r["media"]), "id": harmful["id"] + "::text"}
    data = tmp_path / "data"
    data.mkdir()
    for row in (harmful, clash):
        (data / row["media"]["path"]).parent.mkdir(parents=True, exist_ok=True)
        (data / row["media"]["path"]).write_bytes((eval_data / row["media"]["path"]).read_bytes())
    (data / "clash.jsonl").write_text(json.dumps(harmful) + "\n" + json.dumps(clash) + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"clash\.jsonl: eval ids must be unique .*'<id>::text'.*::text"):
        run_evaluation(_config(alarm_checkpoint, data, out, eval_file="clash.jsonl", text_only_pass=True))
    assert not out.exists()
    (tmp_path / "list.json").write_text("[1, 2]")
    for checkpoint, message in [
        (tmp_path / "nowhere", r"nowhere' not found"),
        (data, r"data' has no results\.json"),  # a folder, e.g. a model's
        (data / "clash.jsonl", r"clash\.jsonl' is not an evaluation's results\.json \(not JSON"),
        (tmp_path / "list.json", r"list\.json' is not an evaluation's results\.json \(no 'metrics'"),
    ]:
        with pytest.raises(InputError, match="checkpoints: .*" + message):
            run_evaluation(_config(alarm_checkpoint, eval_data, out, checkpoints=[str(checkpoint)]))
        assert not out.exists()
