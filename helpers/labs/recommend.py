"""Checks for Lab 15 · Recommendation with ALS (chapter 15) on a sample of MovieLens ratings.

The lab's tasks: keep the test ratings a factor model can score (the cold-start problem), compute shrunk movie
effects, fit ALS and measure it with ``coldStartStrategy``, and fit ALS on what the movie and user effects leave
over. The checks rebuild the split and the reference values with ``helpers.recommend`` and re-score the learner's
models on the lab's test ratings, so results are judged, never code.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import TYPE_CHECKING, Any

from helpers.labs import active_spark, check, require

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

KEYS = ["user_id", "movie_id"]
#: The pseudo-ratings that shrink every effect towards 0 (chapter 15 chose λ = 10 on validation ratings).
BIAS_REG = 10.0
#: Chapter 15 (test ratings): movie + user effects 0.899, ALS on the raw ratings 1.000 (0.967 tuned), effects + ALS
#: on the residuals 0.891. The lab's split is the chapter's train + validation / test split, so the same numbers: the
#: residual model (rank 16, regParam 0.3) must do at least as well as the effects alone (no slack).
RESIDUAL_SLACK = 0.0
#: ALS on the raw ratings (rank 10, regParam 0.1) scores about 1.0 in chapter 15; a working fit is below this.
ALS_RMSE_LIMIT = 1.1


def rating_sets(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """(train, test) of the lab: chapter 15's sample (40% of the users, about 38,000 ratings), 20% of the ratings
    held out by a hash of the (user, movie) pair."""
    from helpers.datasets import load
    from helpers.splits import hash_split

    ratings = load("movielens", spark, scale="default").select("user_id", "movie_id", "title", "rating")
    return hash_split(ratings, test_fraction=0.2, keys=KEYS)


@functools.cache
def _sets() -> tuple[DataFrame, DataFrame, DataFrame]:
    from helpers import recommend

    train, test = (frame.cache() for frame in rating_sets(active_spark()))
    warm, _ = recommend.warm_and_cold(test, train)
    return train, test, warm.cache()


@functools.cache
def _effects_rmse() -> float:
    from helpers import recommend

    train, _, warm = _sets()
    return _rmse(recommend.fit_bias_model(train, BIAS_REG).predict(warm), "baseline")


def _rmse(frame: DataFrame, column: str = "prediction") -> float:
    from pyspark.sql import functions as F

    value = frame.select(F.sqrt(F.avg((F.col("rating") - F.col(column)) ** 2))).first()[0]
    return float("nan") if value is None else float(value)


@check("Warm test ratings: user and movie both seen in training")
def test_warm(test_warm: DataFrame) -> str:
    """``test_warm``: the test ratings whose user AND movie both appear in ``train``, each once."""
    from pyspark.sql import DataFrame as SparkFrame

    require(isinstance(test_warm, SparkFrame), f"test_warm should be a Spark DataFrame, not "
                                               f"{type(test_warm).__name__}")
    missing = [c for c in (*KEYS, "rating") if c not in test_warm.columns]
    require(not missing, f"test_warm lacks the column(s) {missing}: keep the test rows' columns")
    train, test, warm = _sets()
    n, expected, total = test_warm.count(), warm.count(), test.count()
    distinct = test_warm.select(*KEYS).distinct().count()
    require(n == distinct, f"{n:,} rows but only {distinct:,} distinct (user, movie) pairs: a join with train's "
                           "rows repeats each test rating — join with the DISTINCT ids (or use a left_semi join)")
    require(n != total, f"all {total:,} test ratings are kept: remove those of movies that have no rating in train "
                        "(a factor model has no vector for them)")
    cold = test_warm.join(train.select("movie_id").distinct(), "movie_id", "left_anti").count()
    require(cold == 0, f"{cold:,} of the kept ratings are of movies never rated in train")
    require(n == expected, f"{n:,} ratings kept, expected {expected:,}: keep every test rating whose user and movie "
                           "both appear in train")
    return f"{n:,} of {total:,} test ratings are warm; {total - n:,} are of movies unseen in training"


@check("Movie effects, shrunk towards zero by λ = 10 pseudo-ratings")
def test_movie_effects(movie_effects: DataFrame) -> str:
    """``movie_effects``: per ``movie_id`` of train, ``b_item = Σ(rating − μ) / (n + 10)`` with μ the mean training
    rating and n the movie's training ratings."""
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import functions as F

    require(isinstance(movie_effects, SparkFrame), f"movie_effects should be a Spark DataFrame, not "
                                                   f"{type(movie_effects).__name__}")
    missing = [c for c in ("movie_id", "b_item") if c not in movie_effects.columns]
    require(not missing, f"movie_effects lacks the column(s) {missing}")
    train = _sets()[0]
    mean = float(train.agg(F.avg("rating")).first()[0])
    stats = train.groupBy("movie_id").agg(F.sum(F.col("rating") - mean).alias("s"), F.count("*").alias("n"),
                                          F.avg("rating").alias("avg"))
    got = movie_effects.select("movie_id", F.col("b_item").cast("double").alias("got"))
    joined = stats.join(got, "movie_id", "left")
    row = joined.agg(
        F.count("*").alias("movies"), F.count("got").alias("found"),
        F.max(F.abs(F.col("got") - F.col("s") / (F.col("n") + BIAS_REG))).alias("error"),
        F.max(F.abs(F.col("got") - F.col("s") / F.col("n"))).alias("unshrunk"),
        F.max(F.abs(F.col("got") - F.col("avg"))).alias("raw_mean"),
    ).first()
    require(movie_effects.count() == row["movies"] and row["found"] == row["movies"],
            f"movie_effects has {movie_effects.count():,} rows for the {row['movies']:,} movies of train: one row "
            "per movie of train")
    require(row["raw_mean"] > 1e-6, "b_item is the movie's mean rating: subtract the global mean μ first — the "
                                    "effect is how much better than average the movie is")
    require(row["unshrunk"] > 1e-6, "b_item is the plain average of (rating − μ): a movie rated once gets its whole "
                                    f"deviation — divide the sum by n + {BIAS_REG:g}, not by n")
    require(row["error"] < 1e-6, f"b_item differs from Σ(rating − μ) / (n + {BIAS_REG:g}) by up to "
                                 f"{row['error']:.3f} — μ is the mean of ALL training ratings")
    top = movie_effects.orderBy(F.desc("b_item")).first()
    return f"{row['movies']:,} movies; the largest effect is {top['b_item']:+.3f} stars"


@check("ALS on the raw ratings, scored on the warm test ratings")
def test_als(als_model: Any, als_rmse: float) -> str:
    """``als_model``: ALS fitted on train (ratings); ``als_rmse``: its RMSE on the test ratings it can score."""
    from pyspark.ml.recommendation import ALSModel

    require(isinstance(als_model, ALSModel), f"als_model should be a FITTED ALS model (`ALS(...).fit(train)`), not "
                                             f"{type(als_model).__name__}")
    require(isinstance(als_rmse, numbers.Real), f"als_rmse should be a number, not {type(als_rmse).__name__}")
    require(not math.isnan(als_rmse), "als_rmse is NaN: the test set holds movies ALS never saw, which it predicts as "
                                      "NaN — set coldStartStrategy=\"drop\" (and say how many rows it dropped)")
    _, test, warm = _sets()
    model = als_model.copy().setColdStartStrategy("drop")
    actual = _rmse(model.transform(test))
    require(math.isclose(als_rmse, actual, abs_tol=1e-3),
            f"als_rmse is {als_rmse:.4f} but the model scores {actual:.4f} on the test ratings it can score — "
            "RegressionEvaluator(labelCol=\"rating\") on als_model.transform(test)")
    require(actual < ALS_RMSE_LIMIT, f"RMSE {actual:.3f} is above {ALS_RMSE_LIMIT}: fit ALS with userCol=\"user_id\", "
                                     "itemCol=\"movie_id\", ratingCol=\"rating\", rank 10, regParam 0.1")
    effects = _effects_rmse()
    verdict = (f"worse than the movie + user effects ({effects:.3f}), as in chapter 15 (defaults 1.000, tuned 0.967, "
               "effects 0.899)" if actual > effects else
               f"as good as or better than the movie + user effects ({effects:.3f}), which chapter 15's ALS on the "
               "raw ratings never was — compare the settings with the chapter's")
    return f"RMSE {actual:.3f} — {verdict}"


@check("Effects + ALS on the residuals")
def test_residual_model(residual_model: Any, residual_rmse: float) -> str:
    """``residual_model``: ALS fitted on ``residual = rating − baseline`` of the movie + user effects (λ = 10);
    ``residual_rmse``: the RMSE on the warm test ratings of ``baseline + residual_model's prediction``."""
    from pyspark.ml.recommendation import ALSModel
    from pyspark.sql import functions as F

    from helpers import recommend

    require(isinstance(residual_model, ALSModel), f"residual_model should be a FITTED ALS model, not "
                                                  f"{type(residual_model).__name__}")
    require(isinstance(residual_rmse, numbers.Real), f"residual_rmse should be a number, not "
                                                     f"{type(residual_rmse).__name__}")
    train, _, warm = _sets()
    scored = (residual_model.copy().setColdStartStrategy("drop")
              .transform(recommend.fit_bias_model(train, BIAS_REG).predict(warm)))
    alone = _rmse(scored)
    require(not math.isclose(residual_rmse, alone, abs_tol=1e-3) or alone < 1.5,
            f"RMSE {residual_rmse:.3f}: the prediction is only the residual — add the baseline back "
            "(prediction + baseline) before comparing with the rating")
    require(alone > 1.5, f"the model alone predicts ratings (RMSE {alone:.3f} without the baseline): fit it on "
                         "ratingCol=\"residual\", the rating minus the effects' baseline")
    actual = _rmse(scored.withColumn("combined", F.col("prediction") + F.col("baseline")), "combined")
    require(math.isclose(residual_rmse, actual, abs_tol=1e-3),
            f"residual_rmse is {residual_rmse:.4f} but baseline + prediction scores {actual:.4f} on the warm test "
            "ratings")
    effects = _effects_rmse()
    require(actual <= effects + RESIDUAL_SLACK,
            f"RMSE {actual:.3f} is worse than the effects alone ({effects:.3f}): with regParam 0.1 the residual "
            "model over-fits — chapter 15 found regParam 0.3 best (rank 16)")
    return f"RMSE {actual:.3f} vs the effects alone {effects:.3f} (chapter 15: 0.891 vs 0.899)"
