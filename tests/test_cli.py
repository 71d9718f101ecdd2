"""The videosafety-r1 CLI: exit codes 0 (clean), 1 (problems), 2 (usage) and make-synthetic."""

import importlib.util
import json
import os
import re

import pytest

from videosafety_r1.cli import main


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "syn"
    assert main(["make-synthetic", str(out), "--n", "8", "--seed", "1", "--n-eval", "2"]) == 0
    return out


def test_make_synthetic_writes_files(synthetic):
    names = {"videos", "sft.jsonl", "cot.jsonl", "grpo.jsonl", "eval.jsonl", "calibration.jsonl"}
    assert {p.name for p in synthetic.iterdir()} == names
    assert len(list((synthetic / "videos").glob("train_*.mp4"))) == 8


def test_make_synthetic_help_lists_every_file_and_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["make-synthetic", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for name in ("videos/", "sft.jsonl", "cot.jsonl", "grpo.jsonl", "eval.jsonl", "calibration.jsonl"):
        assert name in out
    assert "--safe-share" in out and "--text-share" in out and "max(1, n // 4)" in out


def _files(folder):
    return {name: (folder / f"{name}.jsonl").read_text(encoding="utf-8") for name in ("sft", "cot", "grpo", "eval")}


@pytest.mark.parametrize("options", [{}, {"n_eval": 3, "safe_share": 0.25, "text_share": 0.5}])
def test_make_synthetic_writes_what_the_library_writes(tmp_path, options):
    """Unset options are make_synthetic_dataset's defaults (n_eval None -> n // 4, safe_share 0.5, text_share 0.25);
    set ones reach it unchanged."""
    from videosafety_r1.data import make_synthetic_dataset

    argv = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert main(["make-synthetic", str(tmp_path / "cli"), "--n", "8", "--seed", "2", *argv]) == 0
    make_synthetic_dataset(tmp_path / "lib", 8, 2, **options)
    assert _files(tmp_path / "cli") == _files(tmp_path / "lib")
    calibration = (tmp_path / "cli" / "calibration.jsonl").read_text(encoding="utf-8").splitlines()
    n_eval = options.get("n_eval", 8 // 4)
    assert sum('"split": "HH"' in line and '"type": "video"' in line for line in calibration) == n_eval


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--safe-share", "1.5"], "argument --safe-share: must be between 0 and 1, got 1.5"),
        (["--safe-share", "nan"], "argument --safe-share: must be between 0 and 1, got nan"),
        (["--text-share", "-0.1"], "argument --text-share: must be between 0 and 100, got -0.1"),
        (["--text-share", "inf"], "argument --text-share: must be between 0 and 100, got inf"),
        (["--text-share", "nan"], "argument --text-share: must be between 0 and 100, got nan"),
        (["--text-share", "1e300"], "argument --text-share: must be between 0 and 100, got 1e300"),
        (["--text-share", "lots"], "argument --text-share: not a number: 'lots'"),
        (["--n-eval", "0"], "argument --n-eval: must be at least 1, got 0"),
        (["--n", "2.5"], "argument --n: not an integer: '2.5'"),
        (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    ],
)
def test_make_synthetic_refuses_bad_values_before_writing(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["make-synthetic", str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_make_synthetic_out_that_cannot_be_a_folder_is_a_usage_error(tmp_path, capsys):
    """OUT a file, or under a file: one argparse error line (exit 2), not a NotADirectoryError traceback."""
    (tmp_path / "file").write_text("x", encoding="utf-8")
    for out, message in [
        (tmp_path / "file", f"argument OUT: exists and is not a folder: {tmp_path / 'file'}"),
        (tmp_path / "file" / "sub", f"argument OUT: cannot create {tmp_path / 'file' / 'sub' / 'videos'}"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["make-synthetic", str(out), "--n", "1"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"videosafety-r1 make-synthetic: error: {message}" in err
        assert "Traceback" not in err


def test_make_synthetic_dataset_refuses_non_finite_text_share(tmp_path):
    from videosafety_r1.data import make_synthetic_dataset

    for share in (float("inf"), float("nan"), -1.0):
        with pytest.raises(ValueError, match="need 0 <= safe_share <= 1 and finite text_share >= 0"):
            make_synthetic_dataset(tmp_path / "out", 1, text_share=share)
    assert not (tmp_path / "out").exists()


def test_validate_clean_exits_0(synthetic, capsys):
    files = [str(synthetic / f"{name}.jsonl") for name in ("sft", "cot", "grpo", "eval")]
    assert main(["validate-data", *files, "--data-root", str(synthetic)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_validate_problems_exit_1(synthetic, tmp_path, capsys):
    rows = [json.loads(line) for line in (synthetic / "sft.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[1]["safety_labels"] = {"visual": 3, "textual": 0}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{oops\n", encoding="utf-8")
    assert main(["validate-data", str(bad), "--data-root", str(synthetic)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{bad}:2: safety_labels.visual:" in out
        and f"{bad}:{len(rows) + 1}: <json>:" in out
        and "FAILED: 2 problems" in out
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["validate-data"],
        ["validate-data", "does-not-exist.jsonl"],
        ["validate-data", "{sft}", "--data-root", "no-such-dir"],
        ["validate-data", "{sft}", "--format", "csv"],
        ["frobnicate"],
        ["make-synthetic", "x", "--n", "0"],
    ],
)
def test_usage_errors_exit_2(synthetic, argv):
    argv = [a.format(sft=synthetic / "sft.jsonl") for a in argv]
    try:
        code = main(argv)
    except SystemExit as err:  # argparse exits 2 itself
        code = err.code
    assert code == 2


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "videosafety-r1"]
    assert script.value == "videosafety_r1.cli:main"


def test_validate_decodes_videos_as_training_will(tmp_path, capsys):
    """The README's promise: validate-data catches every clip training could not load (cut files, decord-only
    failures), with the run's sampling, and nothing else."""
    from test_data_video import write_clip

    write_clip(tmp_path / "tiny.mp4", [i / 8 for i in range(16)], size=(48, 48))
    write_clip(tmp_path / "ok.mkv", [i / 8 for i in range(16)])
    whole = write_clip(tmp_path / "whole.mp4", [i / 8 for i in range(64)], faststart=True)
    (tmp_path / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    rows = [
        {"id": name, "media": {"type": "video", "path": name}, "conversation": turns, "safety_labels": [0, 0]}
        for name in ("tiny.mp4", "ok.mkv", "cut.mp4")
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["validate-data", str(data), "--video-fps", "2", "--video-max-frames", "4"]) == 1
    out = capsys.readouterr().out
    assert f"{data}:3: media.path:" in out and "cut.mp4: truncated" in out and "FAILED: 1 problems" in out
    assert main(["validate-data", str(data), "--video-backend", "decord"]) == 1  # training with decord: tiny fails
    assert f"{data}:1: media.path:" in capsys.readouterr().out
    assert main(["validate-data", str(data), "--video-fps", "0"]) == 2
    assert main(["validate-data", str(data), "--video-fps", "nan"]) == 2  # once a decode failure per video
    assert "--video-fps must be a finite number > 0, got nan" in capsys.readouterr().out
    assert main(["validate-data", str(data), "--video-max-frames", "0"]) == 2
    assert "--video-max-frames must be >= 1, got 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n", "0"], "--n and --n-eval must be at least 1"),
        (["--seed", "-1"], "--seed must be in [0, 2**32 - 1], got -1"),
        (["--seed", str(2**32)], "--seed must be in [0, 2**32 - 1], got 4294967296"),
        (["--safe-share", "2"], "--safe-share"),
        (["--width", "48"], "--width must be a multiple of 32"),
        (["--stage-args", "bogus", "x"], "unknown stage 'bogus'"),
        (["--until", "atc", "--stage-args", "cot", "--num_train_epochs 2"], "this run does not train cot"),
        (["--until", "cot", "--rewards", "format"], "--rewards: GRPO is not trained in this run (--until cot)"),
        (["--stage-args", "cot", "--num_train_epoch 20"], "--stage-args cot: command-line override: unknown key"),
        (["--stage-args", "grpo", "--temperature warm"], "temperature"),
        (["--stage-args", "atc", "--run_name 'my run"], "No closing quotation"),
        (["--from-stage", "grpo", "--until", "atc"], "nothing to train"),
        (["--rewards", "format", "nope"], "--rewards: unknown reward 'nope'; registered: ['accuracy', 'dra_rouge'"),
        (["--rewards", "my_lab_missing.rewards:f"], "cannot import module 'my_lab_missing.rewards'"),
        (["--rewards", "math:sqrt"], "'math:sqrt' has signature (x, /) without **kwargs"),  # not a reward
        (["--text-share", "inf"], "--text-share must be a finite number <= 100"),
        (["--text-share", "1e300"], "--text-share must be a finite number <= 100"),
        (["--family", "llama"], "invalid choice: 'llama'"),
        (["--from-stage", "grpo"], "demo_settings.json not found"),
        (["--stage-args", "cot", "--output_dir elsewhere"], "--output_dir is set by the demo itself (DIR/<stage>"),
        (["--stage-args", "grpo", "--beta 0.1 --seed=3"], "--seed is set by the demo itself (use --seed)"),
        (["--stage-args", "grpo", "seed=3"], "--seed is set by the demo itself (use --seed)"),  # key=value form
        # one --key=value word: argparse alone would read it as an option ("expected 2 arguments")
        (["--stage-args", "grpo", "--seed=3"], "--seed is set by the demo itself (use --seed)"),
        (["--stage-args", "cot", "--num_train_epochs=0", "--seed", "1"], "no training steps"),
        (["--stage-args", "cot", "--output-dir elsewhere"], "--output_dir is set by the demo itself"),  # hyphens
        (
            ["--stage-args", "grpo", "--reward_funcs format"],
            "--reward_funcs is set by the demo itself (use --rewards)",
        ),
        (["--stage-args", "cot", "--num_train_epochs 0"], "no training steps"),
        (["--out", ""], "--out is empty (an unset shell variable?)"),
        (["--until", "atc", "--eval-stages", "cot", "grpo"], "--eval-stages cot grpo: not trained in this run"),
    ],
)
def test_demo_refuses_bad_options_before_writing_anything(tmp_path, capsys, argv, message):
    import runpy
    from pathlib import Path

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")["main"]
    with pytest.raises(SystemExit) as exit_info:
        demo(["--out", str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_demo_help_shows_the_defaults_it_runs_with(capsys):
    """--help names the default of every setting that changes the run."""
    import runpy
    from pathlib import Path

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")["main"]
    with pytest.raises(SystemExit) as exit_info:
        demo(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--out", "--seed", "--n", "--n-eval", "--safe-share", "--text-share", "--width", "--layers"):
        metavar = option.removeprefix("--").replace("-", "_").upper()
        assert re.search(rf" {option} {metavar} [^()]*\(default: ", text), option  # in that option's own entry
    assert "--seed SEED changes the data, the model init and training (default: 0)" in text


def test_demo_stage_args_are_checked_as_the_run_will_use_them():
    """--stage-args are checked against the stage's config before training, in the run's own context: split like a
    shell line (a quoted value stays one argument), every --stage-args of the stage together, and --rewards for
    GRPO, exactly as train_stages will pass them."""
    import argparse
    import runpy
    from pathlib import Path

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    check, parser = demo["check_stage_overrides"], argparse.ArgumentParser()

    def run(**options):
        return argparse.Namespace(
            **{"stage_args": [], "rewards": None, "from_stage": None, "until": "grpo", **options}
        )

    check(parser, run(stage_args=[("atc", "--run_name 'my run' --num_train_epochs 2")]), "atc")  # no SystemExit
    with pytest.raises(SystemExit):
        check(parser, run(stage_args=[("atc", "--run_name my run")]), "atc")  # "run" alone is not an option
    # each half alone is inconsistent (the generation batch must be a multiple of num_generations); together fine
    halves = [("grpo", "--num_generations 3"), ("grpo", "--per_device_train_batch_size 6")]
    check(parser, run(stage_args=halves), "grpo")
    with pytest.raises(SystemExit):
        check(parser, run(stage_args=halves[:1]), "grpo")
    bound = [("grpo", """--reward_kwargs '{"refusal_consistency": {}}'""")]
    check(parser, run(stage_args=bound), "grpo")  # the YAML's reward_funcs include refusal_consistency
    with pytest.raises(SystemExit):
        check(parser, run(stage_args=bound, rewards=["format"]), "grpo")  # --rewards drops it: the kwargs dangle
    assert demo["stage_overrides"](run(stage_args=halves, rewards=["format"]), "grpo") == [
        "--num_generations", "3", "--per_device_train_batch_size", "6", "--reward_funcs", "format",
    ]  # fmt: skip


def test_demo_forgets_the_results_of_stages_it_replaces_before_training(tmp_path):
    """Before training, the eval folders and summary.json rows of every stage the run makes anew go (a run stopped
    midway must not leave them as current); those of reused stages stay. A full run also re-makes the base."""
    import argparse
    import runpy
    from pathlib import Path

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    for stage in ("base", "atc", "cot", "grpo"):
        (tmp_path / "eval" / stage).mkdir(parents=True)
        (tmp_path / "eval" / stage / "samples.jsonl").write_text("{}\n")
    old = {s: {"dsr_hh": 0.1 * i} for i, s in enumerate(("base", "atc", "cot", "grpo"))}
    (tmp_path / "summary.json").write_text(json.dumps({"seed": 3, "stages": old}))

    def replaced(from_stage, until="grpo"):
        return demo["replaced_stages"](argparse.Namespace(from_stage=from_stage, until=until))

    assert replaced(None) == ["base", "atc", "cot", "grpo"] and replaced(None, "cot") == ["base", "atc", "cot"]
    assert replaced("cot") == ["cot", "grpo"]
    removed = demo["forget_replaced_results"](tmp_path, replaced("cot"))
    assert removed == [tmp_path / "eval" / "cot", tmp_path / "eval" / "grpo"]
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["atc", "base"]
    kept = json.loads((tmp_path / "summary.json").read_text())
    assert kept == {"seed": 3, "stages": {"base": old["base"], "atc": old["atc"]}}
    assert demo["forget_replaced_results"](tmp_path / "new", replaced(None)) == []  # nothing there yet: no error


def test_demo_from_stage_refuses_other_options_and_missing_checkpoints(tmp_path, capsys):
    """--from-stage reuses DIR: other data or model options than DIR was made with, a missing starting checkpoint,
    or an --out that is a file are one-line errors before anything is written."""
    import runpy
    from pathlib import Path

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    out = tmp_path / "out"
    out.mkdir()
    recorded = {"seed": 0, "n": 600, "n_eval": 100, "safe_share": 0.6, "text_share": 0.75, "width": 128, "layers": 2}
    (out / "demo_settings.json").write_text(json.dumps({**recorded, "family": "qwen2_5_vl"}))
    cases = [
        (["--from-stage", "grpo", "--seed", "1"], "was made with other options (--seed 0 -> 1)"),
        (["--from-stage", "grpo", "--n", "64"], "(--n 600 -> 64)"),
        (["--from-stage", "grpo"], "cot/final not found"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            demo["main"](["--out", str(out), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv
    assert sorted(p.name for p in out.iterdir()) == ["demo_settings.json"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        demo["main"](["--out", str(tmp_path / "file")])
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_serve_without_vllm_names_the_extra(tmp_path):
    """The base install has no vLLM: `videosafety-r1 vllm-serve` says which extra to install (exit 2), no traceback."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "videosafety_r1.cli", "vllm-serve", "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert 'pip install "videosafety-r1[vllm]"' in run.stdout and "vllm" in run.stdout.split("needs")[1]
    assert "Traceback" not in run.stderr


def test_demo_partial_rerun_keeps_the_rows_of_reused_stages(tmp_path):
    """--from-stage grpo --eval-stages grpo: summary.json keeps base/atc/cot (their checkpoints were reused) and
    drops nothing but rows of stages trained again; stage order is kept."""
    import runpy
    from pathlib import Path

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    old = {s: {"dsr_hh": 0.1 * i} for i, s in enumerate(("base", "atc", "cot", "grpo"))}
    (tmp_path / "summary.json").write_text(json.dumps({"stages": old}))
    merged = demo["with_earlier_rows"](tmp_path, "grpo", {"grpo": {"dsr_hh": 0.9}})
    assert list(merged) == ["base", "atc", "cot", "grpo"] and merged["grpo"] == {"dsr_hh": 0.9}
    assert merged["cot"] == old["cot"]
    merged = demo["with_earlier_rows"](tmp_path, "cot", {"grpo": {"dsr_hh": 0.9}})  # cot retrained, not evaluated
    assert list(merged) == ["base", "atc", "grpo"]
    assert demo["with_earlier_rows"](tmp_path / "none", "grpo", {"grpo": {}}) == {"grpo": {}}


@pytest.mark.parametrize("extra", [["--threshold", "1.5"], ["--threshold", "-0.1"], ["--batch-size", "0"]])
def test_predict_harm_refuses_a_threshold_that_is_no_probability(tmp_path, capsys, extra):
    data = tmp_path / "rows.jsonl"
    data.write_text("{}\n")
    argv = ["predict-harm", "--model", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "p.jsonl")]
    assert main([*argv, *extra]) == 2
    out = capsys.readouterr().out
    assert ("--threshold is a probability in [0, 1]" in out or "--batch-size must be >= 1" in out) and not (
        tmp_path / "p.jsonl"
    ).exists()


def test_predict_harm_refuses_sampling_that_cannot_decode(tmp_path, capsys):
    """Frames per second <= 0 or NaN and a frame cap below 1 are usage errors, not decoder tracebacks."""
    argv = ["predict-harm", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "p.jsonl")]
    for option, value, message in [
        ("--fps", "0", "must be a finite number > 0, got 0"),
        ("--fps", "nan", "must be a finite number > 0, got nan"),
        ("--max-frames", "0", "must be at least 1, got 0"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, option, value])
        assert exit_info.value.code == 2 and f"argument {option}: {message}" in capsys.readouterr().err


def test_predict_harm_reports_bad_rows_without_a_traceback(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    data = tmp_path / "rows.jsonl"
    data.write_text("{not json\n")
    argv = ["predict-harm", "--model", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "p.jsonl")]
    assert main(argv) == 2
    assert f"{data}:1" in capsys.readouterr().out and not (tmp_path / "p.jsonl").exists()


def _one_text_row(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text(
        '{"id": "a", "split": "SafeQ", "query": "hi", "media": null, "labels": {"visual": 0, "textual": 0}}\n'
    )
    return data


def test_predict_harm_refuses_an_output_it_cannot_write_before_loading_the_model(tmp_path, capsys):
    """--out under a file (no folder can be made there) stops the run at once: exit 2, one line, and the model
    (here a folder that is not one) is never loaded, so no inference is lost."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    argv = ["predict-harm", "--model", str(tmp_path), "--data", str(_one_text_row(tmp_path))]
    assert main([*argv, "--out", str(blocker / "p.jsonl")]) == 2
    out = capsys.readouterr().out
    assert f"--out {blocker / 'p.jsonl'}: cannot write there" in out and "not a loadable" not in out


def test_predict_harm_refuses_a_folder_that_is_no_checkpoint_and_keeps_the_old_output(tmp_path, capsys):
    """A --model folder without a loadable checkpoint is bad input (exit 2, no traceback); an existing --out stays
    as it was and no temporary file is left beside it."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    previous = tmp_path / "p.jsonl"
    previous.write_text("earlier run\n")
    argv = ["predict-harm", "--model", str(tmp_path / "model"), "--data", str(_one_text_row(tmp_path))]
    assert main([*argv, "--out", str(previous)]) == 2
    assert f"--model {tmp_path / 'model'}: not a loadable checkpoint" in capsys.readouterr().out
    assert previous.read_text() == "earlier run\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "model", "p.jsonl", "rows.jsonl"
    ]  # fmt: skip


def test_predict_harm_never_replaces_its_input_or_a_special_file_and_leaves_no_folders(tmp_path, capsys):
    """--out equal to --data, or an existing non-regular file (here a fifo), is refused before anything is read
    or written; a run that fails after making --out's folders removes them again."""
    data = _one_text_row(tmp_path)
    before = data.read_text()
    argv = ["predict-harm", "--model", str(tmp_path), "--data", str(data)]
    assert main([*argv, "--out", str(data)]) == 2
    assert "is the --data file" in capsys.readouterr().out and data.read_text() == before
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main([*argv, "--out", str(fifo)]) == 2
    assert "is not a regular file" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "new" / "sub" / "p.jsonl")]) == 2  # tmp_path is no checkpoint
    assert "not a loadable checkpoint" in capsys.readouterr().out and not (tmp_path / "new").exists()


def test_a_reader_that_stops_early_ends_the_report_quietly(tmp_path):
    """`videosafety-r1 validate-data big.jsonl | head -1`: the closed pipe ends the run with exit 1 and no
    BrokenPipeError traceback."""
    import subprocess
    import sys

    data = tmp_path / "big.jsonl"
    data.write_text('{"id": "x"}\n' * 5000)  # one problem line each: far more than a pipe buffer holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "videosafety_r1.cli", "validate-data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"== ")
    proc.stdout.close()  # what `head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["make-synthetic", ""],
        ["validate-data", " "],
        ["validate-data", "x.jsonl", "--data-root", ""],
        ["predict-harm", "--model", "m", "--data", "d.jsonl", "--out", ""],
    ],
)
def test_an_empty_path_argument_is_a_usage_error(tmp_path, monkeypatch, capsys, argv):
    """An unset shell variable (`make-synthetic "$OUT"`) would mean the current folder: exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "is empty (an unset shell variable?)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
