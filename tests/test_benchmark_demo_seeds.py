"""benchmarks/demo_seeds.py's median table: medians per stage over the seeds that evaluated it, goals judged on the
unrounded GRPO median."""

import runpy
from pathlib import Path

BENCH = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "demo_seeds.py"), run_name="bench_test")


def _summary(**grpo):
    row = {key: 0.5 for key in BENCH["GOALS"]}
    return {"stages": {"grpo": {**row, **grpo}}}


def test_medians_skip_stages_a_run_did_not_evaluate():
    """A run with --eval-stages grpo has only that stage in summary.json (it raised KeyError: 'base')."""
    summaries = [_summary(safeq_helpful=h) for h in (0.78, 0.85, 0.80)]
    summaries[0]["stages"]["cot"] = {"safeq_helpful": 0.9}
    table = BENCH["medians"](summaries)
    assert table["grpo"]["safeq_helpful"] == 0.80 and table["cot"]["safeq_helpful"] == 0.9
    assert table["base"]["safeq_helpful"] is None


def test_a_goal_missed_by_rounding_is_not_met():
    """0.052 prints as 0.05 but misses the ECE goal (<= 0.05): the table says so."""
    table = BENCH["medians"]([_summary(textual_head_ece=e) for e in (0.052, 0.093, 0.045)])
    line = next(x for x in BENCH["markdown"](table, 3).splitlines() if x.startswith("| textual ECE |"))
    assert line == "| textual ECE | - | - | - | 0.05 | <= 0.05 | **no** |"
