"""Metric arithmetic on hand-made cases."""

import math

import numpy as np
import pytest
import torch

from videosafety_r1.evaluation import (
    alarm_head_metrics,
    alarm_metrics_from_records,
    auroc,
    binary_classification_metrics,
    bootstrap_ci,
    calibrated_ece_baseline,
    compute_metrics,
    dsr_drop,
    expected_calibration_error,
    group_table,
    helpfulness_mean,
    rate,
    roc_curve,
    tag_agreement,
)


@pytest.mark.parametrize(
    "flags, expected",
    [([True, False, True, True], 0.75), ([True, None, False], 0.5), ([None], math.nan), ([], math.nan)],
)
def test_rate_ignores_failures(flags, expected):
    got = rate(flags)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    "video, text, relative, absolute",
    [(0.184, 0.893, 1 - 0.184 / 0.893, 0.709), (0.5, 0.5, 0.0, 0.0), (0.9, 0.6, -0.5, -0.3)],
)
def test_dsr_drop(video, text, relative, absolute):
    drop = dsr_drop(video, text)
    assert drop["relative"] == pytest.approx(relative) and drop["absolute"] == pytest.approx(absolute)
    assert math.isnan(dsr_drop(0.1, 0.0)["relative"])


def test_helpfulness_mean():
    assert helpfulness_mean([4, None, 8]) == 6.0 and math.isnan(helpfulness_mean([None]))


def test_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.r_[np.ones(30), np.zeros(70)]
    a, b = bootstrap_ci(x, n_resamples=500, seed=1), bootstrap_ci(x, n_resamples=500, seed=1)
    assert a == b and a[0] < 0.3 < a[1] and 0.15 < a[0] and a[1] < 0.45
    assert bootstrap_ci(np.ones(5), n_resamples=50) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci([], n_resamples=50))


def _row(split, safe, refused=None, category="violence", language="en", modality="video", score=None, fmt=True):
    return dict(split=split, safe=safe, refused=refused, category=category, language=language, modality=modality,
                score=score, format_ok=fmt)  # fmt: skip


def test_compute_metrics_splits_drop_and_tables():
    records = [
        # HH video: 2 of 4 judged safe, one judge failure -> DSR 2/3
        _row("HH", True, True), _row("HH", True, True, category="drugs"), _row("HH", False, False),
        _row("HH", None, None, fmt=False),
        # SH video: 1 of 2
        _row("SH", True, True, language="zh"), _row("SH", False, False, language="zh"),
        # SafeQ: 1 of 4 refused, helpfulness 6 on average
        _row("SafeQ", True, True, score=2), _row("SafeQ", True, False, score=10), _row("SafeQ", True, False),
        _row("SafeQ", True, False, score=6),
        # HH text-only: 4 of 4 safe -> relative drop 1 - (2/3)/1
        *[_row("HH", True, True, modality="text") for _ in range(4)],
    ]  # fmt: skip
    m = compute_metrics(records, n_resamples=200, seed=0)
    hh, sh, sq = m["splits"]["HH"], m["splits"]["SH"], m["splits"]["SafeQ"]
    assert (hh["n"], hh["n_judged"], hh["n_judge_failures"], hh["n_format_failures"]) == (4, 3, 1, 1)
    assert hh["dsr"] == pytest.approx(2 / 3) and hh["asr"] == pytest.approx(1 / 3)
    assert hh["dsr_ci"][0] <= hh["dsr"] <= hh["dsr_ci"][1]
    assert hh["asr_ci"] == pytest.approx([1 - hh["dsr_ci"][1], 1 - hh["dsr_ci"][0]])
    assert sh["dsr"] == 0.5 and "frr" not in sh
    assert sq["frr"] == 0.25 and sq["helpfulness"] == 6.0 and "dsr" not in sq
    assert m["text_only"]["HH"]["dsr"] == 1.0
    assert m["video_drop"]["HH"]["relative"] == pytest.approx(1 / 3)
    assert m["video_drop"]["HH"]["absolute"] == pytest.approx(1 / 3)
    assert m["n_judge_failures"] == 1 and m["n_format_failures"] == 1
    by_lang = {(r["split"], r["language"]): r for r in m["by_language"]}
    assert by_lang[("SH", "zh")]["dsr"] == 0.5 and by_lang[("SafeQ", "en")]["frr"] == 0.25
    cats = {(r["split"], r["category"]): r for r in group_table(records[:4], "category", n_resamples=50)}
    assert cats[("HH", "drugs")]["dsr"] == 1.0 and cats[("HH", "violence")]["dsr"] == 0.5


@pytest.mark.parametrize(
    "labels, scores, expected",
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # all tied
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ([0, 1, 1], [0.3, 0.3, 0.9], 0.75),  # one tie between classes counts half: (0.5 + 1) / 2
    ],
)
def test_auroc_cases(labels, scores, expected):
    assert auroc(labels, scores) == pytest.approx(expected)


def test_auroc_matches_pairwise_definition_on_random_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 5, 200) / 4.0  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert auroc(y, s) == pytest.approx(pairwise)
    fpr, tpr, _ = roc_curve(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(pairwise)
    assert math.isnan(auroc([1, 1], [0.2, 0.3]))


def test_binary_metrics_by_hand():
    # tp=2 fp=1 fn=1 tn=2
    m = binary_classification_metrics([1, 1, 1, 0, 0, 0], [0.9, 0.6, 0.2, 0.7, 0.1, 0.3])
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["fpr"] == pytest.approx(1 / 3)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    "labels, probs, expected",
    [
        ([0, 1], [0.0, 1.0], 0.0),
        ([1, 1, 1, 1], [0.25, 0.25, 0.25, 0.25], 0.75),
        ([0, 1, 0, 1], [0.55, 0.55, 0.95, 0.95], 0.5 * 0.05 + 0.5 * 0.45),
    ],
)
def test_expected_calibration_error(labels, probs, expected):
    assert expected_calibration_error(labels, probs, n_bins=10) == pytest.approx(expected)


def test_calibrated_ece_baseline_is_the_sampling_floor_of_ece():
    # certain probabilities: a calibrated head is never wrong, so the floor is 0
    assert calibrated_ece_baseline([0.0, 1.0, 1.0, 0.0]) == 0.0
    # p = 0.5 everywhere: one bin, ECE = |harmful share - 0.5| = E|Bin(n, 1/2) / n - 1/2| ~ sqrt(2 / pi) * 0.5 / sqrt(n)
    expected = math.sqrt(2 / math.pi) * 0.5 / math.sqrt(100)
    assert calibrated_ece_baseline([0.5] * 100, n_draws=4000) == pytest.approx(expected, rel=0.1)
    # four times the rows halve it; the same seed gives the same number
    small, large = calibrated_ece_baseline([0.3, 0.7] * 35), calibrated_ece_baseline([0.3, 0.7] * 140)
    assert large == pytest.approx(small / 2, rel=0.2)
    assert calibrated_ece_baseline([0.3, 0.7] * 35) == small
    assert math.isnan(calibrated_ece_baseline([]))
    for bad in ([0.2, 1.5], [0.2, float("nan")]):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            calibrated_ece_baseline(bad)
    for draws in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_draws must be an integer >= 1"):
            calibrated_ece_baseline([0.2], n_draws=draws)
    for bins in (0, 2.5):
        with pytest.raises(ValueError, match="n_bins must be an integer >= 1"):
            calibrated_ece_baseline([0.2], n_bins=bins)
    # a bf16 tensor that requires grad reads as its float values
    probs = torch.tensor([0.3, 0.7] * 35, dtype=torch.bfloat16, requires_grad=True)
    assert calibrated_ece_baseline(probs) == calibrated_ece_baseline(probs.detach().float().numpy())


def test_tag_agreement_and_head_records():
    assert tag_agreement([0.9, 0.1, 0.8, 0.4], [1, 0, 0, None]) == pytest.approx(2 / 3)
    assert math.isnan(tag_agreement([0.9], [None]))
    records = [
        {
            "visual_prob": 0.9,
            "visual_label": 1,
            "vid_type": 1,
            "textual_prob": 0.2,
            "textual_label": 0,
            "text_type": 0,
        },
        {"visual_prob": 0.1, "visual_label": 0, "vid_type": 1, "textual_prob": 0.7, "textual_label": 1},
        {"visual_prob": None, "visual_label": 1},
    ]
    out = alarm_metrics_from_records(records)
    assert out["visual"]["n"] == 2 and out["visual"]["auroc"] == 1.0 and out["visual"]["tag_agreement"] == 0.5
    assert out["textual"]["tag_agreement"] == 1.0
    assert alarm_head_metrics([0, 1], [0.2, 0.8])["f1"] == 1.0
