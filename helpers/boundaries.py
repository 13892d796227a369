"""Decision boundaries of fitted two-feature classifiers, drawn side by side.

    fig = decision_boundaries({"C=1": svc_1, "C=100": svc_100}, X, y, ("texture", "area"),
                              class_names=("benign", "malignant"))

Each panel shades the model's score over a grid that covers the data, draws the boundary (score 0
for a ``decision_function``, probability 0.5 otherwise) and, for margin classifiers, the margins at
±1; then the points, coloured by class. With ``X`` the training data, support vectors are ringed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def grid_over(X: np.ndarray, resolution: int = 200, padding: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Two ``resolution × resolution`` coordinate arrays covering the points of ``X`` (n × 2),
    widened by ``padding`` times the range on every side."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"grid_over needs an n × 2 array of points, not shape {X.shape}.")
    low, high = X.min(axis=0), X.max(axis=0)
    pad = (high - low) * padding
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    return np.meshgrid(xs, ys)


def scores(model: Any, points: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """(scores, boundary level, has margins): ``decision_function`` when the model has one (boundary
    at 0, margins at ±1), otherwise the probability of the second class (boundary at 0.5)."""
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(points), dtype=float), 0.0, True
    return np.asarray(model.predict_proba(points)[:, 1], dtype=float), 0.5, False


def support_indices(model: Any) -> np.ndarray | None:
    """Row numbers of the training points that are support vectors (``support_``), looking inside a
    scikit-learn ``Pipeline`` at its last step; ``None`` for models without them."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    support = getattr(final, "support_", None)
    return None if support is None else np.asarray(support)


def decision_boundaries(models: Mapping[str, Any], X: np.ndarray, y: np.ndarray, feature_names: Sequence[str],
                        class_names: Sequence[str] = ("0", "1"), ncols: int = 3, resolution: int = 200,
                        show_support: bool = True, show_margins: bool = True, shade_levels: int = 10,
                        panel_size: tuple[float, float] = (3.6, 3.3), title: str = "Decision boundaries") -> Figure:
    """One panel per fitted model (``{panel title: model}``), each trained on the two columns of ``X``.

    ``show_support`` rings the support vectors; it assumes ``X`` is the data the models were fitted on
    (``support_`` holds row numbers of the training data). ``show_margins`` draws the dashed lines at
    decision function ±1 (for models that have one); turn it off when the panels get busy.
    ``shade_levels`` is the number of colour bands for the score, ``panel_size`` the size of one panel in
    inches; both set how large the image is in a committed notebook.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if not models:
        raise ValueError("decision_boundaries needs at least one fitted model.")
    if len(feature_names) != 2 or X.ndim != 2 or X.shape[1] != 2:
        raise ValueError("decision_boundaries draws two features: X must be n × 2 with two feature names.")
    n = len(models)
    cols = min(ncols, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False,
                             sharex=True, sharey=True)
    gx, gy = grid_over(X, resolution)
    points = np.c_[gx.ravel(), gy.ravel()]
    for ax, (name, model) in zip(axes.flat, models.items(), strict=False):
        values, level, margins = scores(model, points)
        values = values.reshape(gx.shape)
        if margins:
            limit = float(np.nanpercentile(np.abs(values), 95)) or 1.0
            ax.contourf(gx, gy, np.clip(values, -limit, limit), levels=shade_levels, cmap="RdBu_r", alpha=0.35)
            if show_margins:
                ax.contour(gx, gy, values, levels=[-1.0, 1.0], colors="k", linestyles="--", linewidths=0.8)
            ax.contour(gx, gy, values, levels=[level], colors="k", linewidths=1.4)
        else:
            ax.contourf(gx, gy, values, levels=shade_levels, cmap="RdBu_r", alpha=0.35, vmin=0.0, vmax=1.0)
            ax.contour(gx, gy, values, levels=[level], colors="k", linewidths=1.4)
        for label, colour, marker in ((0, "C0", "o"), (1, "C3", "^")):
            chosen = y == label
            ax.scatter(X[chosen, 0], X[chosen, 1], s=8, c=colour, marker=marker, edgecolors="none",
                       label=class_names[label])
        support = support_indices(model) if show_support else None
        if support is not None:
            ax.scatter(X[support, 0], X[support, 1], s=30, facecolors="none", edgecolors="k", linewidths=0.6,
                       label="support vector")
            name = f"{name}\n{len(support)} support vectors"
        ax.set_title(name, fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel(feature_names[0])
    for ax in axes[:, 0]:
        ax.set_ylabel(feature_names[1])
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    fig.suptitle(title, fontweight="bold")
    return fig
