"""End-to-end proofs for AT-SFT (marked slow; `.ci/run` runs them as its second step)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from launching import assert_launch_ok  # tests/launching.py

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def test_demo_runs_all_stages_and_reports(demo):
    out, stdout, seconds = demo
    for stage in ("alarm_init", "atc", "cot"):
        assert (out / stage / "final" / "alarm.safetensors").exists()
        assert (out / stage / "export" / "config.json").exists()
    assert "[demo] finished" in stdout and "atc heads on held-out eval" in stdout
    print(f"demo wall time {seconds:.0f} s")


def test_heads_detect_harm_on_held_out_rows(demo):
    """After ATC, both heads separate harmful from safe on the held-out eval split (new clips, new sentences)."""
    import numpy as np

    from videosafety_r1.alarm import load_pretrained
    from videosafety_r1.alarm.calibration import harm_logits, record_inputs
    from videosafety_r1.data import load_dataset_checked
    from videosafety_r1.evaluation import auroc

    out, _, _ = demo
    model, processor = load_pretrained(out / "atc" / "final")
    records, _ = load_dataset_checked(out / "data" / "eval.jsonl", out / "data", kind="eval")
    assert len(records) >= 120
    logits = harm_logits(model, processor, *record_inputs(records, out / "data"), fps=4.0, max_frames=8)
    for head in ("visual", "textual"):
        labels = np.array([getattr(r.labels, head) for r in records])
        area = auroc(labels, logits[head])
        print(f"{head} head AUROC on {len(records)} held-out rows: {area:.3f}")
        # measured after ATC, seeds 0/1/2: visual 1.00, textual 0.89/0.94/1.00 (harm words inside sentences never
        # seen in training; docs/demo.md); chance is 0.5
        assert area >= {"visual": 0.95, "textual": 0.80}[head], (head, area)


def _workspace(tmp_path):
    from videosafety_r1.data import make_synthetic_dataset
    from videosafety_r1.testing import save_tiny_video_llm

    make_synthetic_dataset(tmp_path / "data", n=16, seed=0)
    save_tiny_video_llm(tmp_path / "base", "qwen2_5_vl", seed=0)
    return [
        "--config", str(ROOT / "recipes/configs/demo/atc.yaml"),
        "--model_name_or_path", str(tmp_path / "base"),
        "--train_file", str(tmp_path / "data" / "sft.jsonl"),
        "--data_root", str(tmp_path / "data"),
        "--eval_file", "",
        "--export_plain", "false",
        "--disable_tqdm", "true",
        "--per_device_train_batch_size", "4",
    ]  # fmt: skip


def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    args = _workspace(tmp_path)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "tests" / "recipe_probe.py"), "at_sft", *args, "--output_dir", str(tmp_path / "ddp"),
        "--max_steps", "3",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert_launch_ok(proc, 2, "at_sft on 2 CPU processes")
    sums = re.findall(r"rank (\d)/2 parameter checksum ([-+0-9.e]+)", proc.stdout)
    assert sorted(r for r, _ in sums) == ["0", "1"], proc.stdout[-2000:]
    assert sums[0][1] == sums[1][1]


def test_kill_and_resume_gives_the_same_final_weights(tmp_path):
    import runpy

    from safetensors.torch import load_file

    main = runpy.run_path(str(ROOT / "recipes" / "at_sft.py"), run_name="test")["main"]
    args = _workspace(tmp_path) + ["--lr_scheduler_type", "constant", "--warmup_steps", "0", "--save_steps", "2"]
    args += ["--save_strategy", "steps"]
    full = main(args + ["--output_dir", str(tmp_path / "full"), "--max_steps", "4"])

    class Killed(RuntimeError):
        pass

    from transformers import TrainerCallback

    class KillAfterCheckpoint(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Killed("simulated kill after checkpoint-2")

    from videosafety_r1 import sft

    original = sft.ATSFTTrainer.__init__

    def with_kill(self, *a, **k):
        original(self, *a, **k)
        self.add_callback(KillAfterCheckpoint())

    sft.ATSFTTrainer.__init__ = with_kill
    try:
        with pytest.raises(Killed):
            main(args + ["--output_dir", str(tmp_path / "killed"), "--max_steps", "4"])
    finally:
        sft.ATSFTTrainer.__init__ = original
    assert (tmp_path / "killed" / "checkpoint-2").exists() and not (tmp_path / "killed" / "final").exists()
    resumed = main(args + ["--output_dir", str(tmp_path / "killed"), "--max_steps", "4"])
    for name in ("model.safetensors", "alarm.safetensors"):
        a = load_file(str(Path(full["final"]) / name))
        b = load_file(str(Path(resumed["final"]) / name))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_recipe_docstring_command_runs(tmp_path):
    """Run the exact launch command from recipes/at_sft.py's docstring, with paths redirected to a temp folder."""
    doc = (ROOT / "recipes" / "at_sft.py").read_text()
    command = re.search(r"(accelerate launch recipes/at_sft\.py --config \S+)", doc).group(1).split()
    assert command[:2] == ["accelerate", "launch"]
    overrides = _workspace(tmp_path)[2:]  # everything after the --config pair
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", *command[2:], *overrides]
    cmd += ["--output_dir", str(tmp_path / "docstring"), "--max_steps", "2"]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "docstring" / "final" / "alarm.safetensors").exists()
