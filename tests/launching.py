"""How the tests judge a multi-process `accelerate launch` (test plumbing).

Probes print `[done] rank R/N` as their last statement (tests/recipe_probe.py, tests/deepspeed_grpo_probe.py,
tests/zero3_export_probe.py). A launch passes when it exits 0, or when its only fault is a rank aborting during
interpreter shutdown ("terminate called without an active exception", a native thread left unjoined; seen in CI
under ZeRO-3; the launcher reports SIGABRT, and SIGTERM for the rank it then stops) after every rank printed `[done]`: everything the test reads was written by then. That case is a
warning naming the log, not a silent pass; any other failure fails. docs/training.md has the details.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings

TEARDOWN_ABORT = "terminate called without an active exception"


def finished_ranks(stdout: str, world: int) -> set[int]:
    """Ranks that printed `[done] rank R/world` on a line of their own."""
    return {int(r) for r in re.findall(rf"^\[done\] rank (\d+)/{world}$", stdout, flags=re.M)}


def assert_launch_ok(
    proc: subprocess.CompletedProcess, world: int, what: str, log: str | os.PathLike[str] | None = None
) -> None:
    """Fail unless ``proc`` exited 0 or only aborted at exit after all ``world`` ranks finished (then warn)."""
    if proc.returncode == 0:
        return
    # the launcher's summary: an abort (SIGABRT, -6) and at most the peer it stopped (SIGTERM, -15); a Python error
    # exits 1 and is never excused
    codes = {int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", proc.stderr)}
    aborted = -6 in codes and codes <= {-6, -15}
    if aborted and TEARDOWN_ABORT in proc.stderr and finished_ranks(proc.stdout, world) == set(range(world)):
        warnings.warn(f"{what}: a rank aborted at interpreter exit after every rank finished ({log})", stacklevel=2)
        return
    raise AssertionError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
