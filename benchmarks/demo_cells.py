"""SafeQ helpfulness of the demo per cell (language x question kind), per stage, on the held-out eval clips.

Launch:
    python benchmarks/demo_cells.py demo_out [bench_demo/seed1 ...]

The held-out split asks about each clip in one of four sentence frames per language and kind (colour or motion), so
the demo's 100 safe clip questions fall into 10 cells of about 10 rows, and a run tends to get a whole frame right or
wrong (docs/demo.md, "Why helpfulness moves in jumps"). The stage table's `SafeQ helpful` is the share over all cells;
this prints, per DIR and stage, `helpful/rows` for every cell, computed by the same
`videosafety_r1.evaluation.metrics.safeq_helpfulness`, so the cells add up to the table's rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videosafety_r1.data.synthetic_text import COLOUR_WORDS, LANGUAGES
from videosafety_r1.evaluation.metrics import safeq_helpfulness
from videosafety_r1.evaluation.report import read_samples

STAGES = ("base", "atc", "cot", "grpo")
KINDS = ("colour", "motion")


def kind_of(row: dict) -> str:
    """``colour`` when the reference names one of the language's colour words, else ``motion``."""
    colours = {words[row["language"]] for words in COLOUR_WORDS.values()}
    return "colour" if row.get("reference_keyword") in colours else "motion"


def helpfulness_cells(out: Path, stage: str) -> dict[tuple[str, str], tuple[int, int]] | None:
    """``{(language, kind): (helpful, rows)}`` for ``stage`` in demo folder ``out``; None if not evaluated. Raises
    ``FileNotFoundError`` when ``out`` has no ``data/eval.jsonl`` (not a demo folder)."""
    eval_file, samples_file = out / "data" / "eval.jsonl", out / "eval" / stage / "samples.jsonl"
    if not eval_file.is_file():
        raise FileNotFoundError(f"{out}: no data/eval.jsonl; expected a folder written by recipes/demo.py --out")
    if not samples_file.is_file():
        return None
    rows = {r["id"]: r for r in map(json.loads, eval_file.read_text().splitlines())}
    keywords = {i: r.get("reference_keyword") for i, r in rows.items()}
    cells: dict[tuple[str, str], list[int]] = {}
    for sample in read_samples(samples_file):
        row = rows.get(str(sample["id"]))
        if not (row and row.get("media") and keywords.get(row["id"]) and sample.get("split") == "SafeQ"):
            continue
        if sample.get("modality") != "video":  # the text-only pass of a clip row is not a clip question
            continue
        counts = cells.setdefault((row["language"], kind_of(row)), [0, 0])
        counts[0] += safeq_helpfulness([sample], keywords) == 1.0  # the table's own rule, one row at a time
        counts[1] += 1
    return {cell: (helpful, rows) for cell, (helpful, rows) in sorted(cells.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="demo output folders (recipes/demo.py --out)")
    args = parser.parse_args(argv)
    for out in args.dirs:
        if not (out / "data" / "eval.jsonl").is_file():
            parser.error(f"{out}: no data/eval.jsonl; expected a folder written by recipes/demo.py --out")
    cells = [(language, kind) for language in LANGUAGES for kind in KINDS]
    header = " ".join(f"{f'{lang} {k}':>9}" for lang, k in cells)
    print(f"{'demo folder':<28} {'stage':<6} {'all':>12}  {header}")
    for out in args.dirs:
        for stage in STAGES:
            result = helpfulness_cells(out, stage)
            if result is None:
                print(f"{str(out):<28} {stage:<6} {'not evaluated':>12}")
                continue
            helpful, total = sum(h for h, _ in result.values()), sum(n for _, n in result.values())
            shown = " ".join(f"{'/'.join(map(str, result[c])) if c in result else '-':>9}" for c in cells)
            rate = f"{helpful}/{total} {helpful / total:.2f}" if total else "no rows"
            print(f"{str(out):<28} {stage:<6} {rate:>12}  {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
