"""Tests for helpers.unsupervised: k-means restarts and sweeps, cluster profiles, PCA helpers and figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from helpers import unsupervised

pytestmark = pytest.mark.usefixtures("plot_style")


# --- pure NumPy / pandas -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated round groups of 30 points in 2-D, with their true group."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.vstack([rng.normal(c, 0.5, size=(30, 2)) for c in centres])
    return X, np.repeat([0, 1, 2], 30)


def test_reconstruction_error_falls_to_zero_and_starts_at_the_total_variance() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)) @ np.diag([5.0, 2.0, 1.0, 0.1])
    centred = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    errors = unsupervised.reconstruction_error(X, vt.T, ks=range(0, 5))
    assert errors[0] == pytest.approx(np.mean(np.sum(centred**2, axis=1)))
    assert errors[-1] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(errors) <= 1e-12)
    # keeping 3 of 4 components loses exactly the mean squared score along the 4th
    assert errors[3] == pytest.approx(np.mean((centred @ vt[3]) ** 2))


def test_reconstruction_errors_score_points_off_the_fitted_plane() -> None:
    """Points on the plane of the components are rebuilt exactly; a point off it scores its squared distance."""
    plane = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # the x-y plane of 3-D space
    mean = np.array([0.0, 0.0, 2.0])  # ... through z = 2
    X = np.array([[3.0, -1.0, 2.0], [0.5, 0.5, 2.0], [1.0, 1.0, 5.0], [0.0, 0.0, 0.0]])
    scores = unsupervised.reconstruction_errors(X, plane, mean)
    np.testing.assert_allclose(scores, [0.0, 0.0, 9.0, 4.0], atol=1e-12)
    assert np.argmax(scores) == 2  # the point farthest from the plane is the most anomalous
    with pytest.raises(ValueError, match="components has 3 rows"):
        unsupervised.reconstruction_errors(np.zeros((2, 4)), plane, np.zeros(4))


def test_reconstruction_error_checks_shapes() -> None:
    with pytest.raises(ValueError, match="components has 3 rows"):
        unsupervised.reconstruction_error(np.zeros((5, 4)), np.eye(3), ks=[1])


def test_cluster_profile_sizes_means_and_most_common_values() -> None:
    frame = pd.DataFrame({"cluster": [0, 0, 0, 1], "mass": [1.0, 2.0, 3.0, 10.0],
                          "island": ["A", "A", "B", None]})
    profile = unsupervised.cluster_profile(frame, "cluster", ["mass"], ["island"])
    assert profile["size"].tolist() == [3, 1]
    assert profile["share"].tolist() == [0.75, 0.25]
    assert profile["mass"].tolist() == [2.0, 10.0]
    assert profile["most common island"].tolist() == ["A (67%)", "-"]
    with pytest.raises(ValueError):
        unsupervised.cluster_profile(frame.iloc[:0], "cluster", ["mass"])


def test_match_clusters_pairs_ids_with_the_labels_they_overlap_most() -> None:
    clusters = [2, 2, 2, 0, 0, 1, 1, 1]
    truth = ["a", "a", "b", "b", "b", "c", "c", "a"]
    assert unsupervised.match_clusters(clusters, truth) == {2: "a", 0: "b", 1: "c"}
    # one label, two clusters: the bigger overlap gets the label, the other keeps its id
    assert unsupervised.match_clusters([0, 0, 1], ["x", "x", "x"]) == {0: "x", 1: 1}


def test_figures_are_drawn(blobs) -> None:
    X, groups = blobs
    frame = pd.DataFrame({"cluster": groups, "a": X[:, 0], "b": X[:, 1]})
    sweep = pd.DataFrame({"k": [2, 3, 4], "cost": [30.0, 10.0, 8.0], "silhouette": [0.5, 0.8, 0.6]})
    figures = [
        unsupervised.plot_k_sweep(sweep, chosen=3),
        unsupervised.profile_heatmap(frame, "cluster", ["a", "b"], labels={0: "zero"}),
        unsupervised.scree_plot([0.6, 0.3, 0.1]),
        unsupervised.biplot(X, np.array([[1.0, 0.0], [0.0, 1.0]]), ["a", "b"], groups=groups,
                            explained=[0.6, 0.4]),
        unsupervised.image_grid(np.arange(128.0).reshape(2, 64), titles=["x", "y"]),
        unsupervised.image_grid(np.random.default_rng(0).normal(size=(3, 64)), diverging=True, ncols=2),
    ]
    assert all(isinstance(fig, Figure) for fig in figures)
    labels = [t.get_text() for t in figures[1].axes[0].get_yticklabels()]
    assert labels == ["zero (n=30)", "1 (n=30)", "2 (n=30)"]
    assert len(figures[5].axes) == 4 and not figures[5].axes[3].get_visible()  # 3 images in a 2-column grid
    ax = figures[0].axes[0]
    ax2 = unsupervised.cluster_scatter(ax, X[:, 0], X[:, 1], groups, shapes=groups % 2, centres=X[:3])
    assert ax2 is ax


def test_figure_input_checks() -> None:
    with pytest.raises(ValueError, match="8×8"):
        unsupervised.image_grid(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="one 2-column loading row per feature"):
        unsupervised.biplot(np.zeros((5, 2)), np.zeros((3, 2)), ["a", "b"])


# --- Spark ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blob_frame(spark, blobs):
    from pyspark.ml.linalg import Vectors

    X, groups = blobs
    rows = [(Vectors.dense(x), int(g)) for x, g in zip(X, groups, strict=True)]
    return spark.createDataFrame(rows, ["features", "group"]).cache()


def test_best_of_seeds_keeps_the_lowest_cost(blob_frame) -> None:
    from pyspark.ml.clustering import KMeans

    model, costs = unsupervised.best_of_seeds(KMeans(k=3, initMode="random", maxIter=5), blob_frame, range(4))
    assert len(costs) == 4
    assert model.summary.trainingCost == pytest.approx(min(costs))
    with pytest.raises(ValueError):
        unsupervised.best_of_seeds(KMeans(k=3), blob_frame, [])


def test_parallel_fits_equal_sequential_fits(blob_frame) -> None:
    from pyspark.ml.clustering import KMeans

    estimators = [KMeans(k=3, seed=seed) for seed in range(3)]
    one = unsupervised.fit_in_parallel(estimators, blob_frame, parallelism=1)
    many = unsupervised.fit_in_parallel(estimators, blob_frame, parallelism=3)
    assert [m.summary.trainingCost for m in one] == pytest.approx([m.summary.trainingCost for m in many])


def test_kmeans_sweep_finds_the_three_blobs(blob_frame) -> None:
    sweep = unsupervised.kmeans_sweep(blob_frame, ks=[2, 3, 4], seeds=(0, 1))
    assert sweep["k"].tolist() == [2, 3, 4]
    assert sweep["cost"].is_monotonic_decreasing
    assert sweep.loc[sweep["silhouette"].idxmax(), "k"] == 3
    assert sweep.loc[sweep["k"] == 3, "smallest_cluster"].item() == 30


def test_pca_projection_recovers_the_main_direction(spark) -> None:
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(2)
    t = rng.normal(size=100)
    X = np.c_[t, 2 * t, rng.normal(scale=0.01, size=100)]
    X = X - X.mean(axis=0)
    frame = spark.createDataFrame([(Vectors.dense(x), i) for i, x in enumerate(X)], ["features", "row"])
    projection = unsupervised.pca_projection(frame, k=2, keep=["row"])
    assert list(projection.points.columns) == ["pc1", "pc2", "row"]
    assert projection.explained[0] > 0.99
    direction = projection.components[:, 0]
    assert abs(direction @ np.array([1, 2, 0]) / np.sqrt(5)) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(projection.points["pc1"], X @ direction, atol=1e-9)
