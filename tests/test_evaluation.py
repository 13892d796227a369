from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, StructField, StructType

from helpers import evaluation


@pytest.fixture(scope="module")
def predictions(spark):
    # label, P(class 1), predicted class at threshold 0.5
    rows = [(1.0, 0.9), (1.0, 0.7), (1.0, 0.4), (0.0, 0.6), (0.0, 0.2), (0.0, 0.1), (0.0, 0.3), (1.0, 0.8)]
    frame = spark.createDataFrame(
        [(label, Vectors.dense([1 - p, p]), float(p >= 0.5)) for label, p in rows],
        StructType([StructField("label", DoubleType()), StructField("probability", VectorUDT()),
                    StructField("prediction", DoubleType())]),
    )
    return evaluation.positive_probability(frame)


def test_binary_metrics_match_a_hand_count(predictions) -> None:
    metrics = evaluation.binary_metrics(predictions)
    # tp=3 (0.9, 0.7, 0.8), fp=1 (0.6), fn=1 (0.4), tn=3
    assert metrics["accuracy"] == 0.75
    assert metrics["precision"] == 0.75
    assert metrics["recall"] == 0.75
    assert metrics["f1"] == 0.75
    # 16 positive/negative pairs, 15 ranked correctly (0.4 < 0.6 is the only inversion)
    assert metrics["roc_auc"] == pytest.approx(15 / 16, abs=1e-4)
    assert 0.8 < metrics["pr_auc"] <= 1.0


def test_curves_and_confusion(predictions) -> None:
    c = evaluation.curves(predictions)
    assert c.roc_auc == pytest.approx(15 / 16)
    assert c.fpr[0] == 0 and c.tpr[-1] == 1
    assert np.array_equal(evaluation.confusion(predictions), np.array([[3, 1], [1, 3]]))


def test_regression_metrics(spark) -> None:
    frame = spark.createDataFrame([(1.0, 2.0), (3.0, 3.0), (5.0, 4.0)], "label double, prediction double")
    metrics = evaluation.regression_metrics(frame)
    assert metrics == {"rmse": round((2 / 3) ** 0.5, 4), "mae": round(2 / 3, 4), "r2": 0.75}


def test_leaderboard_sorts_best_first() -> None:
    board = evaluation.leaderboard({"a": {"auc": 0.7}, "b": {"auc": 0.9}}, sort_by="auc")
    assert list(board.index) == ["b", "a"]


def test_vector_feature_names_follow_the_assembler(spark) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    frame = spark.createDataFrame([(1.0, "a"), (2.0, "b"), (3.0, "c")], "x double, colour string")
    model = Pipeline(stages=[
        StringIndexer(inputCol="colour", outputCol="colour_index"),
        OneHotEncoder(inputCol="colour_index", outputCol="colour_onehot"),
        VectorAssembler(inputCols=["x", "colour_onehot"], outputCol="features"),
    ]).fit(frame)
    names = evaluation.vector_feature_names(model.transform(frame))
    assert names == ["x", "colour_onehot_a", "colour_onehot_b"]
