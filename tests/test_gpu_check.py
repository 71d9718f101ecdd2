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
    scratch = tmp_path / "scratch"  # the check's own temporary folder goes here, and must be gone afterwards
    scratch.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OUT": str(tmp_path)}
    env["TMPDIR"] = str(scratch)
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
    assert not list(scratch.glob("gpu_check_*")), "the check left its temporary folder behind"


def test_gpu_check_rejects_unknown_mode():
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_zero3_row_excuses_only_the_known_teardown_abort():
    """The ZeRO-3 row accepts a launch whose only fault is a rank aborting at interpreter exit ("terminate called
    without an active exception", SIGABRT, and SIGTERM for the peer; tests/launching.py has the same rule) once the
    final checkpoint exists; a Python error (exit 1) or another signal still fails the row."""
    import runpy

    check = runpy.run_path(str(ROOT / "benchmarks" / "gpu_check.py"), run_name="test")["teardown_abort"]
    summary = "rank : 0\n  exitcode  : -15 (pid: 1)\n  rank : 1\n  exitcode  : -6 (pid: 2)\n"
    assert check("terminate called without an active exception\n" + summary)
    assert not check(summary)  # an abort without the runtime's teardown message
    assert not check("terminate called without an active exception\n  exitcode  : 1 (pid: 2)\n")
    assert not check("terminate called without an active exception\n  exitcode  : -11 (pid: 2)\n")
