"""One look for every figure in the curriculum, and the standard figures the chapters share.

Each function takes plain pandas/NumPy data (collect a small, aggregated result from Spark first)
and returns the matplotlib ``Figure`` so a notebook can adjust or save it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

PALETTE = "colorblind"
FIGSIZE = (8.0, 4.5)
# 100 dpi keeps a committed notebook's images small (the repository keeps every output).
DPI = 100


def use_style() -> None:
    """The curriculum's style: seaborn's clean grid, a colour-blind-safe palette, modest size."""
    import warnings

    import seaborn as sns

    # seaborn 0.13 calls matplotlib APIs that matplotlib 3.11 marks deprecated; the warnings are
    # about seaborn's internals, not the learner's code.
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="seaborn")
    warnings.filterwarnings("ignore", category=matplotlib.MatplotlibDeprecationWarning, module="seaborn")
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    matplotlib.rcParams.update(
        {
            "figure.figsize": FIGSIZE,
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "savefig.bbox": "tight",
            "axes.titlesize": 13,
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.constrained_layout.use": True,
        }
    )


def _figure(figsize: tuple[float, float] | None = None) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=figsize or FIGSIZE)
    return fig, ax


def bar(values: pd.Series, title: str, xlabel: str = "", ylabel: str = "", horizontal: bool = False,
        percent: bool = False) -> Figure:
    """Bars for a labelled series (index = labels), largest first when horizontal."""
    fig, ax = _figure()
    if horizontal:
        ordered = values.sort_values()
        ax.barh(ordered.index.astype(str), ordered.to_numpy())
        ax.set_xlabel(ylabel)
        ax.set_ylabel(xlabel)
        if percent:
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.bar(values.index.astype(str), values.to_numpy())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if len(values) > 8:
            ax.tick_params(axis="x", labelrotation=45)
    ax.set_title(title)
    return fig


def missing_values(null_fraction: pd.Series, title: str = "Share of missing values per column") -> Figure:
    """Horizontal bars of the fraction of nulls per column, columns without nulls left out."""
    shown = null_fraction[null_fraction > 0]
    if shown.empty:
        shown = pd.Series({"(no missing values)": 0.0})
    return bar(shown, title, xlabel="column", ylabel="share of rows missing", horizontal=True, percent=True)


def histograms(frame: pd.DataFrame, columns: Sequence[str], bins: int = 40, log_y: bool = False,
               title: str = "Distributions") -> Figure:
    """A grid of histograms, one per numeric column."""
    n = len(columns)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        ax.hist(frame[column].dropna(), bins=bins)
        ax.set_title(column, fontsize=11)
        if log_y:
            ax.set_yscale("log")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontweight="bold")
    return fig


def correlation_heatmap(corr: pd.DataFrame, title: str = "Correlation between numeric columns") -> Figure:
    """An annotated heatmap of a correlation matrix (-1 to 1, diverging colours)."""
    import seaborn as sns

    size = max(5.0, 0.6 * len(corr) + 2)
    fig, ax = _figure((size + 1, size))
    sns.heatmap(corr, vmin=-1, vmax=1, center=0, cmap="vlag", annot=len(corr) <= 12, fmt=".2f",
                square=True, cbar_kws={"shrink": 0.8}, ax=ax)
    ax.set_title(title)
    return fig


def line(frame: pd.DataFrame, x: str, y: str | Sequence[str], title: str, xlabel: str = "",
         ylabel: str = "", hue: str | None = None) -> Figure:
    """Lines over an ordered x (usually time), one per ``y`` column or per ``hue`` value."""
    fig, ax = _figure()
    if hue is not None:
        for key, part in frame.groupby(hue, sort=True):
            ax.plot(part[x], part[y], label=str(key))
    else:
        for column in [y] if isinstance(y, str) else y:
            ax.plot(frame[x], frame[column], label=column)
    if hue is not None or not isinstance(y, str):
        ax.legend(frameon=False)
    ax.set_title(title)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or (y if isinstance(y, str) else ""))
    return fig


def box_by_group(frame: pd.DataFrame, value: str, group: str, title: str, order: Sequence[str] | None = None,
                 showfliers: bool = True) -> Figure:
    """Box plots of ``value`` per ``group``: spread, median and outliers side by side."""
    import seaborn as sns

    fig, ax = _figure()
    sns.boxplot(data=frame, x=group, y=value, order=order, showfliers=showfliers, ax=ax, color="C0")
    ax.set_title(title)
    return fig


def before_after(before: pd.Series, after: pd.Series, title: str, labels: tuple[str, str] = ("before", "after"),
                 bins: int = 40) -> Figure:
    """Two histograms side by side: a column before and after a transformation."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.hist(before.dropna(), bins=bins, color="C0")
    left.set_title(labels[0], fontsize=11)
    right.hist(after.dropna(), bins=bins, color="C1")
    right.set_title(labels[1], fontsize=11)
    fig.suptitle(title, fontweight="bold")
    return fig


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str = "Predicted vs actual",
                        unit: str = "") -> Figure:
    """Points on the diagonal are perfect predictions; the spread around it is the error."""
    fig, ax = _figure((6.0, 6.0))
    ax.scatter(actual, predicted, s=8, alpha=0.4)
    low, high = float(np.nanmin([actual.min(), predicted.min()])), float(np.nanmax([actual.max(), predicted.max()]))
    ax.plot([low, high], [low, high], color="C3", linewidth=1, label="perfect prediction")
    ax.set_xlabel(f"actual {unit}".strip())
    ax.set_ylabel(f"predicted {unit}".strip())
    ax.legend(frameon=False)
    ax.set_title(title)
    return fig


def residuals(predicted: np.ndarray, residual: np.ndarray, title: str = "Residuals vs predicted") -> Figure:
    """Residuals against predictions (left) and their distribution (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.scatter(predicted, residual, s=8, alpha=0.4)
    left.axhline(0, color="C3", linewidth=1)
    left.set_xlabel("predicted")
    left.set_ylabel("residual (actual - predicted)")
    right.hist(residual, bins=40)
    right.set_xlabel("residual")
    right.set_ylabel("count")
    fig.suptitle(title, fontweight="bold")
    return fig


def confusion_matrix(matrix: np.ndarray, labels: Sequence[str], title: str = "Confusion matrix") -> Figure:
    """Counts of actual (rows) vs predicted (columns) classes, with the share of each row."""
    import seaborn as sns

    fig, ax = _figure((5.0, 4.2))
    shares = matrix / matrix.sum(axis=1, keepdims=True)
    annotations = np.array([[f"{c:,}\n{s:.0%}" for c, s in zip(row, srow, strict=True)]
                            for row, srow in zip(matrix, shares, strict=True)])
    sns.heatmap(shares, annot=annotations, fmt="", cmap="Blues", vmin=0, vmax=1, cbar=False,
                xticklabels=labels, yticklabels=labels, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    return fig


def roc_curve(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str = "ROC curve") -> Figure:
    """One ROC curve per model: ``{name: (false_positive_rate, true_positive_rate, auc)}``."""
    fig, ax = _figure((6.0, 5.5))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(frameon=False, loc="lower right")
    ax.set_title(title)
    return fig


def pr_curve(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], base_rate: float,
             title: str = "Precision-recall curve") -> Figure:
    """One precision-recall curve per model: ``{name: (recall, precision, pr_auc)}``; the dashed line is the
    precision of guessing (the share of positives)."""
    fig, ax = _figure((6.0, 5.5))
    for name, (recall, precision, area) in curves.items():
        ax.plot(recall, precision, label=f"{name} (PR AUC {area:.3f})")
    ax.axhline(base_rate, linestyle="--", color="grey", linewidth=1, label=f"chance ({base_rate:.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, loc="upper right")
    ax.set_title(title)
    return fig


def feature_importance(importance: pd.Series, title: str = "Feature importance", top: int = 15) -> Figure:
    """The ``top`` most important features as horizontal bars."""
    shown = importance.sort_values(ascending=False).head(top)
    return bar(shown, title, xlabel="feature", ylabel="importance", horizontal=True)
