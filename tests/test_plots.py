from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from helpers import plots

pytestmark = pytest.mark.usefixtures("plot_style")


def test_style_sets_the_curriculum_look() -> None:
    assert tuple(matplotlib.rcParams["figure.figsize"]) == plots.FIGSIZE
    assert matplotlib.rcParams["figure.dpi"] == plots.DPI


def test_bar_heights_match_the_values() -> None:
    values = pd.Series({"a": 3.0, "b": 1.0, "c": 2.0})
    fig = plots.bar(values, "counts", xlabel="letter", ylabel="n")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [3.0, 1.0, 2.0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("counts", "letter", "n")


def test_missing_values_shows_only_columns_with_nulls_largest_on_top() -> None:
    fig = plots.missing_values(pd.Series({"dep_time": 0.02, "carrier": 0.0, "arr_delay": 0.03}))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["dep_time", "arr_delay"]
    assert [p.get_width() for p in ax.patches] == [0.02, 0.03]


def test_histograms_one_panel_per_column_and_hides_spares() -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0) ** 2, "z": -np.arange(100.0), "w": np.ones(100)})
    fig = plots.histograms(frame, ["x", "y", "z", "w"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["x", "y", "z", "w"]
    assert len(fig.axes) == 6


def test_correlation_heatmap_is_annotated_for_small_matrices() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 4, 6, 8], "c": [4, 3, 2, 1]})
    fig = plots.correlation_heatmap(frame.corr())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("1.00") == 5 and texts.count("-1.00") == 4


def test_line_draws_one_line_per_group() -> None:
    frame = pd.DataFrame({"day": [1, 2, 1, 2], "n": [5, 6, 7, 8], "origin": ["EWR", "EWR", "JFK", "JFK"]})
    fig = plots.line(frame, "day", "n", "flights per day", hue="origin")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["EWR", "JFK"]
    assert list(ax.get_lines()[1].get_ydata()) == [7, 8]


def test_confusion_matrix_annotates_counts_and_row_shares() -> None:
    fig = plots.confusion_matrix(np.array([[90, 10], [5, 15]]), ["on time", "late"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["90\n90%", "10\n10%", "5\n25%", "15\n75%"]


def test_roc_curve_labels_auc_and_chance() -> None:
    fig = plots.roc_curve({"model": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]), 0.8)})
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["model (AUC 0.800)", "chance"]


def test_predicted_vs_actual_and_residuals_have_reference_lines() -> None:
    actual = np.array([1.0, 2.0, 3.0])
    predicted = np.array([1.1, 1.9, 3.2])
    fig = plots.predicted_vs_actual(actual, predicted, unit="$")
    assert fig.axes[0].get_xlabel() == "actual $"
    fig = plots.residuals(predicted, actual - predicted)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_lines()[0].get_ydata()[0] == 0


def test_feature_importance_keeps_the_top_features() -> None:
    importance = pd.Series({f"f{i}": float(i) for i in range(20)})
    fig = plots.feature_importance(importance, top=5)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["f15", "f16", "f17", "f18", "f19"]


def test_before_after_and_box_plots_render() -> None:
    values = pd.Series(np.exp(np.linspace(0, 5, 200)))
    fig = plots.before_after(values, np.log(values), "log transform")
    assert [ax.get_title() for ax in fig.axes] == ["before", "after"]
    frame = pd.DataFrame({"g": ["a"] * 50 + ["b"] * 50, "v": np.arange(100.0)})
    fig = plots.box_by_group(frame, "v", "g", "by group")
    assert fig.axes[0].get_title() == "by group"


def test_pr_curve_shows_the_chance_level() -> None:
    fig = plots.pr_curve({"m": (np.array([0, 0.5, 1]), np.array([1, 0.6, 0.2]), 0.61)}, base_rate=0.2)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["m (PR AUC 0.610)", "chance (0.20)"]
    assert ax.get_lines()[1].get_ydata()[0] == 0.2
