"""tests/launching.py: a launch that aborted at interpreter exit passes (with a warning) only after every rank finished."""

import subprocess

import pytest
from launching import TEARDOWN_ABORT, assert_launch_ok, finished_ranks

BOTH = "[probe] rank 0/2 {}\n[done] rank 1/2\n[done] rank 0/2\n"
# what the launcher printed in CI: rank 1 aborted, rank 0 stopped by the launcher
ABORT = f"{TEARDOWN_ABORT}\nFatal Python error: Aborted\n  exitcode  : -15 (pid: 1)\n  exitcode  : -6 (pid: 2)\n"


def _proc(code: int, stdout: str, stderr: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["accelerate", "launch"], code, stdout, stderr)


def test_clean_exit_passes_without_warning(recwarn):
    assert_launch_ok(_proc(0, ""), 2, "run")
    assert not recwarn.list


def test_teardown_abort_after_every_rank_finished_is_a_warning():
    with pytest.warns(UserWarning, match="aborted at interpreter exit"):
        assert_launch_ok(_proc(1, BOTH, ABORT), 2, "run")


@pytest.mark.parametrize(
    "stdout, stderr",
    [
        ("[done] rank 0/2\n", ABORT),  # rank 1 never finished
        (BOTH, TEARDOWN_ABORT + "\n  exitcode  : 1 (pid: 2)\n  exitcode  : -6 (pid: 3)"),  # a Python error too
        (BOTH, TEARDOWN_ABORT),  # no launcher summary: not the known case
        (BOTH, "Traceback ...\nValueError: bad row"),  # a real error, whatever was printed
        ("x[done] rank 1/2\n[done] rank 0/2\n", ABORT),  # a marker mid-line does not count
        ("[done] rank 0/3\n[done] rank 1/3\n", ABORT),  # another world size
    ],
)
def test_anything_else_fails(stdout, stderr):
    with pytest.raises(AssertionError, match="failed"):
        assert_launch_ok(_proc(1, stdout, stderr), 2, "run")


def test_finished_ranks_reads_whole_lines_only():
    assert finished_ranks(BOTH + "[done] rank 1/2 extra\n", 2) == {0, 1}
