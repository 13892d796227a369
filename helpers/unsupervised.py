"""Unsupervised learning made readable: choosing k for k-means, describing clusters, and looking at
data through principal components.

Clustering (notebook 10)::

    models = unsupervised.fit_in_parallel([KMeans(k=3, seed=s) for s in range(6)], scaled)  # 4 fits at a time
    model, costs = unsupervised.best_of_seeds(KMeans(k=3), scaled, seeds=range(5))   # keep the lowest cost
    sweep = unsupervised.kmeans_sweep(scaled, ks=range(2, 9), seeds=(0, 1, 2))   # cost + silhouette per k
    fig = unsupervised.plot_k_sweep(sweep, chosen=3)
    names = unsupervised.match_clusters(clusters, species)     # {cluster id: the label it overlaps most}
    unsupervised.cluster_scatter(ax, x, y, clusters, shapes=species, centres=centres)
    profile = unsupervised.cluster_profile(rows, "cluster", ["bill_length_mm", ...], ["species"])
    fig = unsupervised.profile_heatmap(rows, "cluster", ["bill_length_mm", ...])

Principal components (notebooks 10 and 11)::

    projection = unsupervised.pca_projection(scaled, k=2, keep=["species"])   # MLlib PCA -> pandas
    fig = unsupervised.scree_plot(projection.explained)                       # fit with k = all features
    errors = unsupervised.reconstruction_error(X, components, ks=range(1, 14))
    fig = unsupervised.image_grid(images, titles, shape=(8, 8))                # digits, eigen-images

Spark does the fitting (MLlib ``KMeans``, ``ClusteringEvaluator``, ``PCA``); everything that draws or
summarises takes small pandas/NumPy data, so it also serves models fitted elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

if TYPE_CHECKING:
    from pyspark.ml.feature import PCAModel
    from pyspark.sql import DataFrame


# ---------------------------------------------------------------------------------------------
# k-means: several starts, and a sweep over k
# ---------------------------------------------------------------------------------------------


def fit_in_parallel(estimators: Sequence[Any], frame: DataFrame, parallelism: int = 4) -> list[Any]:
    """Fit every estimator on ``frame``, ``parallelism`` at a time, and return the models in order.

    On small data an MLlib fit is mostly scheduling: many short Spark jobs, one after another. Submitting
    several fits from separate threads (as ``CrossValidator(parallelism=...)`` does) keeps the cores busy;
    each fit is independent and seeded, so the results do not depend on the order they finish in.
    """
    from concurrent.futures import ThreadPoolExecutor

    if parallelism <= 1 or len(estimators) <= 1:
        return [estimator.fit(frame) for estimator in estimators]
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        return list(pool.map(lambda estimator: estimator.fit(frame), estimators))


def best_of_seeds(estimator: Any, frame: DataFrame, seeds: Iterable[int],
                  parallelism: int = 4) -> tuple[Any, list[float]]:
    """Fit ``estimator`` (an MLlib ``KMeans`` or ``BisectingKMeans``) once per seed and keep the model
    with the lowest training cost (within-cluster sum of squared distances).

    k-means only finds a *local* minimum that depends on its starting centres, so the usual remedy is to
    start several times and keep the best, which is what scikit-learn's ``n_init`` does. Returns the
    best model (the first seed's on a tie) and the cost of every start, in the order of ``seeds``.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("best_of_seeds needs at least one seed.")
    models = fit_in_parallel([estimator.copy().setSeed(seed) for seed in seeds], frame, parallelism)
    costs = [float(model.summary.trainingCost) for model in models]
    return models[int(np.argmin(costs))], costs


def kmeans_sweep(frame: DataFrame, ks: Iterable[int], seeds: Iterable[int] = (0, 1, 2),
                 features_col: str = "features", init_mode: str = "k-means||", max_iter: int = 20,
                 parallelism: int = 4) -> pd.DataFrame:
    """The elbow and silhouette numbers for each k: fit MLlib ``KMeans`` with every seed, keep the
    lowest-cost model, and score it with ``ClusteringEvaluator``.

    Returns one row per k with ``cost`` (within-cluster sum of squares, WCSS: the elbow curve),
    ``silhouette`` (MLlib's default: squared Euclidean distances, from -1 to 1, higher is better),
    ``smallest_cluster`` (rows in the smallest cluster) and ``seed`` (the start that won).
    """
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.evaluation import ClusteringEvaluator

    ks, seeds = [int(k) for k in ks], [int(seed) for seed in seeds]
    if not ks or not seeds:
        raise ValueError("kmeans_sweep needs at least one k and one seed.")
    estimators = [KMeans(k=k, seed=seed, featuresCol=features_col, initMode=init_mode, maxIter=max_iter)
                  for k in ks for seed in seeds]
    models = fit_in_parallel(estimators, frame, parallelism)
    evaluator = ClusteringEvaluator(featuresCol=features_col, metricName="silhouette")
    rows = []
    for position, k in enumerate(ks):
        candidates = models[position * len(seeds):(position + 1) * len(seeds)]
        costs = [float(model.summary.trainingCost) for model in candidates]
        best = candidates[int(np.argmin(costs))]
        rows.append({"k": k, "cost": min(costs), "silhouette": evaluator.evaluate(best.transform(frame)),
                     "smallest_cluster": int(min(best.summary.clusterSizes)),
                     "seed": seeds[int(np.argmin(costs))]})
    return pd.DataFrame(rows)


def plot_k_sweep(sweep: pd.DataFrame, chosen: int | None = None,
                 title: str = "Choosing k: the elbow and the silhouette") -> Figure:
    """Two panels from :func:`kmeans_sweep`: the cost (WCSS) against k, where the bend of the "elbow"
    marks the k after which extra clusters buy little, and the silhouette against k (higher is better).
    ``chosen`` draws a dashed line at the k that was picked."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(sweep["k"], sweep["cost"], marker="o")
    left.set_ylabel("within-cluster sum of squares (cost)")
    left.set_title("elbow: cost falls with every extra cluster", fontsize=11)
    right.plot(sweep["k"], sweep["silhouette"], marker="o", color="C1")
    right.set_ylabel("silhouette (higher is better)")
    right.set_title("silhouette: how well separated the clusters are", fontsize=11)
    for ax in (left, right):
        ax.set_xlabel("number of clusters k")
        ax.set_xticks(list(sweep["k"]))
        if chosen is not None:
            ax.axvline(chosen, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(title, fontweight="bold")
    return fig


# ---------------------------------------------------------------------------------------------
# Describing clusters for people who did not fit them
# ---------------------------------------------------------------------------------------------


def cluster_profile(frame: pd.DataFrame, cluster_col: str, numeric: Sequence[str],
                    categorical: Sequence[str] = (), decimals: int = 1) -> pd.DataFrame:
    """One row per cluster: its size, its share of all rows, the mean of each ``numeric`` column (in the
    column's own units) and, for each ``categorical`` column, the most common value with its share
    within the cluster (``"Biscoe (71%)"``). Missing categorical values are ignored."""
    if frame.empty:
        raise ValueError("cluster_profile needs at least one row.")
    groups = frame.groupby(cluster_col, sort=True)
    profile = pd.DataFrame({"size": groups.size()})
    profile["share"] = (profile["size"] / len(frame)).round(3)
    profile = profile.join(groups[list(numeric)].mean().round(decimals))
    for column in categorical:
        def most_common(values: pd.Series) -> str:
            counts = values.dropna().value_counts()
            if counts.empty:
                return "-"
            return f"{counts.index[0]} ({counts.iloc[0] / counts.sum():.0%})"
        profile[f"most common {column}"] = groups[column].agg(most_common)
    return profile


def profile_heatmap(frame: pd.DataFrame, cluster_col: str, numeric: Sequence[str],
                    labels: dict[Any, str] | None = None, value_format: str = "{:,.1f}",
                    title: str = "Cluster profiles") -> Figure:
    """A heatmap a non-specialist can read: one row per cluster, one column per measurement, coloured by
    how many standard deviations the cluster's mean lies above (red) or below (blue) the overall mean,
    and annotated with the mean in the measurement's own units. ``labels`` renames the clusters."""
    import seaborn as sns

    means = frame.groupby(cluster_col, sort=True)[list(numeric)].mean()
    spread = frame[list(numeric)].std(ddof=1).replace(0, 1.0)
    standardised = (means - frame[list(numeric)].mean()) / spread
    sizes = frame.groupby(cluster_col, sort=True).size()
    names = [f"{(labels or {}).get(c, c)} (n={sizes[c]})" for c in means.index]
    annotations = np.vectorize(value_format.format)(means.to_numpy())
    limit = max(1.0, float(np.abs(standardised.to_numpy()).max()))
    fig, ax = plt.subplots(figsize=(1.9 * len(numeric) + 2.5, 0.7 * len(means) + 1.6))
    sns.heatmap(standardised.to_numpy(), annot=annotations, fmt="", cmap="vlag", vmin=-limit, vmax=limit,
                xticklabels=list(numeric), yticklabels=names, cbar_kws={"label": "SDs from the overall mean"},
                ax=ax)
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(title)
    return fig


def match_clusters(clusters: Sequence[Any], reference: Sequence[Any]) -> dict[Any, Any]:
    """Pair each cluster id with the reference label it overlaps most, one label per cluster.

    Cluster ids are arbitrary (run k-means twice and "cluster 0" may swap places), so comparing two
    clusterings, or a clustering with known classes, starts by matching them up. The pairing maximises
    the number of rows whose cluster and label agree (the Hungarian algorithm on the contingency
    table). With more clusters than labels, the unmatched clusters keep their own id.
    """
    from scipy.optimize import linear_sum_assignment

    table = pd.crosstab(pd.Series(np.asarray(clusters), name="cluster"),
                        pd.Series(np.asarray(reference), name="reference"))
    rows, columns = linear_sum_assignment(-table.to_numpy())
    matched = {table.index[r]: table.columns[c] for r, c in zip(rows, columns, strict=True)}
    return {cluster: matched.get(cluster, cluster) for cluster in table.index}


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def cluster_scatter(ax: plt.Axes, x: Sequence[float], y: Sequence[float], clusters: Sequence[Any],
                    shapes: Sequence[Any] | None = None, centres: np.ndarray | None = None, title: str = "",
                    cluster_name: str = "cluster", shape_name: str = "", legend: bool = True) -> plt.Axes:
    """Points on ``ax`` coloured by cluster and, optionally, shaped by a second grouping (the known
    species, say), so agreement between the two can be seen at a glance. ``centres`` (k × 2) marks the
    cluster centres with black crosses. Returns ``ax``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    clusters = np.asarray(clusters)
    shape_values = np.asarray(shapes) if shapes is not None else np.full(len(x), "")
    cluster_levels = sorted(pd.unique(clusters), key=str)
    shape_levels = sorted(pd.unique(shape_values), key=str)
    if len(shape_levels) > len(MARKERS):
        raise ValueError(f"cluster_scatter can draw at most {len(MARKERS)} shapes, not {len(shape_levels)}.")
    colours = {level: f"C{i % 10}" for i, level in enumerate(cluster_levels)}
    for s_index, shape in enumerate(shape_levels):
        for level in cluster_levels:
            part = (clusters == level) & (shape_values == shape)
            if part.any():
                ax.scatter(x[part], y[part], s=18, alpha=0.7, color=colours[level], marker=MARKERS[s_index],
                           edgecolors="none")
    if centres is not None:
        centres = np.asarray(centres, dtype=float)
        ax.scatter(centres[:, 0], centres[:, 1], marker="X", s=160, color="black", edgecolors="white",
                   linewidths=1.5, zorder=5)
    if legend:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=colours[level],
                          label=f"{cluster_name} {level}".strip()) for level in cluster_levels]
        if shapes is not None:
            handles += [Line2D([], [], marker=MARKERS[i], linestyle="", color="0.4",
                               label=f"{shape_name} {shape}".strip()) for i, shape in enumerate(shape_levels)]
        if centres is not None:
            handles.append(Line2D([], [], marker="X", linestyle="", color="black", markersize=9,
                                  label="centre"))
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=11)
    return ax


# ---------------------------------------------------------------------------------------------
# Principal components
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """The result of :func:`pca_projection`."""

    points: pd.DataFrame  # pc1 … pck, then the kept columns, one row per input row
    explained: np.ndarray  # share of the total variance explained by each component (length k)
    components: np.ndarray  # loadings: one column per component, one row per input feature
    model: PCAModel


def pca_projection(frame: DataFrame, k: int = 2, features_col: str = "features",
                   keep: Sequence[str] = ()) -> Projection:
    """Fit MLlib ``PCA`` with ``k`` components on ``features_col`` and collect the projected rows.

    MLlib's ``PCA`` computes the components from the centred covariance matrix, but its ``transform``
    does **not** subtract the mean: standardise (``StandardScaler(withMean=True)``) or centre first if
    the scores should be centred on zero. ``keep`` names columns collected alongside the scores (labels,
    cluster ids) for colouring plots.
    """
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import vector_to_array

    model = PCA(k=k, inputCol=features_col, outputCol="_pca").fit(frame)
    scores = vector_to_array("_pca")
    rows = model.transform(frame).select(*[scores[i].alias(f"pc{i + 1}") for i in range(k)], *keep).toPandas()
    return Projection(points=rows, explained=model.explainedVariance.toArray(),
                      components=model.pc.toArray(), model=model)


def scree_plot(explained: Sequence[float], title: str = "Explained variance per component",
               threshold: float | None = 0.9) -> Figure:
    """Bars of each component's share of the variance and a line of the cumulative share; the dashed
    line marks ``threshold`` (for instance 90% of the variance) and the first component that reaches it."""
    explained = np.asarray(explained, dtype=float)
    cumulative = np.cumsum(explained)
    positions = np.arange(1, len(explained) + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(positions, explained, color="C0", label="this component")
    ax.plot(positions, cumulative, marker="o", color="C1", label="cumulative")
    if threshold is not None and cumulative[-1] >= threshold:
        needed = int(np.argmax(cumulative >= threshold)) + 1
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"{needed} components reach {threshold:.0%}", (needed, cumulative[needed - 1]),
                    xytext=(8, -18), textcoords="offset points")
    ax.set_xlabel("principal component")
    ax.set_ylabel("share of total variance")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if len(positions) <= 20:
        ax.set_xticks(positions)
    ax.legend(frameon=False, loc="center right")
    ax.set_title(title)
    return fig


def biplot(scores: np.ndarray, loadings: np.ndarray, feature_names: Sequence[str],
           groups: Sequence[Any] | None = None, explained: Sequence[float] | None = None,
           title: str = "Biplot: rows as points, features as arrows",
           arrow_scale: float | None = None) -> Figure:
    """Rows as points on the first two components (coloured by ``groups``) and each feature as an arrow
    of its loadings on the two components, stretched by ``arrow_scale`` (by default so the longest arrow
    reaches 80% of the points' extent). Arrows that point the same way are positively correlated
    features; a point lies towards the arrows of the features it has more of."""
    scores, loadings = np.asarray(scores, dtype=float), np.asarray(loadings, dtype=float)
    if scores.shape[1] < 2 or loadings.shape[1] < 2 or loadings.shape[0] != len(feature_names):
        raise ValueError("biplot needs 2 score columns and one 2-column loading row per feature.")
    fig, ax = plt.subplots(figsize=(8.5, 7))
    if groups is None:
        ax.scatter(scores[:, 0], scores[:, 1], s=14, alpha=0.6)
    else:
        groups = np.asarray(groups)
        for value in pd.unique(groups):
            part = groups == value
            ax.scatter(scores[part, 0], scores[part, 1], s=14, alpha=0.6, label=str(value))
        ax.legend(frameon=False, title="group", loc="best")
    if arrow_scale is None:
        arrow_scale = 0.8 * np.abs(scores[:, :2]).max() / np.linalg.norm(loadings[:, :2], axis=1).max()
    for name, (x, y) in zip(feature_names, loadings[:, :2] * arrow_scale, strict=True):
        ax.arrow(0, 0, x, y, color="0.25", width=0.005, head_width=0.08, length_includes_head=True)
        ax.annotate(name, (x, y), xytext=(4 if x >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if x >= 0 else "right", va="center", fontsize=9, color="0.15")
    labels = ["PC1", "PC2"]
    if explained is not None:
        labels = [f"PC{i + 1} ({explained[i]:.1%} of variance)" for i in range(2)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.axhline(0, color="0.8", linewidth=0.8)
    ax.axvline(0, color="0.8", linewidth=0.8)
    ax.set_title(title)
    return fig


def reconstruction_errors(X: np.ndarray, components: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per row of ``X``: the squared distance between the row and its rebuild from ``components`` (one orthonormal
    component per column, MLlib's ``PCAModel.pc`` or its first k columns) around ``mean``, the mean of the data the
    components were fitted on.

    As an **anomaly score** it needs no labels: a row like the data the components were fitted on is rebuilt well
    (a small error); a row unlike it keeps much of itself outside the components (a large one)."""
    X = np.asarray(X, dtype=float)
    components = np.asarray(components, dtype=float)
    if components.shape[0] != X.shape[1]:
        raise ValueError(f"components has {components.shape[0]} rows but X has {X.shape[1]} columns.")
    centred = X - np.asarray(mean, dtype=float)
    rebuilt = centred @ components @ components.T
    return np.sum((centred - rebuilt) ** 2, axis=1)


def reconstruction_error(X: np.ndarray, components: np.ndarray, ks: Iterable[int],
                         mean: np.ndarray | None = None) -> np.ndarray:
    """Mean squared reconstruction error of the rows of ``X`` from their first k principal components,
    for each k in ``ks``.

    ``components`` holds one orthonormal component per column (MLlib's ``PCAModel.pc``). The rows are
    centred on ``mean`` (their own column means by default), projected on the first k components and
    mapped back; the error is the mean over rows of the squared distance to the original
    (``reconstruction_errors``), so with all components it is zero and with none it is the total variance.
    """
    X = np.asarray(X, dtype=float)
    centre = X.mean(axis=0) if mean is None else mean
    return np.asarray([float(np.mean(reconstruction_errors(X, np.asarray(components, dtype=float)[:, : int(k)],
                                                            centre))) for k in ks])


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, shape: tuple[int, int] = (8, 8),
               ncols: int = 10, cmap: str = "gray_r", diverging: bool = False, panel: float = 1.1,
               title: str = "") -> Figure:
    """Small images in a grid, one per row of ``images`` (each reshaped to ``shape``).

    ``diverging=True`` draws each image on a red-white-blue scale centred on zero — the right choice for
    principal components, whose pixels are weights of either sign; otherwise ``cmap`` is used with each
    image's own range (gray_r: ink is dark, as on paper).
    """
    images = np.asarray(images, dtype=float)
    if images.ndim != 2 or images.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"image_grid needs one flattened {shape[0]}×{shape[1]} image per row, "
                         f"not {images.shape}.")
    count = len(images)
    ncols = max(1, min(ncols, count))
    nrows = int(np.ceil(count / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, panel * nrows + (0.5 if title else 0)),
                             squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if index >= count:
            ax.set_visible(False)
            continue
        image = images[index].reshape(shape)
        if diverging:
            limit = float(np.abs(image).max()) or 1.0
            ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            ax.imshow(image, cmap=cmap)
        if titles is not None:
            ax.set_title(str(titles[index]), fontsize=8)
        for spine in ax.spines.values():
            spine.set_visible(False)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig
