from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.broadcast import Broadcast
from sklearn.linear_model import LogisticRegression

from helpers import distributed


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=200), rng.normal(size=200)
    label = (x1 + 0.5 * x2 + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return pd.DataFrame({"row": np.arange(200), "x1": x1, "x2": x2, "label": label})


@pytest.fixture(scope="module")
def model(data) -> LogisticRegression:
    return LogisticRegression().fit(data[["x1", "x2"]], data["label"])


def test_share_broadcasts_on_a_classic_session_and_unwraps(spark) -> None:
    shared = distributed.share({"a": 1}, spark)
    assert isinstance(shared, Broadcast)
    assert distributed.shared_value(shared) == {"a": 1}
    assert distributed.shared_value("plain") == "plain"


def test_shared_objects_may_hold_functions_defined_on_the_driver(spark, data) -> None:
    # Plain pickle (a broadcast's default) cannot ship a lambda or a notebook function; cloudpickle can.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    doubled = make_pipeline(FunctionTransformer(lambda f: f * 2), LogisticRegression()).fit(data[["x1"]], data["label"])
    scored = distributed.score_partitions(spark.createDataFrame(data), doubled, ["x1"]).toPandas().sort_values("row")
    np.testing.assert_allclose(scored["p1"].to_numpy(), doubled.predict_proba(data[["x1"]])[:, 1], rtol=1e-12)


def test_model_scores_returns_one_double_per_row(data, model) -> None:
    X = data[["x1", "x2"]]
    labels = distributed.model_scores(model, X, method="predict")
    assert labels.dtype == "float64" and set(labels.unique()) <= {0.0, 1.0}
    np.testing.assert_allclose(distributed.model_scores(model, X, positive_index=0), model.predict_proba(X)[:, 0])


def test_score_partitions_keeps_every_column_and_adds_the_score(spark, data, model) -> None:
    frame = spark.createDataFrame(data).repartition(4)
    scored = distributed.score_partitions(frame, model, ["x1", "x2"], output_col="score")
    assert scored.columns == ["row", "x1", "x2", "label", "score"]
    result = scored.toPandas().sort_values("row")
    np.testing.assert_allclose(result["score"].to_numpy(), model.predict_proba(data[["x1", "x2"]])[:, 1], rtol=1e-12)


def test_score_partitions_reports_bad_columns(spark, data, model) -> None:
    frame = spark.createDataFrame(data)
    with pytest.raises(ValueError, match="not in the DataFrame: x3"):
        distributed.score_partitions(frame, model, ["x1", "x3"])
    with pytest.raises(ValueError, match="already has a column 'label'"):
        distributed.score_partitions(frame, model, ["x1", "x2"], output_col="label")
    with pytest.raises(ValueError, match="method must be one of"):
        distributed.score_partitions(frame, model, ["x1", "x2"], method="score")

