"""Run bookkeeping: a stale output folder is refused (training, GRPO, evaluation), a damaged newest checkpoint is
skipped, one call finishes a run, and add_alarm_tokens accepts a trained checkpoint."""

import json
import logging
import runpy
from pathlib import Path

import pytest

from videosafety_r1.runs import (
    FINGERPRINT_FILE,
    checkpoint_problem,
    last_valid_checkpoint,
    prepare_output_dir,
    resume_checkpoint,
    training_fingerprint,
)

ROOT = Path(__file__).resolve().parents[1]


def _main(recipe):
    return runpy.run_path(str(ROOT / "recipes" / f"{recipe}.py"), run_name="test")["main"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from videosafety_r1.data import make_synthetic_dataset
    from videosafety_r1.testing import save_tiny_video_llm

    root = tmp_path_factory.mktemp("runs")
    make_synthetic_dataset(root / "data", n=8, seed=0)
    save_tiny_video_llm(root / "base", "qwen2_5_vl", seed=0)
    return root


def _sft_args(workspace, out, *extra):
    return [
        "--config", str(ROOT / "recipes/configs/demo/alarm_init.yaml"),
        "--model_name_or_path", str(workspace / "base"),
        "--train_file", str(workspace / "data" / "sft.jsonl"),
        "--data_root", str(workspace / "data"),
        "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
        "--disable_tqdm", "true", "--export_plain", "false", *extra,
    ]  # fmt: skip


def _split(argv):
    """(yaml, overrides) of a recipe command line."""
    return argv[1], argv[2:]


@pytest.fixture(scope="module")
def sft_run(workspace):
    """One 2-step AT-SFT run that saves a checkpoint after each step."""
    out = workspace / "sft_run"
    _main("at_sft")(_sft_args(workspace, out, "--save_strategy", "steps", "--save_steps", "1"))
    return out


def test_finish_run_writes_everything_once(sft_run):
    assert (sft_run / "final" / "alarm.safetensors").exists()
    assert (sft_run / FINGERPRINT_FILE).exists() and (sft_run / "trainer_state.json").exists()
    train = json.loads((sft_run / "train_results.json").read_text())
    assert train["epoch"] > 0 and "train_runtime" in train
    assert sorted(p.name for p in sft_run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


def test_rerun_with_another_learning_rate_is_refused_naming_the_field(workspace, sft_run, refused):
    before = sorted(p.name for p in sft_run.iterdir())
    err = refused(_main("at_sft"), _sft_args(workspace, sft_run, "--learning_rate", "5e-3"))
    assert "learning_rate: 0.001 -> 0.005" in err and "on_existing_output=overwrite" in err
    assert sorted(p.name for p in sft_run.iterdir()) == before  # nothing touched


def test_on_existing_output_error_refuses_any_previous_run(workspace, sft_run, refused):
    err = refused(_main("at_sft"), _sft_args(workspace, sft_run, "--on_existing_output", "error"))
    assert "already holds a previous training run and on_existing_output=error" in err


def test_harmless_fields_resume(sft_run, workspace, caplog):
    """logging_steps and save settings do not make another run: the same config resumes at the last checkpoint."""
    from videosafety_r1.config import load_config
    from videosafety_r1.sft import ATSFTConfig

    args = load_config(ATSFTConfig, *_split(_sft_args(workspace, sft_run, "--logging_steps", "1")))
    with caplog.at_level(logging.INFO, logger="videosafety_r1.runs"):
        assert resume_checkpoint(args) == str(sft_run / "checkpoint-2")


def test_overwrite_starts_fresh(workspace, tmp_path):
    out = tmp_path / "run"
    _main("at_sft")(_sft_args(workspace, out, "--save_strategy", "steps", "--save_steps", "2"))
    assert (out / "checkpoint-2").exists()
    _main("at_sft")(_sft_args(workspace, out, "--learning_rate", "5e-3", "--on_existing_output", "overwrite"))
    assert not (out / "checkpoint-2").exists()  # save_strategy 'no' this time: the old checkpoint is gone
    assert json.loads((out / FINGERPRINT_FILE).read_text())["learning_rate"] == 5e-3
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["log_history"][0]["step"] <= 2


def test_damaged_newest_checkpoint_is_skipped_with_a_warning(workspace, sft_run, tmp_path, caplog):
    import shutil

    out = tmp_path / "damaged"
    shutil.copytree(sft_run, out)
    fingerprint = json.loads((out / FINGERPRINT_FILE).read_text())
    weights = out / "checkpoint-2" / "model.safetensors"
    if not weights.exists():
        weights = next((out / "checkpoint-2").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert str(weights) in checkpoint_problem(out / "checkpoint-2")
    assert checkpoint_problem(out / "checkpoint-1") is None
    with caplog.at_level(logging.WARNING, logger="videosafety_r1.runs"):
        assert last_valid_checkpoint(out) == str(out / "checkpoint-1")
    assert any(str(weights) in r.getMessage() and "skipping damaged" in r.getMessage() for r in caplog.records)
    # the recipe resumes from checkpoint-1 and finishes the run (fingerprint: same config, only output_dir moved)
    assert fingerprint == json.loads((sft_run / FINGERPRINT_FILE).read_text())
    seen = {}
    from videosafety_r1.sft import ATSFTTrainer

    original = ATSFTTrainer.train

    def spy(self, resume_from_checkpoint=None, **kw):
        seen["resume"] = resume_from_checkpoint
        return original(self, resume_from_checkpoint=resume_from_checkpoint, **kw)

    ATSFTTrainer.train = spy
    try:
        _main("at_sft")(_sft_args(workspace, out, "--save_strategy", "steps", "--save_steps", "1"))
    finally:
        ATSFTTrainer.train = original
    assert seen["resume"] == str(out / "checkpoint-1")
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2


def test_explicit_resume_from_checkpoint_is_checked(workspace, sft_run, tmp_path):
    from videosafety_r1.config import load_config
    from videosafety_r1.sft import ATSFTConfig

    args = load_config(ATSFTConfig, *_split(_sft_args(workspace, tmp_path / "new", "--resume_from_checkpoint", "x")))
    args.resume_from_checkpoint = str(tmp_path / "nope")
    with pytest.raises(ValueError, match="resume_from_checkpoint: .*nope is not a folder"):
        resume_checkpoint(args)
    args.resume_from_checkpoint = str(sft_run / "checkpoint-1")
    assert resume_checkpoint(args) == str(sft_run / "checkpoint-1")  # TrainingArguments' meaning: resume from it


def test_a_failed_start_does_not_block_the_corrected_rerun(tmp_path):
    """A fingerprint without checkpoints or outputs (the first start failed on a bad path) is no run to protect."""
    assert prepare_output_dir(tmp_path, {"train_file": "typo.jsonl"}) is False
    assert prepare_output_dir(tmp_path, {"train_file": "data.jsonl"}) is False
    assert json.loads((tmp_path / FINGERPRINT_FILE).read_text()) == {"train_file": "data.jsonl"}
    (tmp_path / "checkpoint-1").mkdir()
    with pytest.raises(ValueError, match="train_file: 'data.jsonl' -> 'other.jsonl'"):
        prepare_output_dir(tmp_path, {"train_file": "other.jsonl"})


def test_folder_with_checkpoints_but_no_fingerprint_is_refused(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    with pytest.raises(ValueError, match="without run_fingerprint.json"):
        prepare_output_dir(tmp_path, {"a": 1})
    assert prepare_output_dir(tmp_path, {"a": 1}, "overwrite") is False
    assert not (tmp_path / "checkpoint-5").exists()


def test_grpo_recipe_refuses_a_stale_folder_before_loading(workspace, tmp_path, monkeypatch, refused):
    from videosafety_r1.config import load_config
    from videosafety_r1.grpo import GRPOConfig

    out = tmp_path / "grpo"
    base = [
        "--config", str(ROOT / "recipes/configs/demo/grpo.yaml"), "--model_name_or_path", str(workspace / "base"),
        "--train_file", str(workspace / "data" / "grpo.jsonl"), "--data_root", str(workspace / "data"),
        "--output_dir", str(out),
    ]  # fmt: skip
    first = load_config(GRPOConfig, base[1], base[2:])
    resume_checkpoint(first)  # what the first run wrote, and one of its checkpoints
    (out / "checkpoint-2").mkdir()
    assert json.loads((out / FINGERPRINT_FILE).read_text()) == training_fingerprint(first)
    import videosafety_r1.alarm as alarm

    monkeypatch.setattr(alarm, "load_pretrained", lambda *a, **k: pytest.fail("model loaded before the check"))
    assert "learning_rate: 0.0001 -> 1e-05" in refused(_main("grpo"), [*base, "--learning_rate", "1e-5"])


def test_evaluation_refuses_another_model_before_skipping_ids(workspace, tmp_path):
    import shutil

    from videosafety_r1.evaluation import EvalConfig, run_evaluation
    from videosafety_r1.testing import save_tiny_video_llm

    model = tmp_path / "model"
    shutil.copytree(workspace / "base", model)
    other = save_tiny_video_llm(tmp_path / "other", "qwen2_5_vl", seed=1)
    kw = dict(eval_file=str(workspace / "data" / "eval.jsonl"), output_dir=str(tmp_path / "eval"), max_samples=2,
              max_new_tokens=4, batch_size=2, bootstrap_samples=10, video_fps=2.0, video_max_frames=4, plots=False)  # fmt: skip
    run_evaluation(EvalConfig(model_name_or_path=str(model), **kw))
    samples = (tmp_path / "eval" / "samples.jsonl").read_text()
    with pytest.raises(ValueError, match=r"differing settings: max_new_tokens: 4 -> 8; model_name_or_path: "):
        run_evaluation(EvalConfig(model_name_or_path=str(other), **{**kw, "max_new_tokens": 8}))
    shutil.rmtree(model)
    shutil.copytree(other, model)  # same path, other weights
    with pytest.raises(ValueError, match=r"differing settings: weights: '[0-9a-f]{64}' -> '[0-9a-f]{64}'"):
        run_evaluation(EvalConfig(model_name_or_path=str(model), **kw))
    assert (tmp_path / "eval" / "samples.jsonl").read_text() == samples  # nothing skipped, nothing appended
    results = run_evaluation(EvalConfig(model_name_or_path=str(model), on_existing_output="overwrite", **kw))
    assert len((tmp_path / "eval" / "samples.jsonl").read_text().splitlines()) == 2 and results["metrics"]
    again = run_evaluation(EvalConfig(model_name_or_path=str(model), **{**kw, "max_samples": 3}))  # resumes
    assert len((tmp_path / "eval" / "samples.jsonl").read_text().splitlines()) == 3 and again["metrics"]


def test_weights_digest_tells_checkpoints_apart(workspace, tmp_path):
    from videosafety_r1.runs import weights_digest
    from videosafety_r1.testing import save_tiny_video_llm

    a = save_tiny_video_llm(tmp_path / "a", "qwen2_5_vl", seed=0)
    b = save_tiny_video_llm(tmp_path / "b", "qwen2_5_vl", seed=1)
    assert weights_digest(a) == weights_digest(workspace / "base") != weights_digest(b)
    assert weights_digest("org/hub-id") is None


def test_add_alarm_tokens_returns_a_trained_checkpoint_unchanged(sft_run, caplog):
    import videosafety_r1 as vsr
    from videosafety_r1.alarm import AlarmConfig

    model, processor = vsr.load_pretrained(sft_run / "final")
    with caplog.at_level(logging.INFO):
        assert vsr.add_alarm_tokens(model, processor) is model
    assert "already has alarm tokens" in caplog.text
    assert vsr.add_alarm_tokens(model, processor, AlarmConfig(init="normal")) is model  # same tokens and heads
    with pytest.raises(ValueError, match="differ: load the base model"):
        vsr.add_alarm_tokens(model, processor, AlarmConfig(visual_token="<|other|>"))


def test_load_train_files_takes_one_path_as_one_file(workspace):
    """A single path (str or Path) for files and for roots is one file and one folder, not a sequence of letters."""
    from videosafety_r1.runs import load_train_files

    data = workspace / "data"
    as_list = load_train_files([str(data / "sft.jsonl")], [str(data)])
    assert as_list and len(load_train_files(str(data / "sft.jsonl"), str(data))) == len(as_list)
    assert len(load_train_files(data / "sft.jsonl", data)) == len(as_list)
    two = load_train_files([str(data / "sft.jsonl")] * 2, str(data))
    assert len(two) == 2 * len(as_list)


def test_a_finished_run_without_checkpoints_is_retrained_with_a_warning(tmp_path, caplog):
    """save_strategy 'no' leaves final/ but no checkpoint: a rerun of the same settings trains again from the start,
    and says so instead of silently redoing hours of work."""
    from videosafety_r1.sft import ATSFTConfig

    args = ATSFTConfig(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[], save_strategy="no")
    (tmp_path / "run" / "final").mkdir(parents=True)
    (tmp_path / "run" / FINGERPRINT_FILE).write_text(json.dumps(training_fingerprint(args)))
    with caplog.at_level(logging.WARNING, logger="videosafety_r1.runs"):
        assert resume_checkpoint(args) is None
    assert "holds a finished run of these settings but no checkpoint to resume" in caplog.text


@pytest.mark.parametrize("export_plain", [True, False])
def test_grpo_export_plain_decides_the_export(workspace, tmp_path, export_plain):
    """GRPO has AT-SFT's export_plain; a run from a model without alarm tokens exports too (it crashed after
    training, in export_plain_checkpoint)."""
    out = tmp_path / "grpo"
    _main("grpo")(
        [
            "--config", str(ROOT / "recipes/configs/demo/grpo.yaml"), "--model_name_or_path", str(workspace / "base"),
            "--train_file", str(workspace / "data" / "grpo.jsonl"), "--data_root", str(workspace / "data"),
            "--output_dir", str(out), "--max_steps", "1", "--num_generations", "2",
            "--per_device_train_batch_size", "2", "--max_completion_length", "4", "--export_plain", str(export_plain),
        ]
    )  # fmt: skip
    assert (out / "final").is_dir() and (out / "export").is_dir() == export_plain
    if export_plain:  # this base has no alarm tokens: the export is the plain model, loadable as any checkpoint
        from transformers import AutoModelForImageTextToText

        AutoModelForImageTextToText.from_pretrained(out / "export")


def test_a_folder_of_the_other_kind_of_run_is_refused(tmp_path):
    """Training and evaluation share the fingerprint file's name: one must not take over the other's folder."""
    from videosafety_r1.errors import InputError

    (tmp_path / "train" / "final").mkdir(parents=True)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "samples.jsonl").write_text("{}\n")
    with pytest.raises(InputError, match="holds a training run; give this evaluation run its own output_dir"):
        prepare_output_dir(tmp_path / "train", {"a": 1}, kind="evaluation")
    with pytest.raises(InputError, match="holds an evaluation run; give this training run its own output_dir"):
        prepare_output_dir(tmp_path / "eval", {"a": 1}, kind="training")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        prepare_output_dir(tmp_path / "file", {"a": 1})
    assert not (tmp_path / "train" / FINGERPRINT_FILE).exists()
