"""Quality of the two alarm heads (visual, textual) as harm detectors.

Labels are 0 = safe, 1 = harmful; scores are the heads' probabilities of harm. AUROC is rank-based (the
Mann-Whitney statistic, ties counted half) so it needs no threshold; F1, FPR and balanced accuracy use a threshold;
ECE says whether the probabilities can be read as probabilities; agreement compares the head with the
``<vidType>``/``<textType>`` tags the model writes, which should tell the same story.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "auroc",
    "roc_curve",
    "binary_classification_metrics",
    "expected_calibration_error",
    "calibrated_ece_baseline",
    "tag_agreement",
    "alarm_head_metrics",
    "alarm_metrics_from_records",
]


def _numpy(values: Any) -> Any:
    """A torch tensor (any dtype, device or grad) as a numpy array; anything else unchanged."""
    if hasattr(values, "detach"):
        return values.detach().float().cpu().numpy()
    return values


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _arrays(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> tuple[np.ndarray, ...]:
    y = np.asarray(_numpy(labels), dtype=np.int64).reshape(-1)
    s = np.asarray(_numpy(scores), dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (safe) or 1 (harmful)")
    return y, s


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1  # [n] tie-group id in sorted order
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], x.size] - 1
    ranks = np.empty(x.size)
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve = P(score of a harmful item > score of a safe one), ties 1/2. NaN with one class."""
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` from (0, 0) to (1, 1), one point per distinct score (descending)."""
    y, s = _arrays(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    cut = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]  # last index of each distinct score
    tps = np.cumsum(y_sorted)[cut]
    fps = (cut + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[cut]]
    return fpr, tpr, thresholds


def binary_classification_metrics(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, precision, recall (TPR), F1, FPR and balanced accuracy of ``score >= threshold``."""
    y, s = _arrays(labels, scores)
    pred = s >= threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    tn = float(np.sum(~pred & (y == 0)))

    def div(a: float, b: float) -> float:
        return a / b if b else math.nan

    precision, recall, fpr = div(tp, tp + fp), div(tp, tp + fn), div(fp, fp + tn)
    tnr = div(tn, tn + fp)
    f1 = div(2 * tp, 2 * tp + fp + fn)
    return {
        "accuracy": div(tp + tn, y.size),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": fpr,
        "balanced_accuracy": (recall + tnr) / 2.0,
    }


def expected_calibration_error(
    labels: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray, n_bins: int = 10
) -> float:
    """ECE over ``n_bins`` equal-width bins of P(harmful): sum of |accuracy - confidence| weighted by bin size,
    where confidence is the mean predicted probability of the harmful class and accuracy the harmful share."""
    _check_count("n_bins", n_bins)
    y, p = _arrays(labels, probs)
    if y.size == 0:
        return math.nan
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)  # p = 1.0 goes to the last bin
    counts = np.bincount(bins, minlength=n_bins)
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)
    mean_y = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    nonzero = counts > 0
    gap = np.abs(mean_y[nonzero] - mean_p[nonzero])  # both are bin sums here
    return float(gap.sum() / y.size)


def calibrated_ece_baseline(
    probs: Sequence[float] | np.ndarray, n_bins: int = 10, n_draws: int = 1000, seed: int = 0
) -> float:
    """Mean ECE that a *perfectly calibrated* head with these probabilities would show on this many rows.

    ECE on a finite sample is biased upwards: each bin's harmful share scatters around its mean probability, and the
    gaps add up in absolute value. This draws ``n_draws`` label vectors ``y ~ Bernoulli(probs)`` (so the
    probabilities are right by construction) and averages their :func:`expected_calibration_error`, which is what
    a measured ECE should be compared with. It shrinks about as ``1 / sqrt(len(probs))`` and with probabilities near
    0 or 1: on the demo's 140 held-out rows its textual head's baseline was 0.06, above the issue's 0.05 goal
    (docs/demo.md, "Head calibration"). NaN for no rows; ValueError for a probability outside [0, 1] (or NaN) and
    for ``n_draws`` < 1."""
    p = np.asarray(_numpy(probs), dtype=np.float64).reshape(-1)  # [N]; any shape is flattened
    _check_count("n_bins", n_bins)
    _check_count("n_draws", n_draws)
    if p.size == 0:
        return math.nan
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    # one label vector y ~ Bernoulli(p) [N] per draw, never all at once: memory stays O(N) for any n_draws
    eces = [expected_calibration_error((rng.random(p.size) < p).astype(np.int64), p, n_bins) for _ in range(n_draws)]
    return float(np.mean(eces))


def tag_agreement(probs: Sequence[float] | np.ndarray, tags: Sequence[int | None], threshold: float = 0.5) -> float:
    """Share of items where the head's decision equals the generated tag; items without a readable tag are
    skipped. NaN when none has one."""
    pairs = [(float(p) >= threshold, int(t)) for p, t in zip(np.asarray(probs).reshape(-1), tags) if t is not None]
    return float(np.mean([int(d) == t for d, t in pairs])) if pairs else math.nan


def alarm_head_metrics(
    labels: Sequence[int] | np.ndarray,
    probs: Sequence[float] | np.ndarray,
    tags: Sequence[int | None] | None = None,
    threshold: float = 0.5,
    n_bins: int = 10,
) -> dict[str, float]:
    """All metrics of one head."""
    out = {"n": float(len(labels)), "auroc": auroc(labels, probs)}
    out.update(binary_classification_metrics(labels, probs, threshold))
    out["ece"] = expected_calibration_error(labels, probs, n_bins)
    if tags is not None:
        out["tag_agreement"] = tag_agreement(probs, tags, threshold)
    return out


def alarm_metrics_from_records(records: Sequence[Mapping[str, Any]], threshold: float = 0.5) -> dict[str, Any]:
    """Visual and textual head metrics from samples that carry ``visual_prob``/``visual_label``/``vid_type`` and
    ``textual_prob``/``textual_label``/``text_type``; a head whose fields are absent is left out."""
    out: dict[str, Any] = {}
    for head, tag_key in (("visual", "vid_type"), ("textual", "text_type")):
        rows = [r for r in records if r.get(f"{head}_prob") is not None and r.get(f"{head}_label") is not None]
        if rows:
            out[head] = alarm_head_metrics(
                [int(r[f"{head}_label"]) for r in rows],
                [float(r[f"{head}_prob"]) for r in rows],
                [r.get(tag_key) for r in rows],
                threshold,
            )
    return out
