"""SafeQ helpfulness of the demo per cell (language x question kind), per stage, on the held-out eval clips.

Launch:
    python benchmarks/demo_cells.py demo_out [bench_demo/seed1 ...]

The held-out split asks about each clip in one sentence frame per language and kind (colour or motion), so its
40 safe clip questions fall into 10 cells of about 4 rows, and a run tends to get a whole cell right or wrong
(docs/demo.md, "Why helpfulness moves in jumps"). The stage table's `SafeQ helpful` is the share over all cells;
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
    """``{(language, kind): (helpful, rows)}`` for ``stage`` in demo folder ``out``; None if not evaluated."""
    samples_file = out / "eval" / stage / "samples.jsonl"
    if not samples_file.is_file():
        return None
    rows = {r["id"]: r for r in map(json.loads, (out / "data" / "eval.jsonl").read_text().splitlines())}
    keywords = {i: r.get("reference_keyword") for i, r in rows.items()}
    cells: dict[tuple[str, str], list[dict]] = {}
    for sample in read_samples(samples_file):
        row = rows.get(str(sample["id"]))
        if row and row.get("media") and keywords.get(row["id"]) and sample.get("split") == "SafeQ":
            cells.setdefault((row["language"], kind_of(row)), []).append(sample)
    return {
        cell: (round(safeq_helpfulness(samples, keywords) * len(samples)), len(samples))
        for cell, samples in sorted(cells.items())
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="demo output folders (recipes/demo.py --out)")
    args = parser.parse_args(argv)
    cells = [(language, kind) for language in LANGUAGES for kind in KINDS]
    print(f"{'demo folder':<28} {'stage':<6} {'all':>6}  " + " ".join(f"{f'{lang} {k}':>9}" for lang, k in cells))
    for out in args.dirs:
        for stage in STAGES:
            result = helpfulness_cells(out, stage)
            if not result:
                continue
            helpful, total = sum(h for h, _ in result.values()), sum(n for _, n in result.values())
            shown = " ".join(f"{'/'.join(map(str, result[c])) if c in result else '-':>9}" for c in cells)
            print(f"{str(out):<28} {stage:<6} {helpful / total:>6.2f}  {shown}")


if __name__ == "__main__":
    main()
