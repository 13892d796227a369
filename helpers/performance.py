"""Looking inside a Spark job from a notebook: its plan, its partitions, and what the Spark UI recorded.

Notebook 25 measures what partitions, caching, adaptive execution, joins, Arrow and file layout change.
Wall-clock time alone hides *why* a job is fast or slow, so this module reads the same facts a person
reads in the Spark UI, through the UI's REST API (``/api/v1/applications/<app>/...``):

    ui = performance.SparkUI.for_session(spark)     # None over Spark Connect (the UI is on the server)
    with performance.measure(ui) as run:
        frame.write.format("noop").mode("overwrite").save()
    run.seconds, run.tasks, run.shuffle_bytes, run.metric("Scan", "number of files read")

and summarises ``explain()`` output and the rows in each partition with the DataFrame API only, so
those parts work over Spark Connect too. The same job on 1 and 2 cores runs in fresh local sessions, each in
its own process (a JVM has one Spark context, and its number of task slots is fixed when it starts)::

    python -m helpers.performance --cores 1 --data .work/performance/flights_by_month.parquet
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

# ---------------------------------------------------------------------------------------------------------
# Plans and partitions (DataFrame API only: classic sessions and Spark Connect alike)
# ---------------------------------------------------------------------------------------------------------

_TREE = re.compile(r"^[\s:|+\-]*")
_OPERATOR = re.compile(r"^(?:\*\(\d+\)\s*)?([A-Z][A-Za-z]*(?: (?:parquet|csv|json|orc|text))?)")


def plan_text(frame: DataFrame, mode: str = "simple") -> str:
    """What ``frame.explain(mode=mode)`` prints, as a string (explain prints; it returns nothing)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        frame.explain(mode=mode)
    return buffer.getvalue()


def plan_operators(text: str) -> list[str]:
    """The physical operators of a plan printed by ``explain()`` (simple mode), top-down.

    Only the ``== Physical Plan ==`` part is read when there is one; tree drawing, whole-stage codegen
    markers (``*(2)``) and arguments are dropped: ``+- *(1) HashAggregate(keys=[...])`` gives
    ``HashAggregate`` and ``FileScan parquet [...]`` gives ``FileScan parquet``.
    """
    operators = []
    for line in _physical_lines(text):
        match = _OPERATOR.match(_TREE.sub("", line))
        if match:
            operators.append(match.group(1))
    return operators


def _physical_lines(text: str) -> list[str]:
    """The lines of the physical plan; of an adaptive plan that ran, only its final plan."""
    if "== Physical Plan ==" in text:
        text = text.split("== Physical Plan ==", 1)[1]
    if "== Final Plan ==" in text:
        text = text.split("== Final Plan ==", 1)[1].split("== Initial Plan ==", 1)[0]
        return [line for line in text.splitlines() if not line.strip().startswith("+- ==")]
    return text.splitlines()


_EXPRESSION_ID = re.compile(r"#\d+L?")
_PLAN_ID = re.compile(r",? ?\[plan_id=\d+\]")


def plan_lines(text: str, *operators: str, width: int = 110) -> list[str]:
    """The physical plan's lines for the given operators, without tree drawing, expression ids
    (``carrier#18``) or plan ids, and cut to ``width`` characters: the same on every run, so a notebook
    can print them as a summary of ``explain()``."""
    lines = []
    for line in _physical_lines(text):
        body = _TREE.sub("", line)
        match = _OPERATOR.match(body)
        if match and match.group(1) in operators:
            body = _PLAN_ID.sub("", _EXPRESSION_ID.sub("", re.sub(r"^\*\(\d+\)\s*", "", body)))
            lines.append(body if len(body) <= width else body[: width - 1] + "…")
    return lines


def default_parallelism(spark: SparkSession) -> int:
    """How many tasks the session runs at once by default (its cores, in local mode), found with the
    DataFrame API so that it works over Spark Connect: ``spark.range`` without a partition count makes
    one partition per default task slot."""
    return len(rows_per_partition(spark.range(0, 100_000)))


_SCAN_FIELDS = ("PartitionFilters", "PushedFilters", "DataFilters", "ReadSchema")


def scan_details(text: str) -> list[dict[str, str]]:
    """For each file scan of a printed plan: its format, the ``columns`` it outputs (comma-separated, the
    table's partition columns included), its ``PartitionFilters`` (which folders are read at all),
    ``PushedFilters`` (handed to the file reader), ``DataFilters`` and ``ReadSchema`` (the columns read
    from the files), with expression ids removed. Spark shortens long values to
    ``spark.sql.maxMetadataStringLength`` characters (100) ending in ``...``; raise it to see them whole."""
    scans = []
    for line in _physical_lines(text):
        body = _TREE.sub("", line)
        match = _OPERATOR.match(body)
        if not match or not match.group(1).startswith("FileScan"):
            continue
        details = {"scan": match.group(1)}
        output = re.match(r"\[([^\]]*)\]", body[match.end():].lstrip())
        if output:
            columns = (_EXPRESSION_ID.sub("", c).strip() for c in output.group(1).split(","))
            details["columns"] = ",".join(columns)
        for name in _SCAN_FIELDS:
            found = re.search(rf"{name}: (\[[^\]]*\]|struct<[^>]*>?)", body)
            if found:
                details[name] = _EXPRESSION_ID.sub("", found.group(1))
        scans.append(details)
    return scans


def parquet_bytes(files: Sequence[Path | str], columns: Sequence[str] | None = None) -> int:
    """Compressed bytes of the Parquet files' column chunks — of ``columns`` only, when given.

    This is what a scan that reads only those columns must fetch from storage (plus each file's small
    footer): the size behind *column pruning*, read from the files' own metadata with pyarrow."""
    import pyarrow.parquet as pq

    wanted = None if columns is None else set(columns)
    total = 0
    for file in files:
        metadata = pq.ParquetFile(file).metadata
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for index in range(row_group.num_columns):
                chunk = row_group.column(index)
                if wanted is None or chunk.path_in_schema in wanted:
                    total += chunk.total_compressed_size
    return total


@contextlib.contextmanager
def settings(spark: SparkSession, values: Mapping[str, str]) -> Iterator[None]:
    """Set Spark SQL settings for the ``with`` block only; each is put back as it was afterwards (unset if
    it was not set), even when the block fails."""
    previous = {key: spark.conf.get(key, None) for key in values}
    try:
        for key, value in values.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def operator_counts(text: str) -> dict[str, int]:
    """How often each physical operator appears in a printed plan (see :func:`plan_operators`)."""
    return dict(Counter(plan_operators(text)))


def rows_per_partition(frame: DataFrame) -> list[int]:
    """Rows in each non-empty partition of ``frame``, in partition order (one Spark job).

    Uses ``spark_partition_id()``, so it needs no RDD API and works over Spark Connect. Empty partitions
    do not appear: a frame of 200 partitions holding 3 keys shows 3 numbers.
    """
    from pyspark.sql import functions as F

    counts = frame.groupBy(F.spark_partition_id().alias("partition")).count().orderBy("partition").collect()
    return [int(row["count"]) for row in counts]


def spread(counts: Sequence[int]) -> dict[str, float]:
    """How evenly rows are spread over partitions (or tasks): count, total, smallest, largest, the largest
    one's share of all rows, and largest / mean (1.0 is perfectly even; the job waits for the largest)."""
    if not counts:
        raise ValueError("no partitions to summarise")
    total = sum(counts)
    mean = total / len(counts)
    return {"partitions": len(counts), "rows": total, "smallest": min(counts), "largest": max(counts),
            "largest share": max(counts) / total if total else 0.0,
            "largest / mean": max(counts) / mean if mean else 0.0}


# ---------------------------------------------------------------------------------------------------------
# The Spark UI's metric strings
# ---------------------------------------------------------------------------------------------------------

_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_NUMBER = re.compile(r"(-?[\d,]+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|ms|s|min|h)?\b")


def metric_value(text: str) -> float:
    """A SQL metric as the UI shows it, as a number: sizes in bytes, times in milliseconds, counts as is.

    ``"174,891"`` gives 174891; ``"2.8 MiB"`` gives 2936012.8; a per-task metric such as
    ``"total (min, med, max (stageId: taskId))\\n318 ms (111 ms, 207 ms, 207 ms (stage 16.0: task 16))"``
    gives its total, 318.
    """
    if text.startswith("total"):
        text = text.split("\n", 1)[1] if "\n" in text else text
    match = _NUMBER.search(text)
    if not match:
        raise ValueError(f"no number in metric {text!r}")
    number = float(match.group(1).replace(",", ""))
    unit = match.group(2)
    if unit in _UNITS:
        return number * _UNITS[unit]
    return number * {"s": 1e3, "min": 6e4, "h": 3.6e6}.get(unit or "", 1.0)


# ---------------------------------------------------------------------------------------------------------
# The REST API's records
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One task of a stage: its index (the partition it computed), how long it took, the rows it read."""

    index: int
    duration_s: float
    records_read: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        metrics = data.get("taskMetrics") or {}
        records = (metrics.get("inputMetrics", {}).get("recordsRead", 0)
                   + metrics.get("shuffleReadMetrics", {}).get("recordsRead", 0))
        return cls(index=int(data["index"]), duration_s=data.get("duration", 0) / 1000,
                   records_read=int(records))


@dataclass(frozen=True)
class Stage:
    """One stage as ``/api/v1/applications/<app>/stages`` reports it (times in seconds, sizes in bytes)."""

    stage_id: int
    attempt: int
    status: str
    tasks: int
    input_bytes: int
    input_records: int
    shuffle_read_bytes: int
    shuffle_read_records: int
    shuffle_write_bytes: int
    run_time_s: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage:
        return cls(stage_id=int(data["stageId"]), attempt=int(data.get("attemptId", 0)),
                   status=data["status"], tasks=int(data["numTasks"]),
                   input_bytes=int(data.get("inputBytes", 0)), input_records=int(data.get("inputRecords", 0)),
                   shuffle_read_bytes=int(data.get("shuffleReadBytes", 0)),
                   shuffle_read_records=int(data.get("shuffleReadRecords", 0)),
                   shuffle_write_bytes=int(data.get("shuffleWriteBytes", 0)),
                   run_time_s=data.get("executorRunTime", 0) / 1000)


@dataclass(frozen=True)
class SqlNode:
    """One operator of an executed query as the SQL / DataFrame tab shows it, with its metrics (strings)."""

    name: str
    description: str
    metrics: dict[str, str]


@dataclass(frozen=True)
class SqlExecution:
    """One query execution (``/api/v1/applications/<app>/sql/<id>``): its status and its operators."""

    execution_id: int
    status: str
    nodes: tuple[SqlNode, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SqlExecution:
        nodes = tuple(SqlNode(name=n["nodeName"], description=n.get("desc", ""),
                              metrics={m["name"]: m["value"] for m in n.get("metrics", [])})
                      for n in data.get("nodes", []))
        return cls(execution_id=int(data["id"]), status=data["status"], nodes=nodes)

    def metric(self, node_prefix: str, name: str) -> float | None:
        """Metric ``name`` summed over the nodes whose name starts with ``node_prefix`` (None if absent)."""
        values = [metric_value(n.metrics[name]) for n in self.nodes
                  if n.name.startswith(node_prefix) and name in n.metrics]
        return sum(values) if values else None


class SparkUI:
    """A client for one application's REST API on the driver's Spark UI (classic sessions only)."""

    def __init__(self, base_url: str, app_id: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.timeout_s = timeout_s

    @classmethod
    def for_session(cls, spark: SparkSession) -> SparkUI | None:
        """The UI of ``spark``'s driver; ``None`` over Spark Connect, whose UI runs on the server."""
        from helpers.spark import ui_url

        url = ui_url(spark)
        if not url:
            return None
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/applications", timeout=10) as response:
            apps = json.load(response)
        return cls(url, apps[0]["id"])

    def get(self, path: str) -> Any:
        """The JSON at ``/api/v1/applications/<app>/<path>``."""
        with urllib.request.urlopen(f"{self.base_url}/api/v1/applications/{self.app_id}/{path}",
                                    timeout=self.timeout_s) as response:
            return json.load(response)

    def stages(self) -> list[Stage]:
        return [Stage.from_json(s) for s in self.get("stages")]

    def tasks(self, stage: Stage) -> list[Task]:
        """Every task of ``stage`` (successful attempts), by index."""
        raw = self.get(f"stages/{stage.stage_id}/{stage.attempt}/taskList?length=100000")
        return sorted((Task.from_json(t) for t in raw if t.get("status") == "SUCCESS"), key=lambda t: t.index)

    def executions(self) -> list[SqlExecution]:
        raw = self.get("sql?details=true&planDescription=false&length=100000")
        return [SqlExecution.from_json(e) for e in raw]

    def cached(self) -> list[dict[str, Any]]:
        """What the Storage tab lists: each cached frame's name, partitions, bytes in memory and on disk."""
        return self.get("storage/rdd")

    def storage_memory(self) -> int:
        """Bytes of memory the executors (the driver, in local mode) can give to cached data and execution."""
        return sum(int(e.get("maxMemory", 0)) for e in self.get("executors"))

    def marker(self) -> tuple[int, int]:
        """The highest stage id and SQL execution id so far, to tell later ones apart."""
        stages = [s.stage_id for s in self.stages()]
        executions = [e["id"] for e in self.get("sql?details=false&length=100000")]
        return max(stages, default=-1), max(executions, default=-1)

    def settle(self, after_execution: int, poll_s: float = 0.1) -> list[SqlExecution]:
        """Wait until every query execution after ``after_execution`` has finished *in the UI's records*.

        An action returns before the UI's listener has processed its last events; an execution ends only
        after its jobs did, so once it is complete the stages are complete too."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            later = [e for e in self.executions() if e.execution_id > after_execution]
            done = later and all(e.status in ("COMPLETED", "FAILED") for e in later)
            if done and not self.get("jobs?status=running"):
                return later
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Spark UI did not record the query's end within {self.timeout_s} s")
            time.sleep(poll_s)


@dataclass
class Measurement:
    """What :func:`measure` recorded: wall-clock seconds and, on a classic session, the UI's records."""

    seconds: float = 0.0
    stages: list[Stage] = field(default_factory=list)
    executions: list[SqlExecution] = field(default_factory=list)

    @property
    def tasks(self) -> int:
        return sum(s.tasks for s in self.stages)

    @property
    def input_bytes(self) -> int:
        """Bytes read from storage as the stages report them. Spark 4's vectorised Parquet reader reports
        almost none of its reads here; :func:`parquet_bytes` gives the column data a Parquet scan needs."""
        return sum(s.input_bytes for s in self.stages)

    @property
    def shuffle_bytes(self) -> int:
        return sum(s.shuffle_write_bytes for s in self.stages)

    def metric(self, node_prefix: str, name: str) -> float | None:
        """A SQL metric summed over every execution of the measurement (see :meth:`SqlExecution.metric`)."""
        values = [v for e in self.executions if (v := e.metric(node_prefix, name)) is not None]
        return sum(values) if values else None


@contextlib.contextmanager
def measure(ui: SparkUI | None) -> Iterator[Measurement]:
    """Time the block; with a UI, also collect the stages and query executions that ran inside it.

    The block must run at least one DataFrame action (a query execution), or waiting for the UI's records
    times out. Stages that were skipped (their shuffle output was reused) are left out."""
    before = ui.marker() if ui else (-1, -1)
    result = Measurement()
    started = time.perf_counter()
    yield result
    result.seconds = time.perf_counter() - started
    if ui:
        result.executions = ui.settle(before[1])
        result.stages = sorted((s for s in ui.stages() if s.stage_id > before[0] and s.status == "COMPLETE"),
                               key=lambda s: s.stage_id)


# ---------------------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------------------


def cost_table(jobs: Mapping[str, tuple[int, float]], price_per_core_hour: float, spot_discount: float,
               rerun_share: float = 0.0, runs: int = 1) -> pd.DataFrame:
    """Core-hours and cost of ``runs`` runs of the same job on clusters of different sizes.

    ``jobs`` maps a label to ``(cores, seconds per run)``. Cost is cores x hours x price. The spot column
    takes ``spot_discount`` off the price (0.6: 60% cheaper) and adds ``rerun_share`` of the work again
    for tasks that are lost when the capacity is taken back and must be recomputed. Speed-up and
    efficiency (speed-up per core, relative) are against the first job.
    """
    import pandas as pd

    if not 0 <= spot_discount < 1:
        raise ValueError("spot_discount is a fraction in [0, 1)")
    if not jobs:
        raise ValueError("no jobs to compare")
    base_cores, base_seconds = next(iter(jobs.values()))
    rows = {}
    for label, (cores, seconds) in jobs.items():
        core_hours = cores * seconds / 3600 * runs
        speedup = base_seconds / seconds
        rows[label] = {
            "cores": cores,
            "seconds per run": seconds,
            "speed-up": speedup,
            "efficiency": speedup * base_cores / cores,
            "core-hours": core_hours,
            "on-demand cost": core_hours * price_per_core_hour,
            "spot cost": core_hours * (1 + rerun_share) * price_per_core_hour * (1 - spot_discount),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------------------------------------------------
# The same job on more or fewer cores
# ---------------------------------------------------------------------------------------------------------


def delay_per_aircraft_day(frame: DataFrame) -> DataFrame:
    """Notebook 25's yardstick job: mean arrival delay and worst departure delay per aircraft and day."""
    from pyspark.sql import functions as F

    return frame.groupBy("tailnum", "month", "day").agg(F.avg("arr_delay").alias("delay"),
                                                        F.max("dep_delay").alias("worst"))


def run_job(frame: DataFrame) -> None:
    """Execute ``frame`` completely and discard the result (the ``noop`` sink writes nothing)."""
    frame.write.format("noop").mode("overwrite").save()


#: Variables that would make the child connect elsewhere: the curriculum's own, and those PySpark sets in a
#: process that opened a Spark Connect session.
_SESSION_VARIABLES = ("SPARK_REMOTE", "SPARK_MASTER", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE")


def seconds_on_cores(cores: int, data: Path | str, repeats: int = 3, shuffle_partitions: int = 4,
                     timeout_s: float = 300.0) -> float:
    """Median seconds of :func:`delay_per_aircraft_day` over the Parquet data at ``data``, in a fresh
    ``local[cores]`` session in its own process (after one untimed warm-up run).

    The child always runs in local mode on this machine (``SPARK_REMOTE``, ``SPARK_MASTER`` and PySpark's
    Connect markers are removed from its environment); the shuffle partition count is fixed, so both sizes
    run the same plan.
    """
    environment = {k: v for k, v in os.environ.items() if k not in _SESSION_VARIABLES}
    command = [sys.executable, "-m", "helpers.performance", "--cores", str(cores), "--data", str(data),
               "--repeats", str(repeats), "--shuffle-partitions", str(shuffle_partitions)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"the local[{cores}] measurement failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.performance",
                                     description="Time notebook 25's job in a fresh local[cores] session.")
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--data", required=True, help="Parquet folder of (scaled) flights")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    args = parser.parse_args(argv)

    from helpers.bench_workloads import median_seconds
    from helpers.spark import DRIVER_MEMORY_ENV, spark_session

    # This session runs beside the notebook's own JVM: the machine's driver-memory setting (Binder: 1g), else 2g.
    memory = os.environ.get(DRIVER_MEMORY_ENV, "2g")
    spark = spark_session(f"local-{args.cores}-cores", extra_config={
        "spark.master": f"local[{args.cores}]", "spark.driver.memory": memory,
        "spark.sql.shuffle.partitions": str(args.shuffle_partitions)})
    try:
        frame = spark.read.parquet(str(args.data))
        job = delay_per_aircraft_day(frame)
        seconds = median_seconds(lambda: run_job(job), repeats=args.repeats, warmup=1)
    finally:
        spark.stop()
    print(json.dumps({"cores": args.cores, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
