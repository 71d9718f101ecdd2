"""Bad input found before training (a missing or malformed data file, an output folder holding another run) is one
message and exit status 2 in every recipe, never a traceback, and nothing is written to output_dir first."""

import json
import runpy
from pathlib import Path

import pytest

RECIPES = Path(__file__).parents[1] / "recipes"
SFT_ROW = {
    "id": "t1",
    "media": None,
    "conversation": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    "safety_labels": {"visual": 0, "textual": 0},
}


def run_recipe(tmp_path, recipe, data, extra=()):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)  # the checks before loading need only a folder with a config.json
    (model / "config.json").write_text("{}")
    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    data_key = "eval_file" if recipe == "evaluate" else "train_file"
    lines = [f"model_name_or_path: {model}", f"{data_key}: {data}", f"output_dir: {out}"]
    lines += [] if recipe == "evaluate" else ["use_cpu: true", "report_to: []"]
    config.write_text("\n".join(lines) + "\n")
    main = runpy.run_path(str(RECIPES / f"{recipe}.py"), run_name="recipe_test")["main"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), *extra])
    return exit_info.value.code, out


@pytest.mark.parametrize("recipe", ["at_sft", "grpo", "evaluate"])
def test_missing_or_bad_data_exits_2_before_writing(tmp_path, capsys, recipe):
    code, out = run_recipe(tmp_path, recipe, tmp_path / "nope.jsonl")
    err = capsys.readouterr().err
    assert code == 2 and f"{recipe}.py: error: {tmp_path / 'nope.jsonl'}: data file not found" in err
    assert "Traceback" not in err and not out.exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(SFT_ROW) + "\n{not json\n")
    code, out = run_recipe(tmp_path, recipe, bad)
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}:2" in err and "Traceback" not in err and not out.exists()


def test_output_folder_of_another_run_exits_2(tmp_path, capsys):
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps(SFT_ROW) + "\n")
    out = tmp_path / "out"
    (out / "final").mkdir(parents=True)  # a previous run's work, from other settings
    (out / "run_fingerprint.json").write_text(json.dumps({"learning_rate": 1.0}))
    before = sorted(p.name for p in out.iterdir())
    code, _ = run_recipe(tmp_path, "at_sft", data)
    err = capsys.readouterr().err
    assert code == 2 and "holds a different training run" in err and "learning_rate" in err
    assert "Traceback" not in err and sorted(p.name for p in out.iterdir()) == before


def test_other_errors_are_not_swallowed():
    from videosafety_r1.errors import InputError, exit_on_input_error

    with pytest.raises(RuntimeError), exit_on_input_error("x"):
        raise RuntimeError("a bug keeps its traceback")
    with pytest.raises(SystemExit) as exit_info, exit_on_input_error("x"):
        raise InputError("bad")
    assert exit_info.value.code == 2


def test_a_folder_that_is_no_checkpoint_is_refused_before_loading(tmp_path, capsys):
    from videosafety_r1.config import check_model_path
    from videosafety_r1.errors import InputError

    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)  # a training run's output_dir, not its checkpoint
    with pytest.raises(
        InputError, match=r"holds no config.json: not a model checkpoint \(a training run's output_dir"
    ):
        check_model_path(str(run))
    (run / "final" / "config.json").write_text("{}")
    check_model_path(str(run / "final"))


def test_a_file_given_as_model_is_named_a_file(tmp_path):
    from videosafety_r1.config import check_model_path
    from videosafety_r1.errors import InputError

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(InputError, match=r"model\.safetensors is a file; give the model's folder"):
        check_model_path(str(weights))


def test_evaluate_with_a_missing_judge_model_exits_2_before_writing(tmp_path, capsys):
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps(SFT_ROW) + "\n")
    extra = ["--judge", "transformers", "--judge_model", str(tmp_path / "no_judge")]
    code, out = run_recipe(tmp_path, "evaluate", data, extra)
    err = capsys.readouterr().err
    assert code == 2 and f"judge_model: folder not found: {tmp_path / 'no_judge'}" in err
    assert "Traceback" not in err and not out.exists()


def test_cot_stage_refuses_rows_without_the_tag_grammar_before_training(tmp_path, capsys):
    """The cold start trains the CoT format: plain SFT answers are reported (as `validate-data --kind cot` does)
    before the output folder is written, not trained on."""
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps(SFT_ROW) + "\n")
    code, out = run_recipe(tmp_path, "at_sft", data, ["--stage", "cot"])
    err = capsys.readouterr().err
    assert code == 2 and f"{data}:1" in err and "cot_tags_missing" in err, err
    assert "Traceback" not in err and not out.exists()
