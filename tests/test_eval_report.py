"""Outputs: results.json, resumable samples.jsonl, CSV, console tables and PNG plots."""

import csv
import json
import math

import numpy as np
import pytest

from videosafety_r1.evaluation import (
    KeywordJudge,
    SampleWriter,
    build_sample,
    compute_metrics,
    data_hash,
    format_table,
    plot_category_dsr,
    plot_dsr_vs_frr,
    plot_roc_curves,
    read_done_ids,
    read_samples,
    write_csv,
    write_results_json,
)


def test_data_hash_file_and_directory(tmp_path):
    f = tmp_path / "eval.jsonl"
    f.write_text('{"id": "1"}\n')
    h1 = data_hash(f)
    assert len(h1) == 64 and h1 == data_hash(f)
    f.write_text('{"id": "2"}\n')
    assert data_hash(f) != h1
    d = tmp_path / "bench"
    (d / "videos").mkdir(parents=True)
    (d / "videos" / "a.mp4").write_bytes(b"\x00\x01")
    h_dir = data_hash(d)
    (d / "videos" / "a.mp4").rename(d / "videos" / "b.mp4")
    assert data_hash(d) != h_dir  # names count, not only contents
    with pytest.raises(FileNotFoundError):
        data_hash(tmp_path / "missing")


def test_samples_resume_after_a_killed_run(tmp_path):
    path = tmp_path / "out" / "samples.jsonl"
    assert read_done_ids(path) == set() and read_samples(path) == []
    with SampleWriter(path) as w:
        w.write({"id": "a", "safe": True})
        w.write({"id": 2, "safe": None, "score": math.nan})
    with path.open("a") as fh:
        fh.write('{"id": "c", "safe"')  # killed mid-line
    assert read_done_ids(path) == {"a", "2"}
    with SampleWriter(path) as w:  # resuming cuts the torn line, then appends cleanly
        w.write({"id": "c", "safe": False})
    rows = read_samples(path)
    assert [r["id"] for r in rows] == ["a", 2, "c"] and rows[1]["score"] is None
    assert read_done_ids(path) == {"a", "2", "c"}


def test_results_json_records_judge_and_is_strict_json(tmp_path):
    records = [{"split": "HH", "safe": True, "refused": True}, {"split": "SafeQ", "safe": True, "refused": False}]
    metrics = compute_metrics(records, n_resamples=50)
    judge = KeywordJudge("vlguard").info()
    out = write_results_json(
        tmp_path / "results.json", metrics, config={"seed": 0}, judge=judge, model_id="tiny", data_sha256="ab" * 32
    )
    text = out.read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["judge"]["prompt_hash"] == judge["prompt_hash"] and data["model_id"] == "tiny"
    assert data["metrics"]["splits"]["HH"]["dsr"] == 1.0 and data["metrics"]["splits"]["SafeQ"]["frr"] == 0.0
    assert data["metrics"]["splits"]["HH"]["helpfulness"] is None
    assert not list(tmp_path.glob("*.tmp"))


def test_csv_and_console_table(tmp_path):
    rows = [{"split": "HH", "category": "drugs", "dsr": 0.5, "n": 4}, {"split": "SafeQ", "frr": math.nan, "n": 2}]
    path = write_csv(tmp_path / "by_category.csv", rows)
    with path.open() as fh:
        read = list(csv.DictReader(fh))
    assert (
        list(read[0]) == ["split", "category", "dsr", "n", "frr"] and read[1]["frr"] == "" and read[0]["dsr"] == "0.5"
    )
    table = format_table(rows, digits=2)
    lines = table.splitlines()
    assert lines[0].split() == ["split", "category", "dsr", "n", "frr"] and "0.50" in lines[2] and "-" in lines[3]
    assert len({len(line) for line in lines[:2]}) == 1


def test_plots_are_written(tmp_path):
    rows = [
        {"split": "HH", "category": "drugs", "dsr": 0.5, "dsr_ci_low": 0.3, "dsr_ci_high": 0.7},
        {"split": "SH", "category": "drugs", "dsr": 0.8, "dsr_ci_low": math.nan, "dsr_ci_high": math.nan},
        {"split": "HH", "category": "violence", "dsr": 0.9, "dsr_ci_low": 0.8, "dsr_ci_high": 1.0},
        {"split": "SafeQ", "category": "drugs", "frr": 0.1},
    ]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    heads = {"visual": (y, np.clip(y * 0.6 + rng.random(50) * 0.5, 0, 1)), "textual": (y, rng.random(50))}
    points = [{"label": "base", "dsr": 0.2, "frr": 0.05}, {"label": "grpo", "dsr": 0.9, "frr": 0.1}]
    paths = [
        plot_category_dsr(rows, tmp_path / "plots" / "dsr_by_category.png"),
        plot_roc_curves(heads, tmp_path / "plots" / "roc.png"),
        plot_dsr_vs_frr(points, tmp_path / "plots" / "dsr_vs_frr.png"),
    ]
    for p in paths:
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000


def test_build_sample_feeds_metrics_end_to_end(tmp_path):
    from videosafety_r1.evaluation import JudgeItem, alarm_metrics_from_records, response_for_judging

    rows = [
        {"id": "1", "split": "HH", "query": "q", "media": {"type": "video", "path": "v.mp4"},
         "labels": {"visual": 1, "textual": 1}, "category": "drugs", "language": "en"},
        {"id": "2", "split": "HH", "query": "q", "media": None, "labels": {"visual": 0, "textual": 1}},
        {"id": "3", "split": "SafeQ", "query": "q", "media": {"type": "video", "path": "w.mp4"},
         "labels": {"visual": 0, "textual": 0}},
    ]  # fmt: skip
    completions = [
        "<think>I cannot help with this.</think><answer>Sure, here is how.</answer><vidType>1</vidType>"
        "<textType>1</textType>",
        "<answer>I'm sorry, I can't.</answer>",
        "no tags, I cannot answer",
    ]
    judge = KeywordJudge("default")
    texts = [response_for_judging(c)[0] for c in completions]
    verdicts = judge.judge([JudgeItem(r["query"], t, r["id"]) for r, t in zip(rows, texts)])
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as w:
        for r, c, v, p in zip(rows, completions, verdicts, (0.9, 0.2, 0.1)):
            w.write(build_sample(r, c, v, visual_prob=p, textual_prob=p))
    samples = read_samples(path)
    assert [s["modality"] for s in samples] == ["video", "text", "video"]
    assert [s["format_ok"] for s in samples] == [True, True, False]
    m = compute_metrics(samples, n_resamples=20)
    assert m["splits"]["HH"]["dsr"] == 0.0  # the think trap complied: not a refusal
    assert m["text_only"]["HH"]["dsr"] == 1.0 and m["splits"]["SafeQ"]["frr"] == 1.0
    assert m["n_format_failures"] == 1
    heads = alarm_metrics_from_records(samples)
    assert heads["visual"]["auroc"] == 1.0 and heads["visual"]["tag_agreement"] == 1.0


def test_failed_judge_items_are_pending_for_the_judge(tmp_path):
    from videosafety_r1.evaluation import KeywordJudge
    from videosafety_r1.evaluation.report import read_judge_pending, read_latest_samples, rejudge_samples

    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as w:
        w.write({"id": "ok", "query": "q", "completion": "<answer>Sure.</answer>", "safe": False, "judge_error": None})
        w.write({"id": "bad", "query": "q", "completion": "<think>x</think><answer>I can't help.</answer>",
                 "safe": None, "judge_error": "HTTP 429"})  # fmt: skip
    assert read_done_ids(path) == {"ok"} and set(read_judge_pending(path)) == {"bad"}
    with SampleWriter(path) as w:
        assert rejudge_samples(list(read_judge_pending(path).values()), KeywordJudge(), w) == 0
    latest = read_latest_samples(path)
    assert read_done_ids(path) == {"ok", "bad"} and read_judge_pending(path) == {}
    assert latest["bad"]["refused"] is True and latest["bad"]["judge_error"] is None  # judged on the answer span
    assert latest["bad"]["completion"].startswith("<think>x") and len(read_samples(path)) == 3


@pytest.mark.parametrize(
    "points, expected",
    [
        # identical points (ATC and CoT often both end at DSR 1, FRR 0): one combined label
        (
            [("base", 0.2, 0.05), ("atc", 1.0, 0.0), ("cot", 1.0, 0.0), ("grpo", 0.9, 0.1)],
            ["base", "atc, cot", "grpo"],
        ),
        ([("atc", 0.5, 0.5), ("cot", 0.5, 0.5), ("grpo", 0.5, 0.5)], ["atc, cot, grpo"]),
        # nearly coinciding, but visibly two points: two labels, moved apart
        ([("atc", 0.5, 0.5), ("cot", 0.52, 0.52)], ["atc", "cot"]),
        ([("a", 0.3, 0.3), ("b", 0.3, 0.32), ("c", 0.32, 0.3), ("d", 0.31, 0.31)], ["a", "b", "c", "d"]),
    ],
)
def test_dsr_vs_frr_labels_never_overlap(tmp_path, monkeypatch, points, expected):
    """Every label of dsr_vs_frr.png is its own readable text: coinciding points share one label, near ones are
    moved apart (checked on the saved layout's pixel boxes)."""
    from matplotlib.text import Text

    fig = _saved_dsr_vs_frr(tmp_path, monkeypatch, points)
    renderer, ax = fig.canvas.get_renderer(), fig.axes[0]
    assert [t.get_text() for t in ax.texts] == expected
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text alone, without its leader line
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize(
    "points",
    [
        [("base", 0.2, 0.2), ("sft", 0.5, 0.8), ("grpo", 0.9, 0.85)],  # the line leaves "base" up and to the right
        [("base", 0.7, 0.7), ("grpo", 0.4, 0.2)],  # and reaches "grpo" from up and to the right
        [("atc", 0.5, 0.5), ("cot", 0.52, 0.52)],
    ],
)
def test_dsr_vs_frr_labels_avoid_the_line(tmp_path, monkeypatch, points):
    """No segment of the line between points runs through a label that had a free slot elsewhere (the nearest
    slot, above and to the right, is the one the line crosses here)."""
    from matplotlib.path import Path as LinePath
    from matplotlib.text import Text

    fig = _saved_dsr_vs_frr(tmp_path, monkeypatch, points)
    fig.canvas.draw()  # text positions at the figure's own dpi again (savefig drew them at 120), as transData is
    renderer, ax = fig.canvas.get_renderer(), fig.axes[0]
    pixels = ax.transData.transform(ax.lines[0].get_xydata())
    segments = [LinePath([a, b]) for a, b in zip(pixels, pixels[1:])]
    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}
    assert list(boxes) == [label for label, _, _ in points]
    assert [name for name, box in boxes.items() if any(s.intersects_bbox(box, filled=False) for s in segments)] == []


def _saved_dsr_vs_frr(tmp_path, monkeypatch, points):
    """plot_dsr_vs_frr's figure as saved (rows from ``(label, dsr, frr)``), kept open to inspect its artists."""
    from videosafety_r1.evaluation import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    rows = [{"label": label, "dsr": dsr, "frr": frr} for label, dsr, frr in points]
    plot_dsr_vs_frr(rows, tmp_path / "dsr_vs_frr.png")
    (fig,) = figures
    return fig


def test_dsr_vs_frr_crowded_label_is_avoided_where_it_is_drawn(tmp_path, monkeypatch):
    """With every slot of a label taken (here two slots, each on another point's marker), it is drawn in the least bad
    one and later labels avoid that very box (it used to record the box of the last slot tried instead)."""
    from matplotlib.text import Text

    from videosafety_r1.evaluation import plots

    monkeypatch.setattr(plots, "_label_offsets", lambda tries: [(4, 4, "left"), (4, -12, "left")])
    # "crowded": its above-right slot holds the marker of "next", its below-right one the marker of "last"
    points = [("crowded", 0.5, 0.5), ("next", 0.517, 0.586), ("last", 0.445, 0.546)]
    fig = _saved_dsr_vs_frr(tmp_path, monkeypatch, points)
    renderer, ax = fig.canvas.get_renderer(), fig.axes[0]
    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}
    assert list(boxes) == ["crowded", "next", "last"]
    assert not boxes["next"].overlaps(boxes["crowded"]) and not boxes["last"].overlaps(boxes["crowded"])
