"""PNG figures of an evaluation, drawn with matplotlib's Agg backend (no display needed, safe on servers).

Each function takes already computed numbers (``group_table`` rows, labels and head probabilities, per-checkpoint
metrics), writes one PNG and returns its path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.path import Path as LinePath  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from .alarm_metrics import auroc, roc_curve  # noqa: E402

__all__ = ["plot_category_dsr", "plot_roc_curves", "plot_dsr_vs_frr"]


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_category_dsr(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, by: str = "category") -> Path:
    """Grouped bars of DSR per category, one bar per harmful split, with bootstrap intervals as error bars."""
    rows = [r for r in rows if r.get("dsr") is not None and not math.isnan(r["dsr"])]
    groups = sorted({str(r.get(by)) for r in rows})
    splits = sorted({str(r.get("split")) for r in rows})
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(groups) + 2), 3.5))
    width = 0.8 / max(len(splits), 1)
    for i, split in enumerate(splits):
        lookup = {str(r.get(by)): r for r in rows if str(r.get("split")) == split}
        xs, ys, err = [], [], [[], []]
        for j, g in enumerate(groups):
            if g in lookup:
                r = lookup[g]
                xs.append(j + (i - (len(splits) - 1) / 2) * width)
                ys.append(r["dsr"])
                lo, hi = r.get("dsr_ci_low"), r.get("dsr_ci_high")
                ok = lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi))
                err[0].append(max(r["dsr"] - lo, 0.0) if ok else 0.0)
                err[1].append(max(hi - r["dsr"], 0.0) if ok else 0.0)
        ax.bar(xs, ys, width=width, yerr=err, capsize=2, label=split)
    ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("DSR")
    ax.set_title(f"Defense success rate by {by}")
    if splits:
        ax.legend()
    return _save(fig, path)


def plot_roc_curves(heads: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: str | os.PathLike) -> Path:
    """ROC curve of each alarm head, e.g. ``{"visual": (labels, probs), "textual": (labels, probs)}``."""
    fig, ax = plt.subplots(figsize=(4, 4))
    for name, (labels, probs) in heads.items():
        fpr, tpr, _ = roc_curve(labels, probs)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auroc(labels, probs):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Alarm heads")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _coinciding_groups(
    points: Sequence[Mapping[str, Any]], xs: Sequence[float], ys: Sequence[float], tol: float
) -> list[tuple[float, float, list[str]]]:
    """Points within ``tol`` of an earlier one in both axes share its label slot: ``(x, y, labels)`` in order."""
    groups: list[tuple[float, float, list[str]]] = []
    for p, x, y in zip(points, xs, ys):
        label = str(p.get("label", ""))
        for gx, gy, labels in groups:
            if abs(gx - x) <= tol and abs(gy - y) <= tol:
                labels.append(label)
                break
        else:
            groups.append((x, y, [label]))
    return groups


def _label_offsets(tries: int) -> list[tuple[int, int, str]]:
    """Where a point's label may go, nearest first: ``(dx, dy, ha)`` in points, above/below and right/left of it."""
    return [
        (dx, dy, ha)
        for line in range(tries)
        for dy in (4 + 10 * line, -12 - 10 * line)
        for dx, ha in ((4, "left"), (-4, "right"))
    ]


def plot_dsr_vs_frr(points: Sequence[Mapping[str, Any]], path: str | os.PathLike, split: str = "HH") -> Path:
    """Safety against over-refusal across checkpoints: each point ``{"label", "dsr", "frr"}``, joined in order
    (up and to the left is better).

    Stages often land on the same point (e.g. ATC and CoT both at DSR 1, FRR 0): points that coincide (within 0.01)
    get one combined label ("atc, cot"), and each label takes the nearest slot around its point that overlaps no
    marker or label drawn before, stays inside the axes and is crossed by no line segment between points (a label
    moved off its point gets a thin leader line). With no such slot left, the nearest slot that breaks the fewest
    of these rules, in that order of importance, wins."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    xs = [float(p["frr"]) for p in points]
    ys = [float(p["dsr"]) for p in points]
    ax.plot(xs, ys, marker="o")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("FRR (SafeQ)")
    ax.set_ylabel(f"DSR ({split})")
    ax.set_title("DSR vs FRR across checkpoints")
    fig.tight_layout()  # the final layout (labels stay inside the axes), so the checks below see the saved pixels
    renderer, inside = fig.canvas.get_renderer(), ax.get_window_extent()
    pixels = ax.transData.transform(list(zip(xs, ys)))
    placed = [Bbox.from_extents(u - 3, v - 3, u + 3, v + 3) for u, v in pixels]
    segments = [LinePath([a, b]) for a, b in zip(pixels, pixels[1:])]
    offsets = _label_offsets(tries=len(points) + 1)  # n + 1 lines each way: room for n labels
    for x, y, labels in _coinciding_groups(points, xs, ys, tol=0.01):
        slots = []  # (broken rules, slot index, dx, dy, ha, box): the box is the one of that very slot
        for k, (dx, dy, ha) in enumerate(offsets):
            text = ax.annotate(
                ", ".join(labels), (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, fontsize=8
            )
            box = text.get_window_extent(renderer).padded(2)
            text.remove()
            broken = (
                any(box.overlaps(other) for other in placed),
                not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)),
                any(segment.intersects_bbox(box, filled=False) for segment in segments),
            )
            slots.append((broken, k, dx, dy, ha, box))
            if not any(broken):
                break
        _, _, dx, dy, ha, box = min(slots, key=lambda slot: slot[:2])  # crowded: the least bad, nearest slot
        leader = {"arrowstyle": "-", "color": "0.5", "linewidth": 0.5} if abs(dy) > 12 else None
        ax.annotate(
            ", ".join(labels),
            (x, y),
            textcoords="offset points",
            xytext=(dx, dy),
            ha=ha,
            fontsize=8,
            arrowprops=leader,
        )
        placed.append(box)
    return _save(fig, path)


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    return [sum(values[i - window + 1 : i + 1]) / window for i in range(window - 1, len(values))]


def plot_reward_curve(
    history: Sequence[tuple[int, float]],
    path: str | os.PathLike,
    window: int = 5,
    terms: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> Path:
    """Mean GRPO reward per step with a moving average, so a training run's trend reads at a glance; with
    ``terms`` (reward name -> per-step mean) a second panel shows which term moved."""
    panels = 2 if terms else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.5), squeeze=False)
    ax = axes[0][0]
    steps = [s for s, _ in history]
    values = [v for _, v in history]
    ax.plot(steps, values, color="0.7", linewidth=1, label="mean reward")
    if len(values) >= window:
        smooth = _moving_average(values, window)
        ax.plot(steps[window - 1 :], smooth, color="C0", linewidth=2, label=f"moving average ({window})")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title("Safety-GRPO reward")
    ax.legend(loc="lower right")
    if terms:
        ax = axes[0][1]
        for i, (name, series) in enumerate(terms.items()):
            term_steps, term_values = [s for s, _ in series], [v for _, v in series]
            ax.plot(term_steps, term_values, color=f"C{i}", linewidth=0.8, alpha=0.35)
            if len(term_values) >= window:
                ax.plot(term_steps[window - 1 :], _moving_average(term_values, window), color=f"C{i}", label=name)
            else:
                ax.plot(term_steps, term_values, color=f"C{i}", label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("mean term value")
        ax.set_title(f"reward terms (moving average {window})")
        ax.legend(loc="lower right")
    return _save(fig, path)
