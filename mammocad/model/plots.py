"""PNG plots for evaluation (ROC, FROC) and training (loss curves); matplotlib's Agg backend.

Agg because these run on headless servers and inside tests: no display is ever needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CAPTION = "mammocad — research use only, not for diagnostic use"


def roc_png(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """Breast-level ROC curve with its AUC (and bootstrap interval) in the legend.

    Consecutive operating points are joined by straight lines: where malignant and other
    breasts tie (many breasts without a reported mark share risk 0) the curve runs diagonally,
    so the area under the drawn curve is the mid-rank AUC in the legend. Steps would draw the
    pessimistic corner and show less area than the AUC printed beside it.
    """
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    auc = report["metrics"].get("breast_roc_auc")
    lo, hi = report["ci95"].get("breast_roc_auc", [None, None])
    label = "AUC n/a" if auc is None else f"AUC {auc:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")
    ax.plot(report["roc"]["fpr"], report["roc"]["tpr"], label=label)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="1 − specificity (breasts)", ylabel="sensitivity (breasts)", xlim=(0, 1), ylim=(0, 1.02),
           title=title or "Breast-level ROC")
    ax.legend(loc="lower right")
    return _save(fig, path)


def froc_png(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """Lesion FROC: sensitivity against false positives per image (log x axis)."""
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    curve = report["froc"]["curve"]
    xs = [0.0] + list(curve["fp_per_image"])
    ys = [0.0] + [v or 0.0 for v in curve["sensitivity"]]
    ax.plot([max(x, 1e-2) for x in xs], ys, marker=".", ms=3, label="FROC")
    points = {k: v for k, v in report["froc"]["sensitivity_at_fp_per_image"].items() if v is not None}
    ax.scatter([float(k) for k in points], list(points.values()), color="C3", zorder=3,
               label="at 0.25–4 FP/image")
    ax.set_xscale("log")
    ax.set(xlabel="false positives per image", ylabel="lesion sensitivity", ylim=(0, 1.02), xlim=(1e-2, 20),
           title=title or "Lesion FROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def loss_png(rows: Sequence[dict[str, float]], path: Path, keys: Sequence[str]) -> Path:
    """Training losses against step, raw (faint) and smoothed over 25 steps."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    steps = [r["step"] for r in rows]
    for i, key in enumerate(keys):
        values = [r[key] for r in rows]
        ax.plot(steps, values, color=f"C{i}", alpha=0.25, lw=0.8)
        ax.plot(steps, _smooth(values, 25), color=f"C{i}", lw=1.5, label=key)
    ax.set(xlabel="step", ylabel="loss", title="Training loss")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _save(fig: Any, path: Path) -> Path:
    fig.text(0.01, 0.005, CAPTION, fontsize=6, color="grey")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
