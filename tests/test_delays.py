"""helpers.delays: features, the fixed split, candidates, the logged model's contract, ensure_champion."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from helpers import delays, registry
from tests.test_registry import registry_store, synthetic_flights  # noqa: F401  (a fixture, used by name)

# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def enriched_rows(spark):
    """Three enriched-flight rows: late, on time (14 minutes) and cancelled, one with an impossible wind."""
    base = {"year": 2013, "month": 1, "day": 1, "dep_time": 600, "sched_dep_time": 600, "dep_delay": 0.0,
            "arr_time": 900, "sched_arr_time": 900, "carrier": "UA", "flight": 1, "tailnum": "N1",
            "origin": "EWR", "dest": "ORD", "air_time": 120.0, "distance": 719, "hour": 6, "minute": 0,
            "time_hour": dt.datetime(2013, 1, 1, 6), "temp": 39.0, "dewp": 28.0, "humid": 64.0,
            "wind_dir": 260.0, "wind_speed": 12.7, "wind_gust": None, "precip": 0.0, "pressure": 1012.0,
            "visib": 10.0}
    rows = [
        {**base, "arr_delay": 15.0},
        {**base, "flight": 2, "arr_delay": 14.0, "wind_speed": 1048.0, "pressure": None},
        {**base, "flight": 3, "arr_delay": None, "day": 5},
    ]
    schema = ("year long, month long, day long, dep_time long, sched_dep_time long, dep_delay double, "
              "arr_time long, sched_arr_time long, carrier string, flight long, tailnum string, "
              "origin string, "
              "dest string, air_time double, distance long, hour long, minute long, time_hour timestamp, "
              "temp double, dewp double, humid double, wind_dir double, wind_speed double, wind_gust double, "
              "precip double, pressure double, visib double, arr_delay double")
    names = [field.split(" ")[0] for field in schema.split(", ")]
    return spark.createDataFrame([tuple(row[n] for n in names) for row in rows], schema)


def test_delay_features_types_label_and_cleaning(spark) -> None:
    features = delays.delay_features(enriched_rows(spark))
    assert features.columns == delays.COLUMNS
    types = dict(features.dtypes)
    assert all(types[c] == "bigint" for c in delays.SCHEDULE)
    assert all(types[c] == "double" for c in delays.WEATHER)
    assert all(types[c] == "string" for c in delays.CATEGORICAL)
    rows = features.orderBy("flight").toPandas()
    assert rows[delays.LABEL].tolist()[:2] == [1, 0] and pd.isna(rows[delays.LABEL].iloc[2])  # 15 min is late
    assert rows["day_of_week"].tolist() == [3, 3, 7]  # 1 January 2013 was a Tuesday (Sunday = 1)
    assert rows["sched_hour"].tolist() == [6, 6, 6]
    assert pd.isna(rows["wind_speed"].iloc[1]) and rows["wind_speed"].iloc[0] == pytest.approx(12.7)


def test_training_frames_are_the_early_months_with_a_fixed_disjoint_validation_set(spark) -> None:
    train, validation = delays.training_frames(spark)
    again_train, again_validation = delays.training_frames(spark)
    pd.testing.assert_frame_equal(train, again_train)
    pd.testing.assert_frame_equal(validation, again_validation)
    assert set(train["month"]) | set(validation["month"]) == set(delays.TRAINING_MONTHS)
    keys = list(delays.FLIGHT_KEY)
    assert train.merge(validation, on=keys).empty
    share = len(validation) / (len(train) + len(validation))
    assert 0.17 < share < 0.23
    assert set(train[delays.LABEL]) == {0, 1} and 0.15 < train[delays.LABEL].mean() < 0.35
    expected = (["int64"] * len(delays.SCHEDULE) + ["float64"] * len(delays.WEATHER)
                + ["object"] * len(delays.CATEGORICAL))
    assert train[delays.FEATURES].dtypes.astype(str).tolist() == expected


@pytest.mark.parametrize("kind", delays.KINDS)
def test_candidates_are_deterministic_and_handle_unseen_categories(kind: str) -> None:
    train, new = synthetic_flights(seed=5), synthetic_flights(rows=50, seed=6)
    new.loc[0, "dest"] = "ZZZ"  # a destination never seen in training
    new.loc[1, "temp"] = np.nan
    candidate = delays.Candidate(kind, {"n_estimators": 40} if kind == "lightgbm" else {"C": 0.5})
    first = delays.train_candidate(candidate, train).predict_proba(new[delays.FEATURES])
    second = delays.train_candidate(candidate, train).predict_proba(new[delays.FEATURES])
    np.testing.assert_array_equal(first, second)
    assert first.shape == (50, 2) and np.all((first >= 0) & (first <= 1))
    assert delays.delay_probability(first).tolist() == first[:, 1].tolist()


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        delays.build_pipeline(delays.Candidate("random_forest"))


def test_logged_model_takes_named_columns_and_returns_two_probabilities(
        registry_store: str) -> None:  # noqa: F811
    import mlflow
    from mlflow.exceptions import MlflowException

    train = synthetic_flights(seed=7)
    model = delays.train_candidate(delays.REFERENCE, train)
    info = delays.log_candidate(model, delays.REFERENCE, train, train)
    assert info.signature.inputs.input_names() == delays.FEATURES
    assert info.signature.inputs.required_input_names() == delays.FEATURES
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    rows = train[delays.FEATURES].head(20).copy()
    rows.loc[0, "pressure"] = np.nan  # a missing weather value is accepted...
    output = loaded.predict(rows)
    np.testing.assert_allclose(delays.delay_probability(output), model.predict_proba(rows)[:, 1])
    with pytest.raises(MlflowException, match="carrier"):  # ...a missing column is not
        loaded.predict(rows.drop(columns="carrier"))
    native = mlflow.sklearn.load_model(info.model_uri)  # the skops file loads back as the sklearn pipeline
    assert type(native).__name__ == "Pipeline"
    run = mlflow.get_run(info.run_id)
    assert run.data.params["kind"] == "lightgbm" and "roc_auc" in run.data.metrics
    assert run.data.tags["model_name"] == delays.MODEL_NAME
    key = "dataset.flights.sha256"
    assert run.data.tags[key] == registry.lineage_tags(["flights"])[key]


def test_a_candidate_for_another_model_is_tagged_with_that_name(registry_store: str) -> None:  # noqa: F811
    import mlflow

    train, logistic = synthetic_flights(rows=300, seed=8), delays.Candidate("logistic")
    name = "flight_delay_jobs"
    info = delays.log_candidate(delays.train_candidate(logistic, train), logistic, train, model_name=name)
    assert mlflow.get_run(info.run_id).data.tags["model_name"] == name
    found = mlflow.search_runs(filter_string=f"tags.model_name = '{name}'")
    assert found["run_id"].tolist() == [info.run_id]


def test_ensure_champion_trains_and_registers_only_once(
        spark, registry_store: str, capsys) -> None:  # noqa: F811
    champion = delays.ensure_champion(spark, name="unit_ensure")
    assert "had no champion" in capsys.readouterr().out
    assert str(champion.version) == "1" and champion.tags["gate.decision"] == "promoted"
    assert float(champion.tags["gate.roc_auc"]) > 0.7
    again = delays.ensure_champion(spark, name="unit_ensure")
    assert "champion found" in capsys.readouterr().out
    assert str(again.version) == "1" and registry.versions("unit_ensure").index.tolist() == [1]
