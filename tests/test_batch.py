"""helpers.batch: loading once per partition, spark_udf / mapInPandas agreeing with the driver, provenance
columns, and idempotent partition overwrite."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from helpers import batch, delays
from tests.test_registry import registry_store, synthetic_flights  # noqa: F401  (a fixture, used by name)

# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


class CountingModel:
    """A stand-in for a pyfunc model: ``predict`` returns [1 - x, x] per row, x = the ``x`` column / 10."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame["x"].to_numpy(dtype="float64") / 10
        return np.column_stack([1 - x, x])


def test_version_uri_names_a_fixed_version() -> None:
    assert batch.version_uri("flight_delay", 3) == "models:/flight_delay/3"
    assert batch.version_uri("main.flights.flight_delay", "12") == "models:/main.flights.flight_delay/12"


def test_score_partitions_loads_once_per_partition_and_keeps_columns() -> None:
    loads: list[str] = []

    def loader(path: str) -> CountingModel:
        loads.append(path)
        return CountingModel()

    batches = [pd.DataFrame({"key": [i, i + 1], "x": [1.0, 2.0], "other": ["a", "b"]}, index=[7, 8])
               for i in range(0, 6, 2)]
    out = list(batch.score_partitions(iter(batches), "/model", features=["x"], keep=["key"], loader=loader))
    assert loads == ["/model"]  # three batches, one load
    assert [frame[batch.BATCH].iloc[0] for frame in out] == [0, 1, 2]
    assert len({frame[batch.LOAD_ID].iloc[0] for frame in out}) == 1
    first = out[0]
    assert list(first.columns) == ["key", batch.SCORE, batch.LOAD_ID, batch.BATCH]
    assert first["key"].tolist() == [0, 1] and first[batch.SCORE].tolist() == pytest.approx([0.1, 0.2])

    # a second partition is a second call: a second load, with another id; an empty partition loads nothing
    again = list(batch.score_partitions(iter(batches[:1]), "/model", ["x"], ["key"], loader=loader))
    assert len(loads) == 2 and again[0][batch.LOAD_ID].iloc[0] != first[batch.LOAD_ID].iloc[0]
    assert list(batch.score_partitions(iter([]), "/model", ["x"], ["key"], loader=loader)) == []
    assert len(loads) == 2


def test_rows_per_second() -> None:
    assert batch.rows_per_second(1000, 0.5) == pytest.approx(2000.0)
    with pytest.raises(ValueError):
        batch.rows_per_second(10, 0.0)


def test_stamp_and_dynamic_overwrite_replace_only_the_written_partition(spark, tmp_path) -> None:
    def scored(month: int, flights: range, p: float):
        frame = spark.createDataFrame(pd.DataFrame({"flight": list(flights), "month": month, batch.SCORE: p}))
        return batch.stamp(frame, "flight_delay", 4, dt.datetime(2030, 1, month, 3, 0))

    table = tmp_path / "predictions"
    batch.write_partitions(scored(1, range(3), 0.1).unionByName(scored(2, range(5), 0.2)), table, ["month"])
    before = batch.partition_summary(spark, table, ["month"])
    assert before["rows"].tolist() == [3, 5] and before["model_versions"].tolist() == ["4", "4"]
    assert sorted(p.name for p in table.glob("month=*")) == ["month=1", "month=2"]

    batch.write_partitions(scored(2, range(4), 0.3), table, ["month"])  # re-run month 2 with other rows
    after = batch.partition_summary(spark, table, ["month"])
    assert after["rows"].tolist() == [3, 4]  # month 1 untouched, month 2 replaced, not appended
    assert after["scored_at"].iloc[0] == before["scored_at"].iloc[0]
    rows = spark.read.parquet(str(table)).toPandas()
    assert rows.loc[rows["month"] == 2, batch.SCORE].tolist() == pytest.approx([0.3] * 4)
    assert set(rows[batch.MODEL_NAME_COLUMN]) == {"flight_delay"}
    types = dict(spark.read.parquet(str(table)).dtypes)
    assert types[batch.MODEL_VERSION_COLUMN] == "string" and types[batch.SCORED_AT_COLUMN] == "timestamp"


def test_spark_udf_and_map_in_pandas_match_the_driver(spark, registry_store, tmp_path) -> None:  # noqa: F811
    import mlflow

    train = synthetic_flights(rows=400, seed=3)
    candidate = delays.Candidate("lightgbm", {"n_estimators": 20})
    info = delays.log_candidate(delays.train_candidate(candidate, train), candidate, train, run_name="batch test")
    new = synthetic_flights(rows=300, seed=4).assign(flight=range(300))
    new.loc[0, "dest"] = "ZZZ"  # unseen category, and a missing weather value
    new.loc[1, "temp"] = np.nan
    expected = delays.delay_probability(mlflow.pyfunc.load_model(info.model_uri).predict(new[delays.FEATURES]))

    frame = spark.createDataFrame(new).repartition(3, "flight")
    by_udf = batch.score_with_spark_udf(spark, frame, info.model_uri, delays.FEATURES)
    folder = batch.download_model(info.model_uri, tmp_path / "model")
    by_map = batch.score_with_map_in_pandas(frame, folder, delays.FEATURES, keep=["flight"])
    assert set(by_map.columns) == {"flight", batch.SCORE, batch.LOAD_ID, batch.BATCH}
    batch.evaluate_fully(by_map)  # every row scored without an error (its seconds are not the point here)

    udf_scores = by_udf.select("flight", batch.SCORE).toPandas().sort_values("flight")
    # the features reach the model by name: the same scores whatever the order of the columns handed over
    reordered = batch.score_with_spark_udf(spark, frame, info.model_uri, list(reversed(delays.FEATURES)))
    np.testing.assert_allclose(reordered.select("flight", batch.SCORE).toPandas().sort_values("flight")[batch.SCORE]
                               .to_numpy(), expected, rtol=0, atol=1e-12)
    mapped = by_map.toPandas().sort_values("flight")
    np.testing.assert_allclose(udf_scores[batch.SCORE].to_numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mapped[batch.SCORE].to_numpy(), expected, rtol=0, atol=1e-12)
    assert mapped[batch.LOAD_ID].nunique() == 3  # one load per (non-empty) partition
