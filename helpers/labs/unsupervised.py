"""Checks for Lab 11 · Unsupervised learning (chapters 10 k-means and 11 principal component analysis).

k-means on the penguins' four body measurements (judged, as in chapter 10, by how well the clusters rediscover the
species the algorithm never saw, and by the silhouette), then PCA of the 13 wine measurements (chapter 11).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.labs import active_spark, check, require

if TYPE_CHECKING:
    from pyspark.ml import Transformer
    from pyspark.sql import DataFrame, SparkSession

MEASURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
K = 3
#: Chapter 10: k-means with k=3 on standardised measurements, ARI 0.793 against the species; on raw units 0.318.
ARI_LIMIT = 0.7
#: The share of variance the components must keep in task 4.
VARIANCE_TARGET = 0.9


def measured_penguins(spark: SparkSession) -> DataFrame:
    """The 342 penguins with all four measurements (chapter 10)."""
    from helpers.datasets import load

    return load("penguins", spark).dropna(subset=list(MEASURES))


def _stage(model: Any, name: str) -> Any:
    return next((s for s in getattr(model, "stages", [model]) if type(s).__name__ == name), None)


def _fitted(model: Any) -> bool:
    from pyspark.ml import Model

    return isinstance(model, Model)


@check("k-means: three clusters that rediscover the species")
def test_kmeans(model: Transformer) -> str:
    """``model``: a fitted pipeline from the four measurements to a ``KMeans`` model with k=3; judged by the
    adjusted Rand index (ARI) between its clusters and the species, which it never saw."""
    from sklearn.metrics import adjusted_rand_score

    require(_fitted(model), f"model should be a FITTED pipeline (what `.fit(penguins)` returns), not "
                            f"{type(model).__name__}")
    kmeans = _stage(model, "KMeansModel")
    require(kmeans is not None, "the pipeline has no KMeans stage")
    k = kmeans.getK()
    require(k == K, f"k={k}: the task asks for {K} clusters (one per species, to compare with them)")
    rows = (model.transform(measured_penguins(active_spark())).select(*MEASURES, "species", kmeans.getPredictionCol())
            .toPandas().sort_values(list(MEASURES), kind="stable"))
    ari = float(adjusted_rand_score(rows["species"], rows[kmeans.getPredictionCol()]))
    scaler = _stage(model, "StandardScalerModel")
    require(ari >= ARI_LIMIT or scaler is not None,
            f"ARI {ari:.3f} is below {ARI_LIMIT}: without scaling, body mass (in grams, spread ~800) dominates every "
            "distance and the clusters are bands of weight — add a StandardScaler(withMean=True, withStd=True) "
            "between the VectorAssembler and KMeans, and cluster its output")
    require(ari >= ARI_LIMIT, f"ARI {ari:.3f} is below {ARI_LIMIT} (chapter 10: 0.793): this start landed in a poor "
                              "local minimum, or KMeans reads the unscaled column — check featuresCol, and try "
                              "another seed (chapter 10 keeps the best of several)")
    return f"k={k}, ARI {ari:.3f} against the species (chapter 10: 0.793)"


@check("Silhouette of your clustering, on the features k-means saw")
def test_silhouette(model: Transformer, silhouette: float) -> str:
    """``silhouette``: MLlib's ``ClusteringEvaluator`` silhouette of ``model``'s clusters of all measured penguins,
    computed on the (scaled) feature column that KMeans clustered."""
    from pyspark.ml.evaluation import ClusteringEvaluator

    require(isinstance(silhouette, numbers.Real), f"silhouette should be a number, not {type(silhouette).__name__}")
    kmeans = _stage(model, "KMeansModel")
    require(kmeans is not None, "the model has no KMeans stage (task 1)")
    scored = model.transform(measured_penguins(active_spark()))
    expected = ClusteringEvaluator(featuresCol=kmeans.getFeaturesCol(),
                                   predictionCol=kmeans.getPredictionCol()).evaluate(scored)
    others = {}
    for column in (c for c, kind in scored.dtypes if kind == "vector" and c != kmeans.getFeaturesCol()):
        others[column] = ClusteringEvaluator(featuresCol=column,
                                             predictionCol=kmeans.getPredictionCol()).evaluate(scored)
    for column, value in others.items():
        require(not np.isclose(silhouette, value, atol=5e-4),
                f"{silhouette:.3f} is the silhouette on `{column}`, but k-means clustered "
                f"`{kmeans.getFeaturesCol()}` — evaluate on that column (featuresCol=...)")
    require(-1 <= silhouette <= 1, f"{silhouette} is not a silhouette: it lies between -1 and 1")
    require(np.isclose(silhouette, expected, atol=5e-4),
            f"silhouette {silhouette:.3f}, but your clusters score {expected:.3f} — use "
            "ClusteringEvaluator(featuresCol=<the scaled column>) on model.transform(penguins)")
    return f"silhouette {expected:.3f} (chapter 10 at k=3: 0.641)"


def _wine_explained(standardise: bool) -> np.ndarray:
    """The share of variance explained by each principal component of the 13 wine measurements."""
    from helpers.datasets import load_pandas

    wines = load_pandas("wine", scale="full")
    X = wines[wine_features(wines)].to_numpy(dtype=float)
    X = X - X.mean(axis=0)
    if standardise:
        X = X / X.std(axis=0, ddof=1)
    eigen = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    return eigen / eigen.sum()


def wine_features(wines: DataFrame | Any) -> list[str]:
    """The 13 chemical measurements of a wine (every column but the cultivar)."""
    return [c for c in wines.columns if c not in ("cultivar", "cultivar_name", "class", "label")]


@check("PCA: two components of the standardised wine measurements")
def test_pca(model: Transformer) -> str:
    """``model``: a fitted pipeline of the 13 wine measurements, standardised, into a ``PCA`` with k=2."""
    require(_fitted(model), f"model should be a FITTED pipeline (what `.fit(wines)` returns), not "
                            f"{type(model).__name__}")
    pca = _stage(model, "PCAModel")
    require(pca is not None, "the pipeline has no PCA stage")
    explained = pca.explainedVariance.toArray()
    require(len(explained) == 2, f"the PCA keeps {len(explained)} components; the task asks for k=2 (a 2-D map)")
    raw, scaled = _wine_explained(False), _wine_explained(True)
    require(not np.isclose(explained[0], raw[0], atol=1e-3),
            f"PC1 explains {explained[0]:.1%}: that is proline alone, the measurement with the largest numbers — "
            "standardise first (StandardScaler(withMean=True, withStd=True)) so every measurement counts alike")
    require(np.allclose(explained, scaled[:2], atol=1e-3),
            f"the components explain {explained[0]:.1%} and {explained[1]:.1%}, expected {scaled[0]:.1%} and "
            f"{scaled[1]:.1%} for the 13 standardised measurements — use all of them, centred AND scaled")
    return f"PC1 {explained[0]:.1%} + PC2 {explained[1]:.1%} = {explained.sum():.1%} of the variance"


@check("Components needed to keep 90% of the variance")
def test_components(n_components: int) -> str:
    """``n_components``: the smallest number of principal components of the standardised wine measurements that
    together explain at least 90% of the variance."""
    require(isinstance(n_components, numbers.Integral), f"n_components should be an int, not "
                                                        f"{type(n_components).__name__}")
    cumulative = np.cumsum(_wine_explained(True))
    answer = int(np.argmax(cumulative >= VARIANCE_TARGET)) + 1
    raw = int(np.argmax(np.cumsum(_wine_explained(False)) >= VARIANCE_TARGET)) + 1
    require(not (n_components == raw != answer), f"{n_components}: that holds for the raw measurements, where "
                                                 "proline's huge numbers make up the variance — standardise first")
    require(1 <= n_components <= len(cumulative), f"{n_components} is not a number of components (1 to "
                                                  f"{len(cumulative)})")
    require(n_components >= answer, f"{n_components} components explain only {cumulative[n_components - 1]:.1%} "
                                    f"of the variance, below {VARIANCE_TARGET:.0%}")
    require(n_components == answer, f"{n_components} is more than needed: {answer} components already explain "
                                    f"{cumulative[answer - 1]:.1%} — the SMALLEST number that reaches "
                                    f"{VARIANCE_TARGET:.0%}")
    return f"{answer} components explain {cumulative[answer - 1]:.1%}"
