"""Synthetic dataset: determinism, visible visual labels, textual labels by construction, valid files."""

import json
import time

import numpy as np
import pytest

from videosafety_r1.data import extract_tag, load_dataset_checked, load_video, validate_file, write_synthetic_video
from videosafety_r1.data.collate import grpo_prompt_text
from videosafety_r1.data.schema import COT_RE
from videosafety_r1.data.synthetic import LANGUAGES, OBJECTS, REFUSALS, TEMPLATES, make_synthetic_dataset

N = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    start = time.perf_counter()
    paths = make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "a", N, seed=5)
    elapsed = time.perf_counter() - start
    return paths, elapsed


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_fast_and_complete(dataset):
    paths, elapsed = dataset
    assert elapsed < 10
    assert len(list(paths["videos"].glob("*.mp4"))) == N
    assert all(len(rows(paths[k])) == N for k in ("sft", "cot", "grpo"))


def test_same_seed_is_identical(dataset, tmp_path):
    paths, _ = dataset
    again = make_synthetic_dataset(tmp_path / "b", 8, seed=5)
    first8 = make_synthetic_dataset(tmp_path / "c", 8, seed=5)
    for key in ("sft", "cot", "grpo", "eval"):
        assert again[key].read_bytes() == first8[key].read_bytes()
    for name in (f"clip_{i:05d}.mp4" for i in range(8)):
        a, _ = load_video(again["videos"] / name, fps=None)
        b, _ = load_video(first8["videos"] / name, fps=None)
        assert np.array_equal(a, b)
    other = make_synthetic_dataset(tmp_path / "d", 8, seed=6)
    assert other["sft"].read_bytes() != first8["sft"].read_bytes()


def test_mean_colour_separates_visual_labels(dataset):
    paths, _ = dataset
    correct = 0
    for row in rows(paths["sft"]):
        frames, _ = load_video(paths["videos"].parent / row["media"]["path"], fps=None)
        r, g, b = frames.reshape(-1, 3).mean(axis=0)
        correct += int(r > max(g, b)) == row["safety_labels"]["visual"]
    assert correct / N >= 0.95


def test_write_synthetic_video_contract(tmp_path):
    path = write_synthetic_video(tmp_path / "x.mp4", num_frames=16, size=64, fps=8, seed=0, harmful=True)
    frames, meta = load_video(path, fps=None)
    assert path == tmp_path / "x.mp4" and frames.shape == (16, 64, 64, 3) and meta.fps == 8.0
    r, g, b = frames.reshape(-1, 3).mean(axis=0)
    assert r > max(g, b)


def test_textual_labels_by_construction_in_every_language(dataset):
    paths, _ = dataset
    assert {"en", "zh", "ar"} <= set(LANGUAGES)
    seen = set()
    for row in rows(paths["sft"]):
        lang, textual = row["language"], row["safety_labels"]["textual"]
        harmful, safe = ({t.format(obj=OBJECTS[lang]) for t in group} for group in TEMPLATES[lang])
        query = row["conversation"][0]["content"]
        assert query in (harmful if textual else safe)
        assert query not in (safe if textual else harmful)
        seen.add((lang, textual))
    assert seen == {(lang, t) for lang in LANGUAGES for t in (0, 1)}


def test_files_validate_and_targets_match_labels(dataset):
    paths, _ = dataset
    root = paths["videos"].parent
    for key, kind in (("sft", "sft"), ("cot", "cot"), ("grpo", "grpo"), ("eval", "eval")):
        _, report = validate_file(paths[key], root, kind=kind)
        assert report.ok, report.summary()
    for row in rows(paths["cot"]):
        target = row["conversation"][1]["content"]
        assert COT_RE.fullmatch(target)
        labels = row["safety_labels"]
        assert extract_tag(target, "vidType") == str(labels["visual"])
        assert extract_tag(target, "textType") == str(labels["textual"])
        refused = extract_tag(target, "answer") == REFUSALS[row["language"]]
        assert refused == bool(labels["visual"] or labels["textual"])
    splits = {(r["labels"]["visual"], r["labels"]["textual"]): r["split"] for r in rows(paths["eval"])}
    assert splits == {(1, 1): "HH", (0, 1): "SH", (0, 0): "SafeQ"}


def test_cot_prompt_is_the_grpo_prompt(dataset):
    """The cold start trains on the prompt GRPO samples from (question + format instructions), row for row."""
    paths, _ = dataset
    records, _ = load_dataset_checked(paths["grpo"], paths["videos"].parent)
    grpo = {r.id: r for r in records}
    for row in rows(paths["cot"]):
        user = row["conversation"][0]["content"]
        assert user == grpo_prompt_text(grpo[row["id"]])
        assert user.startswith(grpo[row["id"]].problem) and "<vidType>" in user
