"""Batched ROUGE and WER: parity with rouge-score, multilingual identity, published accuracy formula."""

import random
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from videosafety_r1.rewards import accuracy_reward, rouge_scores, word_error_rates
from videosafety_r1.rewards import rouge as rouge_module

SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
WORDS = (
    "the a an running runs ran cats cat dogs dog jumped jumping harmful safety videos video is not I can't help "
    "with that request because it's illegal dangerous connection connected organization organize 42 3.5 x_y "
    "caresses ponies relational generously Über naïve"
).split()


def reference_scores(refs, hyps):
    rows = [SCORER.score(r, h) for r, h in zip(refs, hyps)]
    return torch.tensor([[s[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")] for s in rows], dtype=torch.float64)


def random_text(rng, max_words):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_words)))


def test_parity_random_text_seeded():
    rng = random.Random(0)
    refs = [random_text(rng, 60) for _ in range(200)] + ["", "abc", "x y z", "a " * 70]
    hyps = [random_text(rng, 60) for _ in range(200)] + ["abc", "", "z y x", "a " * 65]
    ours = rouge_scores(refs, hyps, tokenizer="rouge_score")
    assert ours.shape == (len(refs), 3)
    assert (ours - reference_scores(refs, hyps)).abs().max() <= 1e-6


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=80), st.text(max_size=80)), min_size=1, max_size=5))
def test_parity_hypothesis_any_unicode(pairs):
    refs, hyps = (list(x) for x in zip(*pairs))
    assert (rouge_scores(refs, hyps, "rouge_score") - reference_scores(refs, hyps)).abs().max() <= 1e-6


def test_parity_long_texts_and_ripple_carry(monkeypatch):
    rng = random.Random(1)
    refs = [random_text(rng, 300) for _ in range(6)]
    hyps = [random_text(rng, 250) for _ in range(6)]
    expected = reference_scores(refs, hyps)
    assert (rouge_scores(refs, hyps, "rouge_score") - expected).abs().max() <= 1e-6
    monkeypatch.setattr(rouge_module, "_MAX_LOOKAHEAD_WORDS", 1)  # force the word-by-word carry path
    assert (rouge_scores(refs, hyps, "rouge_score") - expected).abs().max() <= 1e-6


@pytest.mark.parametrize(
    "text",
    [
        "视频中的内容是有害的，我不能提供帮助。",  # Chinese
        "この動画は危険なので、お手伝いできません。",  # Japanese
        "هذا الفيديو ضار ولا يمكنني المساعدة",  # Arabic
        "הסרטון הזה מזיק ואני לא יכול לעזור",  # Hebrew
        "यह वीडियो हानिकारक है, मैं मदद नहीं कर सकता",  # Hindi
        "Это видео вредно, я не могу помочь",  # Russian
        "이 영상은 해롭기 때문에 도와드릴 수 없습니다",  # Korean
        "วิดีโอนี้เป็นอันตราย ฉันช่วยไม่ได้",  # Thai
        "Bu video zararlı, yardım edemem",  # Turkish
        "I cannot help with that request.",
    ],
)
def test_multilingual_identity_scores_one(text):
    assert rouge_scores([text], [text]).tolist() == [[1.0, 1.0, 1.0]]
    assert rouge_scores([text], ["completely different words"]).sum() == 0.0


def test_multilingual_partial_overlap_in_chinese():
    scores = rouge_scores(["我不能帮助你"], ["我不能帮你"])[0]
    assert 0.0 < scores[1] < scores[0] < 1.0


def test_multilingual_equals_parity_on_plain_english():
    rng = random.Random(2)
    refs = [re.sub(r"[^\x00-\x7f]", "", random_text(rng, 40)) for _ in range(50)]
    hyps = [re.sub(r"[^\x00-\x7f]", "", random_text(rng, 40)) for _ in range(50)]
    assert torch.equal(rouge_scores(refs, hyps, "multilingual"), rouge_scores(refs, hyps, "rouge_score"))


def test_unknown_tokenizer_and_length_mismatch():
    with pytest.raises(ValueError):
        rouge_scores(["a"], ["a"], tokenizer="spacy")
    with pytest.raises(ValueError):
        rouge_scores(["a"], [])
    assert rouge_scores([], []).shape == (0, 3)


def published_wer(reference, hypothesis):
    r, h = reference.split(), hypothesis.split()
    d = [[0] * (len(h) + 1) for _ in range(len(r) + 1)]
    for i in range(len(r) + 1):
        d[i][0] = i
    for j in range(len(h) + 1):
        d[0][j] = j
    for i in range(1, len(r) + 1):
        for j in range(1, len(h) + 1):
            same = r[i - 1] == h[j - 1]
            d[i][j] = d[i - 1][j - 1] if same else 1 + min(d[i - 1][j], d[i][j - 1], d[i - 1][j - 1])
    return d[-1][-1] / max(1, len(r))


def test_wer_matches_published_dynamic_programming():
    rng = random.Random(3)
    refs = [random_text(rng, 15) for _ in range(80)]
    hyps = [random_text(rng, 15) for _ in range(80)]
    expected = torch.tensor([published_wer(r, h) for r, h in zip(refs, hyps)], dtype=torch.float64)
    assert torch.allclose(word_error_rates(refs, hyps), expected)


def published_accuracy(content, solution, problem_type):
    """The published per-row formula with rouge-score (stemmed), as the parity target."""

    def tag(name, text):
        m = re.search(rf"<{name}>\s*(.*?)\s*</{name}>", text, re.DOTALL)
        return m.group(1).strip() if m else None

    out, gt = tag("answer", content) or "", tag("answer", solution) or ""
    if problem_type == "free-form":
        s = SCORER.score(gt, out)
        return max(0.0, min(1.0, (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3))
    if problem_type == "OCR":
        return max(0.0, min(1.0, 1 - published_wer(gt, out)))
    s = SCORER.score(gt, out)
    rouge = (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3
    c_v = float(tag("vidType", content) == tag("vidType", solution))
    c_t = float(tag("textType", content) == tag("textType", solution))
    return (0.1 + (1 - c_v * c_t) * 0.4) * rouge + c_v + c_t


def test_accuracy_equals_published_formula_in_parity_mode():
    rng = random.Random(4)
    comps, sols = [], []
    for _ in range(60):
        a, b = random_text(rng, 30), random_text(rng, 30)
        v, t = rng.choice("01"), rng.choice("01")
        sols.append(f"<answer>{a}</answer><vidType>{v}</vidType><textType>{t}</textType>")
        comps.append(
            f"<think>x</think><answer>{b}</answer><vidType>{rng.choice('01')}</vidType><textType>{t}</textType>"
        )
    types = [["free-form-and-choice", "free-form", "OCR"][i % 3] for i in range(60)]
    ours = accuracy_reward(comps, sols, types, rouge_tokenizer="rouge_score")
    expected = [published_accuracy(c, s, p) for c, s, p in zip(comps, sols, types)]
    assert max(abs(x - y) for x, y in zip(ours, expected)) <= 1e-6


def test_stem_cache_reset_keeps_scores(monkeypatch):
    from videosafety_r1.rewards import tokenize

    refs, hyps = ["the cats were running home"], ["a cat runs home"]
    expected = reference_scores(refs, hyps)
    monkeypatch.setattr(tokenize, "_SHARED_IDS", {"rouge_score": tokenize.TokenIds(max_size=1)})
    for _ in range(3):  # every call past the first resets the tiny cache
        assert (rouge_scores(refs, hyps, "rouge_score") - expected).abs().max() <= 1e-6


def test_split_terms_reuse_the_tag_parse():
    from videosafety_r1.rewards import dra_rouge_reward, parse_tags, textual_label_reward, visual_label_reward

    comps = [f"<answer>x {i}</answer><vidType>1</vidType><textType>0</textType>" for i in range(5)]
    sols = ["<answer>x</answer><vidType>1</vidType><textType>1</textType>"] * 5
    visual_label_reward(comps, sols, "free-form-and-choice")
    misses = parse_tags.cache_info().misses
    textual_label_reward(comps, sols, "free-form-and-choice")
    dra_rouge_reward(comps, sols, "free-form-and-choice")
    assert parse_tags.cache_info().misses == misses


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rouge_on_cuda_equals_cpu():
    rng = random.Random(5)
    refs = [random_text(rng, 200) for _ in range(64)]
    hyps = [random_text(rng, 200) for _ in range(64)]
    gpu = rouge_scores(refs, hyps, "rouge_score", device="cuda")
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), rouge_scores(refs, hyps, "rouge_score"))
    assert torch.equal(word_error_rates(refs, hyps, device="cuda").cpu(), word_error_rates(refs, hyps))
