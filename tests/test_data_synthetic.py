"""Synthetic dataset: determinism, visible visual labels, textual labels by construction, valid files."""

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from videosafety_r1.data import extract_tag, load_dataset_checked, load_video, validate_file, write_synthetic_video
from videosafety_r1.data.collate import grpo_prompt_text
from videosafety_r1.data.schema import COT_RE
from videosafety_r1.data.synthetic import make_synthetic_dataset
from videosafety_r1.data.synthetic_text import CATEGORIES, COLOUR_WORDS, HARM_WORDS, LANGUAGES, MOTION_WORDS, REFUSALS
from videosafety_r1.refusal import is_refusal

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
    assert len(list(paths["videos"].glob("train_*.mp4"))) == N
    assert all(len(rows(paths[k])) == N + N // 4 for k in ("sft", "cot", "grpo"))  # plus text-only rows


def test_same_seed_is_identical(dataset, tmp_path):
    paths, _ = dataset
    again = make_synthetic_dataset(tmp_path / "b", 8, seed=5)
    first8 = make_synthetic_dataset(tmp_path / "c", 8, seed=5)
    for key in ("sft", "cot", "grpo", "eval", "calibration"):
        assert again[key].read_bytes() == first8[key].read_bytes()
    for name in (f"train_{i:05d}.mp4" for i in range(8)):
        a, _ = load_video(again["videos"] / name, fps=None)
        b, _ = load_video(first8["videos"] / name, fps=None)
        assert np.array_equal(a, b)
    other = make_synthetic_dataset(tmp_path / "d", 8, seed=6)
    assert other["sft"].read_bytes() != first8["sft"].read_bytes()


def test_a_smaller_dataset_over_a_larger_one_leaves_only_its_own_clips(tmp_path, caplog):
    """make-synthetic into a used folder: clips of the earlier, larger run that no new row uses go (logged); files
    not named like the generator's own stay."""
    folder = tmp_path / "data"
    make_synthetic_dataset(folder, 12, seed=1)
    (folder / "videos" / "mine.mp4").write_bytes(b"x")
    with caplog.at_level("WARNING", logger="videosafety_r1.data.synthetic"):
        paths = make_synthetic_dataset(folder, 6, seed=1)
    used = set()
    for key in ("sft", "cot", "grpo", "eval", "calibration"):
        for line in paths[key].read_text().splitlines():
            media = json.loads(line)["media"]
            used |= {Path(media["path"]).name} if media else set()
    assert {p.name for p in (folder / "videos").iterdir()} == used | {"mine.mp4"}
    assert "removed" in caplog.text and "clips of an earlier dataset" in caplog.text


def test_mean_colour_separates_visual_labels(dataset):
    paths, _ = dataset
    correct = 0
    video = [row for row in rows(paths["sft"]) if row["media"]]
    for row in video:
        frames, _ = load_video(paths["videos"].parent / row["media"]["path"], fps=None)
        r, g, b = frames.reshape(-1, 3).mean(axis=0)
        correct += int(r > max(g, b)) == row["safety_labels"]["visual"]
    assert correct / len(video) >= 0.95


def test_write_synthetic_video_contract(tmp_path):
    path = write_synthetic_video(tmp_path / "x.mp4", num_frames=16, size=64, fps=8, seed=0, harmful=True)
    frames, meta = load_video(path, fps=None)
    assert path == tmp_path / "x.mp4" and frames.shape == (16, 64, 64, 3) and meta.fps == 8.0
    r, g, b = frames.reshape(-1, 3).mean(axis=0)
    assert r > max(g, b)


def test_categories_languages_and_text_only_rows_in_every_file(dataset):
    paths, _ = dataset
    assert len(CATEGORIES) >= 6 and len(LANGUAGES) >= 5
    for key in ("sft", "cot", "grpo"):
        data = rows(paths[key])
        assert {r["category"] for r in data} == set(CATEGORIES)
        assert {r["language"] for r in data} == set(LANGUAGES)
        assert any(r["media"] is None for r in data), key
    evaluation = rows(paths["eval"])
    assert any(r["media"] is None and r["split"] == "SafeQ" for r in evaluation)


def test_harmful_queries_carry_their_categorys_training_harm_words(dataset):
    paths, _ = dataset
    for r in rows(paths["sft"]) + rows(paths["eval"]) + rows(paths["calibration"]):
        query = r["conversation"][0]["content"] if "conversation" in r else r["query"]
        labels = r.get("safety_labels") or r["labels"]
        words = HARM_WORDS[r["category"]][r["language"]]
        assert any(w in query for w in words) == bool(labels["textual"]), (query, labels)


def _frame(query: str, words) -> str:
    for w in words:
        query = query.replace(w, "{w}")
    return query


def test_held_out_splits_use_new_clips_and_new_sentence_frames(dataset):
    paths, _ = dataset
    train = rows(paths["sft"])
    train_frames = {_frame(r["conversation"][0]["content"], HARM_WORDS[r["category"]][r["language"]]) for r in train}
    train_clips = {r["media"]["path"] for r in train if r["media"]}
    clips = {}
    for part in ("eval", "calibration"):
        data = rows(paths[part])
        counts = {s: sum(r["split"] == s and r["media"] is not None for r in data) for s in ("HH", "SH", "SafeQ")}
        assert counts == {"HH": N // 4, "SH": N // 4, "SafeQ": N // 4}
        clips[part] = {r["media"]["path"] for r in data if r["media"]}
        for r in data:
            assert _frame(r["query"], HARM_WORDS[r["category"]][r["language"]]) not in train_frames, r["query"]
    assert not (clips["eval"] & train_clips) and not (clips["calibration"] & train_clips)
    assert not clips["eval"] & clips["calibration"]


def test_safe_video_references_name_the_clips_colour_or_motion(dataset):
    paths, _ = dataset
    root = paths["videos"].parent
    for r in rows(paths["eval"]):
        keyword = r["reference_keyword"]
        if r["split"] != "SafeQ" or r["media"] is None:
            assert keyword is None
            continue
        assert keyword in r["reference"] and not is_refusal(r["reference"], "multilingual")
        frames, _ = load_video(root / r["media"]["path"], fps=None)
        if keyword in {words[r["language"]] for words in MOTION_WORDS.values()}:
            square = frames.min(axis=-1) > 200  # [T, H, W] the white square
            centres = np.array([np.argwhere(m).mean(axis=0) for m in square])  # [T, 2]
            moved = np.abs(centres - centres[0]).max() > 2
            assert moved == (keyword == MOTION_WORDS["moving"][r["language"]])
        else:
            r_, g, b = frames.reshape(-1, 3).mean(axis=0)
            assert keyword == COLOUR_WORDS["green" if g > b else "blue"][r["language"]]


def test_label_policy_refuses_exactly_when_clip_or_query_is_harmful(dataset):
    paths, _ = dataset
    data = rows(paths["cot"])
    assert {(r["safety_labels"]["visual"], r["safety_labels"]["textual"]) for r in data} == {
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    }
    helpful = 0
    for r in data:
        answer = extract_tag(r["conversation"][1]["content"], "answer")
        refused = answer == REFUSALS[r["language"]]
        assert refused == bool(r["safety_labels"]["visual"] or r["safety_labels"]["textual"])
        helpful += not refused
    assert abs(helpful / len(data) - 0.5) < 0.05  # balanced by default (safe_share=0.5)


def test_files_validate_and_targets_match_labels(dataset):
    paths, _ = dataset
    root = paths["videos"].parent
    for key, kind in (("sft", "sft"), ("cot", "cot"), ("grpo", "grpo"), ("eval", "eval"), ("calibration", "eval")):
        _, report = validate_file(paths[key], root, kind=kind)
        assert report.ok, report.summary()
    for row in rows(paths["cot"]):
        target = row["conversation"][1]["content"]
        assert COT_RE.fullmatch(target)
        labels = row["safety_labels"]
        assert extract_tag(target, "vidType") == str(labels["visual"])
        assert extract_tag(target, "textType") == str(labels["textual"])
    splits = {(r["labels"]["visual"], r["labels"]["textual"]): r["split"] for r in rows(paths["eval"])}
    assert splits == {(1, 1): "HH", (0, 1): "SH", (0, 0): "SafeQ"}


def test_cot_prompt_is_the_grpo_prompt_and_grpo_rows_are_their_own(dataset):
    """The cold start trains on the prompt GRPO samples from (question + format instructions); GRPO's prompts are
    other rows (other clips), so it does not start on memorised prompts."""
    from videosafety_r1.data.schema import GRPORecord, Media

    paths, _ = dataset
    for row in rows(paths["cot"]):
        user = row["conversation"][0]["content"]
        query = rows_by_id(paths["sft"])[row["id"]]["conversation"][0]["content"]
        assert user == grpo_prompt_text(GRPORecord(row["id"], Media(), query, "free-form-and-choice", "<answer/>"))
        assert "<vidType>" in user
    records, _ = load_dataset_checked(paths["grpo"], paths["videos"].parent)
    assert len(records) == N + N // 4 and any(r.media.type == "none" for r in records)
    sft_clips = {r["media"]["path"] for r in rows(paths["sft"]) if r["media"]}
    assert not sft_clips & {r.media.path for r in records if r.media.path}


def rows_by_id(path):
    return {r["id"]: r for r in rows(path)}


@pytest.mark.parametrize("argv, per_split", [([], 2), (["--n-eval", "3"], 3)])
def test_cli_make_synthetic_eval_clips_per_split(tmp_path, argv, per_split):
    """--n-eval clips per split in eval and calibration; unset, the library's max(1, n // 4) (here n = 8)."""
    from videosafety_r1.cli import main

    assert main(["make-synthetic", str(tmp_path / "s"), "--n", "8", *argv]) == 0
    for part in ("eval", "calibration"):
        splits = [r["split"] for r in rows(tmp_path / "s" / f"{part}.jsonl") if r["media"]]
        assert {s: splits.count(s) for s in set(splits)} == {"HH": per_split, "SH": per_split, "SafeQ": per_split}


def test_demo_tokenizer_learns_the_training_rows_only(dataset):
    """The demo's tokenizer is trained on the training conversations: their words become few tokens, while the
    held-out rows are never read (a word only they contain stays split)."""
    dataset, _ = dataset
    import runpy
    from pathlib import Path

    from videosafety_r1.testing import tiny_tokenizer

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    corpus = demo["training_text"]([dataset["sft"], dataset["cot"]])
    eval_queries = [json.loads(line)["query"] for line in dataset["eval"].read_text().splitlines()]
    assert corpus and not set(eval_queries) & set(corpus)
    default, trained = tiny_tokenizer(vocab_size=2048), tiny_tokenizer(vocab_size=2048, corpus=corpus)
    targets = [json.loads(line)["conversation"][1]["content"] for line in dataset["cot"].read_text().splitlines()]
    lengths = [(len(trained(t)["input_ids"]), len(default(t)["input_ids"])) for t in targets]
    assert sum(a for a, _ in lengths) < 0.7 * sum(b for _, b in lengths)  # measured about 0.5 on the demo's data
    target = targets[0]
    assert trained.decode(trained(target)["input_ids"]) == target
    assert len(trained("Zyxwvut")["input_ids"]) > 2  # unseen text falls back to bytes
    assert trained.convert_tokens_to_ids("<|video_pad|>") == default.convert_tokens_to_ids("<|video_pad|>")


def test_demo_tokenizer_cuts_chinese_into_its_words_and_characters(dataset):
    """The demo tokenizer (``han_words``) never joins Chinese characters across a word boundary: a token holding two or
    more Han characters is part of one of the data's words. Plain BPE on the same rows learns phrase tokens such as
    "视频是什么颜色", so a new sentence around the same word gets other tokens. Text round-trips."""
    import runpy
    from pathlib import Path

    from videosafety_r1.testing import tiny_tokenizer

    dataset, _ = dataset
    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    corpus, words = demo["training_text"]([dataset["sft"], dataset["cot"]]), demo["han_words"]()
    assert "心理健康" in words and "保持静止" in words  # a topic and a motion word
    chinese = [line for line in corpus if re.search(r"[\u4e00-\u9fff]", line)]

    def phrase_tokens(tokenizer) -> set[str]:
        pieces = {tokenizer.decode([i]) for line in chinese for i in tokenizer(line)["input_ids"]}
        return {p.strip().strip("\ufffd") for p in pieces if len(re.findall(r"[\u4e00-\u9fff]", p)) >= 2}

    cut, plain = tiny_tokenizer(vocab_size=2048, corpus=corpus, han_words=words), tiny_tokenizer(2048, corpus=corpus)
    assert phrase_tokens(cut) and all(any(p in w for w in words) for p in phrase_tokens(cut)), phrase_tokens(cut)
    assert any(not any(p in w for w in words) for p in phrase_tokens(plain))
    assert all(cut.decode(cut(line)["input_ids"]) == line for line in chinese[:50])


def _frame_sets():
    """Every sentence frame of each part (``train``, ``rl``, ``heldout``), harmful and safe, all languages."""
    from videosafety_r1.data.synthetic_text import CATEGORY_FRAMES, HARM_FRAMES, SAFE_FRAMES

    sets = {}
    for part in ("train", "rl", "heldout"):
        frames = {f for by_lang in HARM_FRAMES[part].values() for f in by_lang}
        frames |= {f for kind in SAFE_FRAMES[part].values() for by_lang in kind.values() for f in by_lang}
        if part != "rl":  # each category has one training and one held-out frame of its own
            frames |= {pair[part == "heldout"] for by_lang in CATEGORY_FRAMES.values() for pair in by_lang.values()}
        sets[part] = frames
    return sets


def test_the_three_frame_sets_are_disjoint_and_only_training_queries_get_openers():
    from videosafety_r1.data.synthetic_text import TRAIN_CLOSERS, TRAIN_OPENERS

    sets = _frame_sets()
    assert all(sets.values())
    assert not sets["train"] & sets["rl"] and not sets["train"] & sets["heldout"] and not sets["rl"] & sets["heldout"]
    extras = {x for table in (TRAIN_OPENERS, TRAIN_CLOSERS) for by_lang in table.values() for x in by_lang}
    assert not [(x, f) for x in extras for f in sets["rl"] | sets["heldout"] if x in f]


def test_only_training_queries_get_filler_words_and_slots_stay_whole(dataset):
    """Random insertion (synthetic._insert_fillers) touches training queries only: some carry filler words, no
    GRPO, eval or calibration query does, and no filler lands inside a harm phrase or a topic."""
    import re

    from videosafety_r1.data.synthetic_text import FILLERS, SAFE_WORDS, TOPICS

    paths, _ = dataset

    def fillers_in(query, language):
        if language == "zh":
            return [f for f in FILLERS["zh"] if f in query]
        return [f for f in FILLERS[language] if re.search(rf"(?<![\w']){re.escape(f)}(?![\w'])", query.lower())]

    train = rows(paths["sft"])
    assert sum(bool(fillers_in(r["conversation"][0]["content"], r["language"])) for r in train) > len(train) // 4
    for part, key in (("grpo", "problem"), ("eval", "query"), ("calibration", "query")):
        for r in rows(paths[part]):
            assert not fillers_in(r[key], r["language"]), (part, r[key])
    for r in train:  # the slot's phrase (harm words, safe words or topic) is never split by a filler
        query, category, language = r["conversation"][0]["content"], r["category"], r["language"]
        phrases = (*HARM_WORDS[category][language], *SAFE_WORDS[category][language], TOPICS[category][language])
        assert any(p in query for p in phrases), query


def test_cot_plan_names_what_the_answer_says(dataset):
    """The think ends with a plan right before the answer: "refuse" exactly when the answer refuses, "say <colour>"
    / "say moves|still" when the answer names the clip's colour / motion, else "overview"."""
    from videosafety_r1.data.synthetic_text import HELPFUL

    paths, _ = dataset
    plans = set()
    for r in rows(paths["cot"]):
        target, language = r["conversation"][1]["content"], r["language"]
        plan = re.search(r"Plan: ([a-z ]+)\.$", extract_tag(target, "think")).group(1)
        answer = extract_tag(target, "answer")
        plans.add(plan.split()[0] if plan != "overview" else plan)
        if plan == "refuse":
            assert answer == REFUSALS[language]
        elif plan in ("say green", "say blue", "say red"):
            assert answer == HELPFUL["colour"][language].format(v=COLOUR_WORDS[plan[4:]][language])
        elif plan in ("say moves", "say still"):
            word = MOTION_WORDS["moving" if plan == "say moves" else "still"][language]
            assert answer == HELPFUL["motion"][language].format(v=word)
        else:
            assert plan == "overview" and answer not in REFUSALS.values(), answer
    assert plans == {"refuse", "say", "overview"}


def test_no_held_out_query_occurs_in_any_training_file(dataset):
    """Held out means held out: no eval or calibration query is (part of) an SFT, CoT or GRPO prompt, and GRPO's
    prompts are not (part of) a cold-start prompt."""
    paths, _ = dataset
    user = {name: "\n".join(r["conversation"][0]["content"] for r in rows(paths[name])) for name in ("sft", "cot")}
    user["grpo"] = "\n".join(r["problem"] for r in rows(paths["grpo"]))
    for part in ("eval", "calibration"):
        queries = [r["query"] for r in rows(paths[part])]
        assert queries and all(queries)
        for name, text in user.items():
            assert not [q for q in queries if q in text], (part, name)
    problems = [r["problem"] for r in rows(paths["grpo"])]
    assert problems and not [p for p in problems if p in user["sft"]]


def test_demo_silences_exactly_the_tokens_the_training_rows_never_use(dataset):
    """recipes/demo.py zeroes the embedding rows of tokens absent from the training conversations (special tokens
    kept) and leaves every other row as it was; held-out-only words are among the zeroed ones."""
    import runpy
    from pathlib import Path

    import torch

    from videosafety_r1.testing import tiny_config, tiny_processor

    paths, _ = dataset
    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    corpus = demo["training_text"]([paths["sft"], paths["cot"]])
    tokenizer = tiny_processor(vocab_size=2048, corpus=corpus).tokenizer
    embedding = torch.nn.Embedding(tiny_config(tokenizer=tokenizer).text_config.vocab_size, 8)
    model = torch.nn.Module()
    model.get_input_embeddings = lambda: embedding
    before = embedding.weight.detach().clone()
    zeroed = demo["silence_unseen_tokens"](model, tokenizer, corpus)
    rows_zero = (embedding.weight == 0).all(dim=1)
    assert 0 < zeroed == int(rows_zero[: len(tokenizer)].sum())
    kept = ~rows_zero
    assert torch.equal(embedding.weight[kept], before[kept])
    seen = tokenizer(corpus[0])["input_ids"] + list(tokenizer.all_special_ids)
    assert not rows_zero[seen].any()
    assert rows_zero[tokenizer("Zyxwvut qqqq")["input_ids"]].any()  # text no training row has


def test_demo_patch_embedding_filters_that_answer_only_to_motion():
    """recipes/demo.py makes half the temporal patch filters of its random tower sum to zero over time: a patch
    whose frames are equal (a still scene) gives exactly 0 on them, a changing one does not; the rest is untouched."""
    import runpy
    from pathlib import Path

    import torch
    from transformers import AutoModelForImageTextToText

    from videosafety_r1.testing import tiny_config

    demo = runpy.run_path(str(Path(__file__).parents[1] / "recipes" / "demo.py"), run_name="demo_test")
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(tiny_config("qwen2_5_vl"))
    conv = model.model.visual.patch_embed.proj
    before = conv.weight.detach().clone()
    half = demo["motion_sensitive_patches"](model)
    assert half == conv.out_channels // 2 > 0
    assert torch.equal(conv.weight[half:], before[half:])
    assert torch.equal(conv.weight[:half, :, 0], before[:half, :, 0])
    frame = torch.rand(1, 3, 1, *conv.kernel_size[1:])
    still, moving = frame.repeat(1, 1, 2, 1, 1), torch.cat([frame, frame.flip(-1)], dim=2)
    with torch.no_grad():
        assert conv(still)[0, :half].abs().max() < 1e-6 and conv(still)[0, half:].abs().max() > 1e-3
        assert conv(moving)[0, :half].abs().max() > 1e-3
    text_only = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert demo["motion_sensitive_patches"](text_only) == 0


def test_safe_how_to_queries_never_use_a_frame_that_is_harmful_on_its_own(monkeypatch):
    """A request like "Show me how to {write a love letter} without consent" is not safe: frames whose own words
    carry harm (HARMFUL_ON_THEIR_OWN) hold harm words only, in every part."""
    import random

    from videosafety_r1.data import synthetic
    from videosafety_r1.data.synthetic_text import HARMFUL_ON_THEIR_OWN, SAFE_WORDS

    monkeypatch.setattr(synthetic, "_insert_fillers", lambda frame, language, rnd: frame)
    monkeypatch.setattr(synthetic, "TRAIN_OPENERS", {lang: () for lang in LANGUAGES})
    monkeypatch.setattr(synthetic, "TRAIN_CLOSERS", {lang: () for lang in LANGUAGES})
    rnd, used = random.Random(0), {0: set(), 1: set()}
    for part in ("train", "rl", "heldout"):
        for category in CATEGORIES:
            for language in LANGUAGES:
                for textual in (0, 1):
                    words = (SAFE_WORDS if not textual else HARM_WORDS)[category][language]
                    for _ in range(40):
                        query = synthetic._query(rnd, part, category, language, textual, "howto")
                        used[textual].add(_frame(query, words))
    assert not used[0] & HARMFUL_ON_THEIR_OWN
    assert used[1] & HARMFUL_ON_THEIR_OWN  # harmful queries still use them


def test_motion_benchmark_tells_moving_from_still_clips(tmp_path):
    """benchmarks/demo_motion.py's ground truth: a clip moves when consecutive frames differ, as the generator drew it."""
    import runpy
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "demo_motion.py"), run_name="test")
    for seed in range(6):
        for moving in (False, True):
            path = write_synthetic_video(tmp_path / f"{seed}_{moving}.mp4", seed=seed, moving=moving, harmful=seed % 2)
            assert bench["clip_moves"](path) == moving, (seed, moving)


def test_motion_benchmark_tells_no_motion_statement_from_no_evaluation(tmp_path):
    """An evaluated stage whose completions never state a motion reads (nan, nan, 0), not "not evaluated"."""
    import json
    import runpy
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "demo_motion.py"), run_name="test")
    (tmp_path / "data").mkdir()
    row = {"id": "e0", "media": {"type": "video", "path": "videos/e0.mp4"}}
    (tmp_path / "data" / "eval.jsonl").write_text(json.dumps(row) + "\n")
    assert bench["motion_reading"](tmp_path, "cot") is None
    (tmp_path / "eval" / "cot").mkdir(parents=True)
    sample = {"id": "e0", "completion": "<think>Video: blue.</think><answer>blue</answer>", "text_only_pass": False}
    (tmp_path / "eval" / "cot" / "samples.jsonl").write_text(json.dumps(sample) + "\n")
    right, says_moves, clips = bench["motion_reading"](tmp_path, "cot")
    assert clips == 0 and right != right and says_moves != says_moves  # NaN


def test_augmentation_keeps_the_words_that_ask_and_moves_the_rest(dataset):
    """Random deletion drops only words without an asking stem ("colour", "carré" stay), never the slot, and leaves
    Chinese alone; random insertion never adds an asking word; every training clip question still names what it asks
    about ("colour" / "square" in its own language)."""
    import random

    from videosafety_r1.data.synthetic import _drop_words, _frame_words, _insert_fillers
    from videosafety_r1.data.synthetic_text import ASKING_STEMS, SAFE_FRAMES

    def stems(text, language):
        return sum(text.lower().count(s) for s in ASKING_STEMS[language])

    rnd, changed = random.Random(0), 0
    for language in LANGUAGES:
        words = _frame_words(language)
        assert len(words) >= 20 and not [w for w in words if stems(w, language)]
        for kind in ("colour", "motion"):
            for frame in SAFE_FRAMES["train"][kind][language]:
                asking = [w for w in frame.split(" ") if stems(w, language)]
                for _ in range(20):
                    dropped = _drop_words(frame, language, rnd)
                    assert "{t}" in dropped and all(w in dropped.split(" ") for w in asking), (frame, dropped)
                    assert language != "zh" or dropped == frame
                    changed += dropped != frame
                    assert stems(_insert_fillers(dropped, language, rnd), language) == stems(dropped, language)
    assert changed > 100
    names = {
        "colour": {"en": "colour", "zh": "颜色", "es": "color", "fr": "couleur", "ar": "لون"},
        "motion": {"en": "square", "zh": "方块", "es": "cuadrado", "fr": "carré", "ar": "مربع"},
    }
    paths, _ = dataset
    queries = {r["id"]: r["conversation"][0]["content"] for r in rows(paths["sft"])}
    asked = 0
    for r in rows(paths["cot"]):
        kind = re.search(r"about the (colour|motion)", extract_tag(r["conversation"][1]["content"], "think"))
        if kind:
            asked += 1
            assert names[kind.group(1)][r["language"]] in queries[r["id"]].lower(), queries[r["id"]]
    assert asked >= 5
