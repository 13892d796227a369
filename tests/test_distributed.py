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


def test_score_udf_matches_the_model_on_the_driver(spark, data, model) -> None:
    frame = spark.createDataFrame(data).repartition(3)
    p1 = distributed.score_udf(model, ["x1", "x2"])
    scored = frame.withColumn("p1", p1("x1", "x2")).toPandas().sort_values("row")
    expected = model.predict_proba(data[["x1", "x2"]])[:, 1]
    np.testing.assert_allclose(scored["p1"].to_numpy(), expected, rtol=1e-12)


def test_score_udf_with_one_column_and_a_prepare_step(spark, data) -> None:
    one = LogisticRegression().fit(data[["x1"]] * 2, data["label"])
    frame = spark.createDataFrame(data)
    p1 = distributed.score_udf(one, ["x1"], prepare=lambda f: f * 2, positive_index=0)
    scored = frame.withColumn("p0", p1("x1")).toPandas().sort_values("row")
    np.testing.assert_allclose(scored["p0"].to_numpy(), one.predict_proba(data[["x1"]] * 2)[:, 0], rtol=1e-12)


def test_score_udf_needs_features_and_a_known_method(model) -> None:
    with pytest.raises(ValueError, match="at least one feature"):
        distributed.score_udf(model, [])
    with pytest.raises(ValueError, match="method must be one of"):
        distributed.score_udf(model, ["x1"], method="transform")


def test_score_udf_can_return_the_decision_function(spark, data) -> None:
    from sklearn.svm import SVC

    svm = SVC(kernel="rbf").fit(data[["x1", "x2"]], data["label"])
    margin = distributed.score_udf(svm, ["x1", "x2"], method="decision_function")
    scored = spark.createDataFrame(data).withColumn("margin", margin("x1", "x2")).toPandas().sort_values("row")
    np.testing.assert_allclose(scored["margin"].to_numpy(), svm.decision_function(data[["x1", "x2"]]), rtol=1e-10)


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


def test_run_trials_runs_each_setting_in_its_own_task_in_order(spark) -> None:
    def trial(params: dict) -> dict:
        from pyspark import TaskContext

        return {"double": 2 * params["value"], "partition": TaskContext.get().partitionId()}

    settings = [{"value": v, "name": n} for v, n in [(3, "c"), (1, "a"), (2, "b"), (5, "e")]]
    results = distributed.run_trials(spark, trial, settings)
    assert list(results.columns) == ["value", "name", "double", "partition"]
    assert results["value"].tolist() == [3, 1, 2, 5]
    assert results["double"].tolist() == [6.0, 2.0, 4.0, 10.0]
    assert sorted(results["partition"].tolist()) == [0.0, 1.0, 2.0, 3.0]


def test_run_trials_needs_settings(spark) -> None:
    with pytest.raises(ValueError, match="at least one setting"):
        distributed.run_trials(spark, lambda p: {}, [])
