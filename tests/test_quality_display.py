from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import functions as F

from helpers import display, quality


@pytest.fixture(scope="module")
def flights(spark):
    rows = [(1, "UA", 10.0), (2, "AA", None), (3, "UA", -5.0), (4, None, 900.0)]
    return spark.createDataFrame(rows, "id long, carrier string, delay double")


def test_null_fractions_per_column(flights) -> None:
    shares = quality.null_fractions(flights)
    assert shares.to_dict() == {"id": 0.0, "carrier": 0.25, "delay": 0.25}


def test_check_counts_failures_and_treats_null_as_failing(flights) -> None:
    report = quality.check(
        flights,
        {
            "id is positive": F.col("id") > 0,
            "delay within a day": F.col("delay").between(-60, 24 * 60 - 1) & (F.col("delay") < 600),
            "carrier known": F.col("carrier").isin("UA", "AA"),
        },
    )
    assert report["failing"].tolist() == [0, 2, 1]
    assert report["status"].tolist() == ["pass", "FAIL", "FAIL"]
    assert report["failing_share"].tolist() == [0.0, 0.5, 0.25]


def test_check_tolerance_and_empty_expectations(flights) -> None:
    report = quality.check(flights, {"carrier known": F.col("carrier").isNotNull()}, max_failing_share=0.3)
    assert report["status"].tolist() == ["pass"]
    with pytest.raises(ValueError, match="at least one expectation"):
        quality.check(flights, {})


def test_display_returns_the_first_rows_rounded(spark) -> None:
    frame = spark.createDataFrame([(i, i / 3) for i in range(30)], "i long, third double")
    shown = display(frame, n=5)
    assert len(shown) == 5
    assert shown["third"].tolist() == [0.0, 0.3333, 0.6667, 1.0, 1.3333]


def test_ordered_pandas_does_not_depend_on_partitioning_and_applies_dtypes(spark) -> None:
    from helpers.tables import ordered_pandas

    frame = spark.createDataFrame([(i % 7, 100 - i, float(i)) for i in range(50)], "day int, key int, value double")
    ordered = ordered_pandas(frame, ["key"], {"day": "int64", "value": "float32"})
    assert ordered["key"].tolist() == list(range(51, 101))
    assert ordered.index.tolist() == list(range(50))
    assert str(ordered["day"].dtype) == "int64" and str(ordered["value"].dtype) == "float32"
    reshuffled = ordered_pandas(frame.repartition(5, "day"), ["key"], {"day": "int64", "value": "float32"})
    pd.testing.assert_frame_equal(ordered, reshuffled)
    # Equal keys keep the frame's own order (a stable sort); without dtypes the frame is as Spark gives it.
    assert ordered_pandas(frame, ["day"])["day"].is_monotonic_increasing


def test_ordered_pandas_drops_the_query_metrics_spark_connect_attaches(tmp_path) -> None:
    from helpers.tables import ordered_pandas

    class ConnectLikeFrame:  # Spark Connect's toPandas() puts PlanMetrics objects in attrs
        def toPandas(self) -> pd.DataFrame:
            rows = pd.DataFrame({"key": [2, 1], "value": [0.5, 1.5]})
            rows.attrs["metrics"] = [object()]
            return rows

    ordered = ordered_pandas(ConnectLikeFrame(), ["key"])
    assert ordered.attrs == {}
    ordered.to_parquet(tmp_path / "rows.parquet", index=False)  # raised "not JSON serializable" before
    assert pd.read_parquet(tmp_path / "rows.parquet")["key"].tolist() == [1, 2]


def test_hash_split_is_partition_independent_and_disjoint(spark) -> None:
    from helpers.splits import hash_split

    frame = spark.range(5000).withColumnRenamed("id", "flight_id")
    train, test = hash_split(frame, 0.2, ["flight_id"])
    shuffled_train, shuffled_test = hash_split(frame.repartition(7), 0.2, ["flight_id"])
    test_ids = sorted(r.flight_id for r in test.collect())
    assert test_ids == sorted(r.flight_id for r in shuffled_test.collect())
    assert train.count() + len(test_ids) == 5000
    assert train.join(test, "flight_id").count() == 0
    assert 900 < len(test_ids) < 1100
    with pytest.raises(ValueError, match="between 0 and 1"):
        hash_split(frame, 1.5, ["flight_id"])
    with pytest.raises(ValueError, match="missing: \\['nope'\\]"):
        hash_split(frame, 0.2, ["nope"])
