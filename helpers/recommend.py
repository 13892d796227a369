"""Recommendation helpers for notebook 15: a bias baseline, top-k lists for ``RankingEvaluator``, and the
small linear algebra that reuses a fitted ALS model (folding in a new user, item-item similarity).

Everything that touches many ratings stays a Spark DataFrame operation; only the factor matrices (one
short vector per item) are collected to NumPy, which is how a driver-side similarity search or a
fold-in for one new user would run in production too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

RANKING_METRICS = ("precisionAtK", "ndcgAtK", "recallAtK", "meanAveragePrecisionAtK")


@dataclass(frozen=True)
class BiasModel:
    """Rating ≈ global mean + item bias + user bias, each bias shrunk towards 0 by ``reg`` pseudo-ratings.

    ``items`` holds ``item_col``, ``b_item`` and ``n_item`` (training ratings per item); ``users`` holds
    ``user_col`` and ``b_user``.
    """

    mean: float
    items: DataFrame
    users: DataFrame
    reg: float
    user_col: str = "user_id"
    item_col: str = "movie_id"

    def predict(self, frame: DataFrame, output_col: str = "baseline") -> DataFrame:
        """``frame`` plus ``b_item``, ``n_item``, ``b_user`` and ``output_col`` = mean + b_item + b_user.

        An item or user the model has never seen gets a bias of 0, so the prediction falls back to the
        user's (or the item's) bias alone, or to the global mean: the baseline never leaves a gap.
        """
        from pyspark.sql import functions as F

        joined = (frame.join(self.items, self.item_col, "left")
                  .join(self.users, self.user_col, "left")
                  .fillna(0.0, subset=["b_item", "b_user"])
                  .fillna(0, subset=["n_item"]))
        return joined.withColumn(output_col, F.lit(self.mean) + F.col("b_item") + F.col("b_user"))


def fit_bias_model(ratings: DataFrame, reg: float, user_col: str = "user_id", item_col: str = "movie_id",
                   rating_col: str = "rating") -> BiasModel:
    """The regularised movie + user effects model (Irizarry, *Introduction to Data Science*, ch. 33):

    ``b_item = Σ(r − μ) / (n_item + reg)``, then ``b_user = Σ(r − μ − b_item) / (n_user + reg)``.
    """
    from pyspark.sql import functions as F

    if reg < 0:
        raise ValueError(f"reg must be >= 0, not {reg!r}.")
    mean = float(ratings.agg(F.avg(rating_col)).first()[0])
    items = (ratings.groupBy(item_col)
             .agg((F.sum(F.col(rating_col) - mean) / (F.count("*") + reg)).alias("b_item"),
                  F.count("*").alias("n_item"))
             .cache())
    users = (ratings.join(items.select(item_col, "b_item"), item_col)
             .groupBy(user_col)
             .agg((F.sum(F.col(rating_col) - mean - F.col("b_item")) / (F.count("*") + reg)).alias("b_user"))
             .cache())
    return BiasModel(mean, items, users, reg, user_col, item_col)


def warm_and_cold(frame: DataFrame, training: DataFrame, user_col: str = "user_id",
                  item_col: str = "movie_id") -> tuple[DataFrame, DataFrame]:
    """``(warm, cold)``: the rows of ``frame`` whose user and item both appear in ``training``, and the rest.

    A factor model has a vector only for the users and items it was trained on; the cold rows are the
    ones it cannot score (ALS returns NaN for them, or drops them with ``coldStartStrategy="drop"``).
    """
    known = (frame.join(training.select(user_col).distinct(), user_col, "left_semi")
             .join(training.select(item_col).distinct(), item_col, "left_semi"))
    return known, frame.join(known.select(user_col, item_col), [user_col, item_col], "left_anti")


def top_k_unseen(scores: np.ndarray, user_ids: np.ndarray, item_ids: np.ndarray, seen: pd.DataFrame, k: int,
                 user_col: str = "user_id", item_col: str = "movie_id") -> pd.DataFrame:
    """Each user's ``k`` best-scoring items among those they have not rated, from a dense score matrix.

    ``scores[u, i]`` scores ``item_ids[i]`` for ``user_ids[u]``; both id arrays must be sorted ascending.
    The (user, item) pairs in ``seen`` are never recommended (``ALSModel.recommendForUserSubset`` does not
    remove them). Ties go to the smaller item id, so the lists are the same on every run. Returns
    ``user_col`` and ``prediction``, a list of item ids as floats: what ``RankingEvaluator`` expects.

    A dense matrix suits a catalogue of thousands of items scored on the driver (here 1.5 million
    numbers); at millions of users × items, ``recommendForAllUsers`` does the same blockwise on the cluster.
    """
    import pandas as pd

    users, items = np.asarray(user_ids), np.asarray(item_ids)
    matrix = np.array(np.broadcast_to(scores, (len(users), len(items))), dtype=np.float64)
    if np.any(np.diff(users) <= 0) or np.any(np.diff(items) <= 0):
        raise ValueError("user_ids and item_ids must be sorted ascending without repeats.")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k!r}.")
    pairs = seen[[user_col, item_col]].to_numpy()
    rows = np.clip(np.searchsorted(users, pairs[:, 0]), 0, len(users) - 1)
    cols = np.clip(np.searchsorted(items, pairs[:, 1]), 0, len(items) - 1)
    known = (users[rows] == pairs[:, 0]) & (items[cols] == pairs[:, 1])
    matrix[rows[known], cols[known]] = -np.inf
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    lists = [[float(items[j]) for j in row if np.isfinite(matrix[u, j])] for u, row in enumerate(order)]
    return pd.DataFrame({user_col: users, "prediction": lists})


def relevant_items(held_out: DataFrame, min_rating: float = 4.0, user_col: str = "user_id",
                   item_col: str = "movie_id", rating_col: str = "rating") -> DataFrame:
    """Per user, the held-out items rated at least ``min_rating``, as ``label`` (an array of doubles).

    Users without any such item are left out: precision and NDCG are undefined for them.
    """
    from pyspark.sql import functions as F

    return (held_out.where(F.col(rating_col) >= min_rating)
            .groupBy(user_col)
            .agg(F.array_sort(F.collect_list(F.col(item_col).cast("double"))).alias("label")))


def ranking_metrics(top: DataFrame, relevant: DataFrame, k: int, user_col: str = "user_id",
                    metrics: Sequence[str] = ("precisionAtK", "ndcgAtK"),
                    digits: int = 4) -> dict[str, float]:
    """``RankingEvaluator`` metrics at ``k`` over the users of ``relevant``, rounded.

    A user in ``relevant`` whom ``top`` has no list for counts with an empty list (a miss), so a
    recommender cannot look better by skipping hard users.
    """
    from pyspark.ml.evaluation import RankingEvaluator
    from pyspark.sql import functions as F

    unknown = [m for m in metrics if m not in RANKING_METRICS]
    if unknown:
        raise ValueError(f"Unknown ranking metric(s) {unknown}; choose from {RANKING_METRICS}.")
    joined = (relevant.join(top, user_col, "left")
              .withColumn("prediction", F.coalesce("prediction", F.array().cast("array<double>"))))
    evaluator = RankingEvaluator(k=k)
    return {name: round(float(evaluator.evaluate(joined, {evaluator.metricName: name})), digits)
            for name in metrics}


def factor_matrix(factors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, matrix)`` from an ALS model's ``userFactors`` or ``itemFactors`` (``id``, ``features``),
    sorted by id: row ``j`` of ``matrix`` is the vector of ``ids[j]``."""
    rows = factors.orderBy("id").collect()
    ids = np.array([row["id"] for row in rows], dtype=np.int64)
    matrix = np.array([row["features"] for row in rows], dtype=np.float64)
    return ids, matrix.reshape(len(ids), -1)


def factor_rows(ids: np.ndarray, matrix: np.ndarray, wanted: Sequence[int] | np.ndarray) -> np.ndarray:
    """The rows of ``matrix`` (from ``factor_matrix``) for the ids in ``wanted``, in that order.

    Raises ``KeyError`` for an id without a vector rather than silently returning a neighbour's row.
    """
    wanted = np.asarray(wanted)
    where = np.clip(np.searchsorted(ids, wanted), 0, len(ids) - 1)
    missing = wanted[ids[where] != wanted]
    if missing.size:
        raise KeyError(f"No factor vector for id(s) {missing.tolist()[:10]} (not in the training data).")
    return matrix[where]


def fold_in(item_factors: np.ndarray, ratings: np.ndarray, reg_param: float, implicit: bool = False,
            alpha: float = 1.0, all_item_factors: np.ndarray | None = None) -> np.ndarray:
    """A new user's factor vector from a few ratings, with the item factors held fixed.

    This is one half-step of ALS, solved exactly as MLlib solves it (regularisation weighted by the
    number of ratings, as in ALS-WR):

    * explicit: ``(Σ y yᵀ + λ n I) x = Σ r y`` over the ``n`` rated items;
    * implicit: ``(YᵀY + Σ c₁ y yᵀ + λ n I) x = Σ (1 + c₁) y`` with ``c₁ = alpha·|r|`` for the rated items,
      where ``YᵀY`` runs over *all* items (``all_item_factors``), since every unrated item is a 0.

    ``item_factors`` holds one row per rated item, in the order of ``ratings``.
    """
    y = np.asarray(item_factors, dtype=np.float64)
    r = np.asarray(ratings, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != r.shape[0] or r.ndim != 1:
        raise ValueError(f"item_factors must be (n, rank) and ratings (n,); got {y.shape} and {r.shape}.")
    if r.size == 0:
        raise ValueError("fold_in needs at least one rating.")
    rank = y.shape[1]
    if implicit:
        if all_item_factors is None:
            raise ValueError("The implicit fold-in needs all_item_factors (the YᵀY term).")
        every = np.asarray(all_item_factors, dtype=np.float64)
        c1 = alpha * np.abs(r)
        positive = r > 0
        lhs = every.T @ every + (y * c1[:, None]).T @ y
        rhs = ((1.0 + c1) * positive) @ y
        count = int(positive.sum())
    else:
        lhs = y.T @ y
        rhs = r @ y
        count = r.size
    lhs = lhs + reg_param * count * np.eye(rank)
    return np.linalg.solve(lhs, rhs)


def cosine_neighbours(ids: np.ndarray, matrix: np.ndarray, target: int, k: int = 10) -> pd.Series:
    """The ``k`` items whose factor vectors point most nearly the same way as ``target``'s, by cosine
    similarity (the target itself left out), most similar first, indexed by item id."""
    import pandas as pd

    where = np.flatnonzero(ids == target)
    if where.size == 0:
        raise KeyError(f"Item {target!r} has no factor vector (it was not in the training data).")
    norms = np.linalg.norm(matrix, axis=1)
    unit = matrix / np.where(norms > 0, norms, 1.0)[:, None]
    similarity = unit @ unit[where[0]]
    similarity[where[0]] = -np.inf
    order = np.lexsort((ids, -similarity))[:k]  # highest similarity first, ties by smaller id
    return pd.Series(similarity[order], index=pd.Index(ids[order], name="id"), name="cosine")
