"""`benchmarks/gpu_check.sh --dry-run`: every GPU-check row runs on the CPU and the table is printed."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("env", "bf16_sdpa", "flash_attn", "grpo_2_steps", "zero3_2_steps", "bench_at_sft_overhead")


@pytest.mark.slow
@pytest.mark.deepspeed
def test_gpu_check_dry_run_prints_every_row(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OUT": str(tmp_path)}
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index("check ") :]
    for row in ROWS:
        line = next(line for line in table.splitlines() if line.startswith(row + " "))
        assert " FAIL " not in line, line
    assert (tmp_path / "gpu_check.json").is_file()


def test_gpu_check_rejects_unknown_mode():
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
