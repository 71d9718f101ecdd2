"""How often the demo model's reasoning reads the clip's motion right, per stage, on the held-out eval clips.

Launch:
    python benchmarks/demo_motion.py demo_out [bench_demo/seed1 ...]

The CoT target of every video row says "square moves" or "square still" (videosafety_r1.data.synthetic); this
compares what each evaluated stage's `<think>` says with the clip itself: a clip moves when two consecutive decoded
frames differ by more than 15 grey levels on average (moving clips: above 30; still ones: about 5, the noise).
Prints, per DIR and stage, the share right and how often the model said "moves" (a model that always says it
scores the share of moving clips). docs/demo.md quotes these numbers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from videosafety_r1.data import load_video
from videosafety_r1.evaluation.report import read_samples

STAGES = ("cot", "grpo")  # the stages that write the reasoning


def clip_moves(path: Path) -> bool:
    frames, _ = load_video(path, fps=None)
    frames = frames.astype(np.int16)
    return bool(np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)).max() > 15)


def motion_reading(out: Path, stage: str) -> tuple[float, float, int] | None:
    """(share right, share saying "moves", rows) for ``stage`` in demo folder ``out``; None if not evaluated, and
    (nan, nan, 0) if evaluated but no completion states a motion in its think."""
    samples_file = out / "eval" / stage / "samples.jsonl"
    if not samples_file.is_file():
        return None
    rows = {r["id"]: r for r in map(json.loads, (out / "data" / "eval.jsonl").read_text().splitlines())}
    right = said_moves = total = 0
    for sample in read_samples(samples_file):
        row = rows.get(str(sample["id"]).split("::")[0])
        said = re.search(r"square (moves|still)", sample.get("completion") or "")
        if not row or not row.get("media") or sample.get("text_only_pass") or not said:
            continue
        total += 1
        said_moves += said.group(1) == "moves"
        right += (said.group(1) == "moves") == clip_moves(out / "data" / row["media"]["path"])
    return (right / total, said_moves / total, total) if total else (float("nan"), float("nan"), 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="demo output folders (recipes/demo.py --out)")
    args = parser.parse_args(argv)
    for out in args.dirs:
        if not (out / "data" / "eval.jsonl").is_file():
            parser.error(f"{out}: no data/eval.jsonl; expected a folder written by recipes/demo.py --out")
    print(f"{'demo folder':<32} {'stage':<6} {'right':>6} {'says moves':>11} {'clips':>6}")
    for out in args.dirs:
        for stage in STAGES:
            result = motion_reading(out, stage)
            if result is None:
                print(f"{str(out):<32} {stage:<6} not evaluated")
            elif not result[2]:
                print(f'{str(out):<32} {stage:<6} no completion states a motion ("square moves|still")')
            else:
                print(f"{str(out):<32} {stage:<6} {result[0]:>6.2f} {result[1]:>11.2f} {result[2]:>6}")


if __name__ == "__main__":
    main()
