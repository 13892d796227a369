"""helpers.performance: plan summaries, the Spark UI's metric strings and records, the cost model, and one
real query measured through the REST API."""
# The plans below are quoted verbatim from explain(), long lines and all.
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import performance

SIMPLE_PLAN = """== Physical Plan ==
*(3) HashAggregate(keys=[name#19], functions=[avg(arr_delay#7)])
+- Exchange hashpartitioning(name#19, 16), ENSURE_REQUIREMENTS, [plan_id=991]
   +- *(2) HashAggregate(keys=[name#19], functions=[partial_avg(arr_delay#7)])
      +- *(2) Project [arr_delay#7, name#19]
         +- *(2) BroadcastHashJoin [carrier#8], [carrier#18], Inner, BuildRight, false, false
            :- *(2) Project [arr_delay#7, carrier#8]
            :  +- *(2) Filter isnotnull(carrier#8)
            :     +- *(2) ColumnarToRow
            :        +- FileScan parquet [arr_delay#7,carrier#8,month#17] Batched: true, DataFilters: [isnotnull(carrier#8)], Format: Parquet, Location: InMemoryFileIndex(1 paths)[file:/data/by_month], PartitionFilters: [isnotnull(month#17), (month#17 = 7)], PushedFilters: [IsNotNull(carrier)], ReadSchema: struct<arr_delay:double,carrier:string>
            +- BroadcastExchange HashedRelationBroadcastMode(List(input[0, string, false]),false), [plan_id=985]
               +- *(1) Filter isnotnull(carrier#18)
                  +- *(1) ColumnarToRow
                     +- FileScan parquet [carrier#18,name#19] Batched: true, DataFilters: [isnotnull(carrier#18)], Format: Parquet, Location: InMemoryFileIndex(1 paths)[file:/data/airlines.parquet], PartitionFilters: [], PushedFilters: [IsNotNull(carrier)], ReadSchema: struct<carrier:string,name:string>
"""

ADAPTIVE_PLAN = """== Physical Plan ==
AdaptiveSparkPlan isFinalPlan=true
+- == Final Plan ==
   ResultQueryStage 1
   +- *(2) HashAggregate(keys=[carrier#8], functions=[avg(arr_delay#7)])
      +- AQEShuffleRead coalesced
         +- ShuffleQueryStage 0
            +- Exchange hashpartitioning(carrier#8, 200), ENSURE_REQUIREMENTS, [plan_id=40]
               +- *(1) HashAggregate(keys=[carrier#8], functions=[partial_avg(arr_delay#7)])
                  +- *(1) ColumnarToRow
                     +- FileScan parquet [arr_delay#7,carrier#8] Batched: true, DataFilters: [], Format: Parquet, Location: InMemoryFileIndex(1 paths)[file:/data/f], PartitionFilters: [], PushedFilters: [], ReadSchema: struct<arr_delay:double,carrier:string>
+- == Initial Plan ==
   HashAggregate(keys=[carrier#8], functions=[avg(arr_delay#7)])
   +- Exchange hashpartitioning(carrier#8, 200), ENSURE_REQUIREMENTS, [plan_id=30]
      +- HashAggregate(keys=[carrier#8], functions=[partial_avg(arr_delay#7)])
         +- FileScan parquet [arr_delay#7,carrier#8] Batched: true, DataFilters: [], Format: Parquet, Location: InMemoryFileIndex(1 paths)[file:/data/f], PartitionFilters: [], PushedFilters: [], ReadSchema: struct<arr_delay:double,carrier:string>
"""


def test_plan_operators_are_read_top_down_without_codegen_markers() -> None:
    operators = performance.plan_operators(SIMPLE_PLAN)
    assert operators[:3] == ["HashAggregate", "Exchange", "HashAggregate"]
    assert operators.count("FileScan parquet") == 2
    assert performance.operator_counts(SIMPLE_PLAN)["BroadcastExchange"] == 1
    assert "SortMergeJoin" not in operators


def test_an_adaptive_plan_that_ran_is_read_from_its_final_plan_only() -> None:
    operators = performance.plan_operators(ADAPTIVE_PLAN)
    assert operators == ["ResultQueryStage", "HashAggregate", "AQEShuffleRead", "ShuffleQueryStage", "Exchange",
                         "HashAggregate", "ColumnarToRow", "FileScan parquet"]


def test_plan_lines_drop_expression_and_plan_ids() -> None:
    lines = performance.plan_lines(SIMPLE_PLAN, "Exchange", "BroadcastHashJoin")
    assert lines[0] == "Exchange hashpartitioning(name, 16), ENSURE_REQUIREMENTS"
    assert lines[1].startswith("BroadcastHashJoin [carrier], [carrier], Inner")
    assert all("#" not in line and "plan_id" not in line for line in lines)
    assert all(len(line) <= 20 for line in performance.plan_lines(SIMPLE_PLAN, "Exchange", width=20))


def test_scan_details_give_columns_and_filters() -> None:
    first, second = performance.scan_details(SIMPLE_PLAN)
    assert first["scan"] == "FileScan parquet"
    assert first["columns"] == "arr_delay,carrier,month"
    assert first["PartitionFilters"] == "[isnotnull(month), (month = 7)]"
    assert first["PushedFilters"] == "[IsNotNull(carrier)]"
    assert second["ReadSchema"] == "struct<carrier:string,name:string>"
    abridged = performance.scan_details(
        "FileScan parquet [a#1,b#2] Batched: true, PartitionFilters: [], ReadSchema: struct<a:bigint,b:big...")
    assert abridged[0]["ReadSchema"].endswith("...")


@pytest.mark.parametrize(("text", "value"), [
    ("174,891", 174_891),
    ("2", 2),
    ("2.8 MiB", 2.8 * 2**20),
    ("456.0 B", 456),
    ("0 ms", 0),
    ("total (min, med, max (stageId: taskId))\n318 ms (111 ms, 207 ms, 207 ms (stage 16.0: task 16))", 318),
    ("total (min, med, max (stageId: taskId))\n8.9 MiB (1027.8 KiB, 1547.7 KiB, 1949.4 KiB (driver))", 8.9 * 2**20),
    ("1.5 s", 1500),
])
def test_metric_values_are_numbers_in_bytes_and_milliseconds(text: str, value: float) -> None:
    assert performance.metric_value(text) == pytest.approx(value)


def test_a_metric_without_a_number_is_an_error() -> None:
    with pytest.raises(ValueError, match="no number"):
        performance.metric_value("n/a")


def test_spread_describes_how_even_partitions_are() -> None:
    facts = performance.spread([100, 100, 200, 0])
    assert facts["partitions"] == 4 and facts["rows"] == 400
    assert facts["smallest"] == 0 and facts["largest"] == 200
    assert facts["largest share"] == pytest.approx(0.5)
    assert facts["largest / mean"] == pytest.approx(2.0)
    assert performance.spread([5, 5])["largest / mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        performance.spread([])


def test_rest_records_are_parsed() -> None:
    stage = performance.Stage.from_json({"stageId": 4, "attemptId": 0, "status": "COMPLETE", "numTasks": 16,
                                         "inputBytes": 10, "inputRecords": 2, "shuffleReadBytes": 300,
                                         "shuffleReadRecords": 2_000_016, "shuffleWriteBytes": 1473,
                                         "executorRunTime": 2500})
    assert (stage.stage_id, stage.tasks, stage.shuffle_read_records, stage.run_time_s) == (4, 16, 2_000_016, 2.5)
    task = performance.Task.from_json({"index": 3, "duration": 420, "status": "SUCCESS", "taskMetrics": {
        "inputMetrics": {"recordsRead": 5}, "shuffleReadMetrics": {"recordsRead": 348_443}}})
    assert (task.index, task.duration_s, task.records_read) == (3, 0.42, 348_448)
    execution = performance.SqlExecution.from_json({"id": 7, "status": "COMPLETED", "nodes": [
        {"nodeName": "Scan parquet", "desc": "FileScan parquet [a]", "metrics": [
            {"name": "number of files read", "value": "2"}, {"name": "size of files read", "value": "2.8 MiB"}]},
        {"nodeName": "Scan parquet", "metrics": [{"name": "number of files read", "value": "3"}]},
        {"nodeName": "HashAggregate", "metrics": []},
    ]})
    assert execution.metric("Scan", "number of files read") == 5
    assert execution.metric("Scan", "size of files read") == pytest.approx(2.8 * 2**20)
    assert execution.metric("AQEShuffleRead", "number of partitions") is None
    measured = performance.Measurement(seconds=1.0, stages=[stage, stage], executions=[execution, execution])
    assert measured.tasks == 32 and measured.shuffle_bytes == 2 * 1473 and measured.input_bytes == 20
    assert measured.metric("Scan", "number of files read") == 10


def test_cost_table_prices_core_hours_and_spot() -> None:
    table = performance.cost_table({"1 core": (1, 3600.0), "2 cores": (2, 2400.0)}, price_per_core_hour=0.10,
                                   spot_discount=0.6, rerun_share=0.1, runs=10)
    one, two = table.loc["1 core"], table.loc["2 cores"]
    assert one["core-hours"] == pytest.approx(10.0)
    assert one["on-demand cost"] == pytest.approx(1.0)
    assert one["spot cost"] == pytest.approx(1.0 * 1.1 * 0.4)
    assert two["speed-up"] == pytest.approx(1.5)
    assert two["efficiency"] == pytest.approx(0.75)
    assert two["core-hours"] == pytest.approx(2 * 2400 / 3600 * 10)
    with pytest.raises(ValueError):
        performance.cost_table({"x": (1, 1.0)}, 0.1, spot_discount=1.0)
    with pytest.raises(ValueError):
        performance.cost_table({}, 0.1, spot_discount=0.5)


def test_parquet_bytes_count_only_the_chosen_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"small": [1] * 10_000, "large": [f"row {i} with some text" for i in range(10_000)]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=2_500)
    pq.write_table(table, tmp_path / "b.parquet")
    files = sorted(tmp_path.glob("*.parquet"))
    everything = performance.parquet_bytes(files)
    small, large = performance.parquet_bytes(files, ["small"]), performance.parquet_bytes(files, ["large"])
    assert small + large == everything
    assert 0 < small < large
    assert everything < sum(f.stat().st_size for f in files)  # the footers are not column data


def test_settings_are_put_back_after_the_block(spark) -> None:
    before = spark.conf.get("spark.sql.shuffle.partitions")
    key = "spark.sql.adaptive.skewJoin.skewedPartitionFactor"
    assert spark.conf.get(key, None) is None
    with pytest.raises(RuntimeError):
        with performance.settings(spark, {"spark.sql.shuffle.partitions": "7", key: "3"}):
            assert spark.conf.get("spark.sql.shuffle.partitions") == "7"
            assert spark.conf.get(key) == "3"
            raise RuntimeError("the block failed")
    assert spark.conf.get("spark.sql.shuffle.partitions") == before
    assert spark.conf.get(key, None) is None


def test_partitions_are_counted_with_the_dataframe_api(spark) -> None:
    frame = spark.range(0, 1000, 1, 4)
    assert performance.rows_per_partition(frame) == [250, 250, 250, 250]
    assert sum(performance.rows_per_partition(frame.repartition(3))) == 1000
    assert performance.default_parallelism(spark) >= 1
    assert performance.plan_operators(performance.plan_text(frame.coalesce(2))) == ["Coalesce", "Range"]


def test_a_query_is_measured_through_the_spark_ui(spark) -> None:
    from pyspark.sql import functions as F

    ui = performance.SparkUI.for_session(spark)
    assert ui is not None
    frame = spark.range(0, 10_000, 1, 3).withColumn("key", F.col("id") % 5)
    with performance.settings(spark, {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "6"}):
        with performance.measure(ui) as measured:
            rows = frame.groupBy("key").count().collect()
    assert len(rows) == 5
    assert measured.seconds > 0
    assert [s.tasks for s in measured.stages] == [3, 6]
    assert measured.shuffle_bytes > 0
    reduce_tasks = ui.tasks(measured.stages[-1])
    assert [t.index for t in reduce_tasks] == list(range(6))
    assert sum(t.records_read for t in reduce_tasks) == measured.stages[-1].shuffle_read_records
    assert measured.metric("Range", "number of output rows") == 10_000
    with performance.measure(None) as untracked:
        frame.count()
    assert untracked.seconds > 0 and untracked.stages == [] and untracked.executions == []


def test_the_same_job_runs_in_a_fresh_local_session_whatever_the_notebook_uses(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 2_000
    table = pa.table({"tailnum": [f"N{i % 50}" for i in range(rows)], "month": [1 + i % 12 for i in range(rows)],
                      "day": [1 + i % 28 for i in range(rows)], "arr_delay": [float(i % 90) for i in range(rows)],
                      "dep_delay": [float(i % 60) for i in range(rows)]})
    pq.write_table(table, tmp_path / "part-0.parquet")
    # a notebook over Spark Connect: the child must still start its own local session
    monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:1")
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    seconds = performance.seconds_on_cores(1, tmp_path, repeats=1)
    assert 0 < seconds < 120
    with pytest.raises(RuntimeError, match="local\\[1\\] measurement failed"):
        performance.seconds_on_cores(1, tmp_path / "missing", repeats=1)
