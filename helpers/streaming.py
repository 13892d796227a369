"""Streaming inference on flights landing as JSON files: the replay, the schema and quarantine rules, and the
three Structured Streaming queries of notebook 20.

A **replay** writes real flight records (months the model never saw, in time order) as JSON-lines files
into a landing folder, one file per day, with a few deliberately malformed lines. Three queries read it:

- **predictions**: the landing folder with an explicit schema (``PERMISSIVE`` mode keeps every line, a line
  that does not fit goes to ``CORRUPT``), the good records joined to the weather at their origin (a static
  table), turned into the model's features (``helpers.delays.delay_features``) and scored by the champion
  (a ``mlflow.pyfunc.spark_udf``), appended to a Parquet sink;
- **quarantine**: the same landing folder, the records that failed a rule, with the reason and source file;
- **aggregates**: the predictions sink read back as a stream, mean P(late) and flights per origin per hour
  of scheduled departure, with a watermark on the event time ``time_hour``.

Each query has its own checkpoint. ``process_available`` runs them with ``trigger(availableNow=True)``: each
processes what has landed and stops, so a notebook or a test is deterministic, and a restart from the
checkpoints picks up only the files that arrived since. ``start_scoring`` runs the predictions and quarantine
queries as a service does, until ``stop`` pulls them down mid-stream; the next ``process_available`` redoes the
micro-batch that was cut off (``checkpoint_batches`` shows it) and writes every record exactly once. Read a sink
back with ``sink_pandas``, through the sink's log. Everything lives in one folder (``StreamPaths``)::

    paths = streaming.StreamPaths.fresh(helpers.work_dir("streaming", "20-streaming-inference"))
    days = streaming.replay_days(helpers.load_pandas("flights", scale), month=7, days=range(1, 7))
    landed = [streaming.land(frame, paths.landing, malformed={"bad JSON": 1}) for frame in days[:3]]
    udf = streaming.model_udf(spark, delays.CHAMPION_URI)
    streaming.process_available(spark, paths, udf)     # the three queries, each until nothing is left
    streaming.counts(spark, paths)                     # rows in = good + quarantined, rows out, duplicates
    running = streaming.start_scoring(spark, paths, udf, files_per_batch=1)   # running streams ...
    streaming.wait_for_batches(running["predictions"], 1)
    streaming.stop(running)                                                    # ... stopped mid-stream
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from helpers.batch import features_struct
from helpers.batch import model_udf as model_udf  # re-exported: a stream scores with the batch jobs' UDF
from helpers.delays import FEATURES, delay_features
from helpers.flights import FLIGHT_KEY, with_origin_weather

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

#: The column where ``PERMISSIVE`` mode keeps a line that does not fit the schema (Auto Loader: ``_rescued_data``).
CORRUPT = "_corrupt_record"
#: A flight record as it lands: the columns of the ``flights`` dataset, by name and type.
RECORD_FIELDS: dict[str, str] = {
    "year": "long", "month": "long", "day": "long", "dep_time": "double", "sched_dep_time": "long",
    "dep_delay": "double", "arr_time": "double", "sched_arr_time": "long", "arr_delay": "double",
    "carrier": "string", "flight": "long", "tailnum": "string", "origin": "string", "dest": "string",
    "air_time": "double", "distance": "long", "hour": "long", "minute": "long", "time_hour": "timestamp",
}
#: The schema the landing folder is read with (DDL): every record field, then ``CORRUPT``.
RECORD_SCHEMA = ", ".join([*(f"{name} {kind}" for name, kind in RECORD_FIELDS.items()), f"{CORRUPT} string"])
#: Fields a record may not lack: the flight's key, what the features are built from, and the event time.
REQUIRED = (*FLIGHT_KEY, "dest", "hour", "distance", "time_hour")
#: Why a record is quarantined, in the order the rules are checked.
REASONS = ("bad JSON", "wrong type", "missing field")
#: The event-time column of the windowed aggregates, and their window.
EVENT_TIME = "time_hour"
WINDOW = "1 hour"
#: How long a window waits for late flights before its aggregate is final and written.
WATERMARK = "1 hour"
QUERIES = ("predictions", "quarantine", "aggregates")


# --------------------------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class StreamPaths:
    """The folders of one streaming pipeline, all below ``root``: the landing folder, three Parquet sinks and
    one checkpoint per query (``checkpoint("predictions")``)."""

    root: Path

    @classmethod
    def fresh(cls, root: Path | str) -> StreamPaths:
        """``root`` emptied and the folders created: a run that starts here starts from nothing — no landed
        files, no sink rows, no checkpoint that would make the queries skip files they have 'already seen'."""
        root = Path(root)
        shutil.rmtree(root, ignore_errors=True)
        paths = cls(root)
        paths.landing.mkdir(parents=True)
        return paths

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def aggregates(self) -> Path:
        return self.root / "aggregates"

    def checkpoint(self, query: str) -> Path:
        """The checkpoint folder of ``query`` (one of ``QUERIES``)."""
        if query not in QUERIES:
            raise ValueError(f"query must be one of {', '.join(QUERIES)}, not {query!r}")
        return self.root / "checkpoints" / query


# --------------------------------------------------------------------------------------------- the replay


def replay_days(flights: pd.DataFrame, month: int, days: Iterable[int]) -> list[pd.DataFrame]:
    """The flights of ``month`` (2013), one frame per day of ``days``, each in time order (scheduled hour,
    then the flight's key): the order in which the records would have been published."""
    order = ["time_hour", *FLIGHT_KEY]
    return [flights[(flights["month"] == month) & (flights["day"] == day)].sort_values(order, kind="stable")
            .reset_index(drop=True) for day in days]


def record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A flight row as a JSON-ready record: missing values as ``null``, numbers as JSON numbers, the
    scheduled hour as ISO text (``2013-07-01T05:00:00``)."""
    out: dict[str, Any] = {}
    for name in RECORD_FIELDS:
        value = row[name]
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            out[name] = None
        elif name == "time_hour":
            out[name] = pd.Timestamp(value).isoformat()
        elif RECORD_FIELDS[name] in ("long", "double"):
            out[name] = int(value) if RECORD_FIELDS[name] == "long" else float(value)
        else:
            out[name] = str(value)
    return out


def malform(rec: Mapping[str, Any], reason: str) -> str:
    """A JSON line that breaks one rule, made from a real record: ``bad JSON`` is the line cut off half way
    (a writer that crashed), ``wrong type`` gives the distance as text with a unit, ``missing field`` drops
    the origin airport (part of the flight's key)."""
    if reason == "bad JSON":
        line = json.dumps(rec)
        return line[: len(line) // 2]
    if reason == "wrong type":
        return json.dumps({**rec, "distance": f"{rec['distance']:,} miles"})
    if reason == "missing field":
        return json.dumps({k: v for k, v in rec.items() if k != "origin"})
    raise ValueError(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")


def json_lines(frame: pd.DataFrame, malformed: Mapping[str, int] | None = None) -> list[str]:
    """One JSON line per flight of ``frame``; ``malformed`` (reason -> how many) replaces that many records,
    spread evenly through the file, with broken versions of themselves (``malform``)."""
    lines = [json.dumps(record(row)) for row in frame.to_dict("records")]
    reasons = [reason for reason, n in (malformed or {}).items() for _ in range(n)]
    if len(reasons) > len(lines):
        raise ValueError(f"{len(reasons)} malformed records asked for, but the file has {len(lines)} flights")
    for i, reason in enumerate(reasons):
        position = (i + 1) * len(lines) // (len(reasons) + 1)
        lines[position] = malform(json.loads(lines[position]), reason)
    return lines


@dataclass(frozen=True)
class Landed:
    """One file written to the landing folder: its name, its lines, and how many were malformed, by reason."""

    file: str
    rows: int
    malformed: Mapping[str, int]

    @property
    def good(self) -> int:
        return self.rows - sum(self.malformed.values())


def land(frame: pd.DataFrame, folder: Path | str, name: str | None = None,
         malformed: Mapping[str, int] | None = None) -> Landed:
    """Write ``frame``'s flights as a JSON-lines file into ``folder`` (named after the day of its first flight
    unless ``name`` is given), with ``malformed`` records broken on purpose.

    The file is written under a hidden name (starting with ``.``, which Spark's file sources skip) and then
    renamed: a rename is atomic, so a running query never reads a half-written file."""
    folder = Path(folder)
    if name is None:
        first = frame.iloc[0]
        name = f"flights-{int(first['year'])}-{int(first['month']):02d}-{int(first['day']):02d}.json"
    lines = json_lines(frame, malformed)
    hidden = folder / f".{name}.tmp"
    hidden.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(hidden, folder / name)
    return Landed(name, len(lines), {k: v for k, v in (malformed or {}).items() if v})


# --------------------------------------------------------------------------------------------- the streams


def read_landing(spark: SparkSession, folder: Path | str, stream: bool = True,
                 files_per_batch: int | None = None) -> DataFrame:
    """The landing folder's records with the explicit schema ``RECORD_SCHEMA`` in ``PERMISSIVE`` mode (no
    line is dropped: one that does not fit keeps its text in ``CORRUPT``), and each record's ``source_file``.
    A stream by default, each micro-batch taking at most ``files_per_batch`` new files (``maxFilesPerTrigger``;
    ``None``: every file that has landed); ``stream=False`` reads what is there now, as a batch (the same rules
    apply)."""
    from pyspark.sql import functions as F

    if files_per_batch is not None and (stream is False or files_per_batch < 1):
        raise ValueError("files_per_batch is for a stream, and must be at least 1")
    reader = spark.readStream if stream else spark.read
    if files_per_batch is not None:
        reader = reader.option("maxFilesPerTrigger", files_per_batch)
    raw = (reader.schema(RECORD_SCHEMA).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
           .json(str(folder)))
    return raw.withColumn("source_file", F.col("_metadata.file_name"))


def problem() -> Column:
    """Why a record read by ``read_landing`` is unusable (one of ``REASONS``), null when it is good: its text
    is not JSON at all; or it is JSON but a value has the wrong type (``CORRUPT`` is set); or a ``REQUIRED``
    field is missing or null."""
    from pyspark.sql import functions as F

    corrupt = F.col(CORRUPT)
    missing = F.lit(False)
    for name in REQUIRED:
        missing = missing | F.col(name).isNull()
    return (F.when(corrupt.isNotNull() & F.from_json(corrupt, "map<string,string>").isNull(), F.lit(REASONS[0]))
            .when(corrupt.isNotNull(), F.lit(REASONS[1]))
            .when(missing, F.lit(REASONS[2])))


def quarantined(raw: DataFrame) -> DataFrame:
    """The records of ``raw`` (``read_landing``) that break a rule: source file, reason, and the record's text
    (the line itself when it did not parse, else the parsed fields as JSON)."""
    from pyspark.sql import functions as F

    text = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*RECORD_FIELDS)))
    return (raw.withColumn("reason", problem()).where(F.col("reason").isNotNull())
            .select("source_file", "reason", text.alias("record")))


def good_records(raw: DataFrame) -> DataFrame:
    """The records of ``raw`` that break no rule, with the record's fields only."""
    return raw.where(problem().isNull()).select(*RECORD_FIELDS)


def predictions(spark: SparkSession, raw: DataFrame, model_udf: Callable[..., Column]) -> DataFrame:
    """The good records of ``raw`` as the model's rows (``delay_features``: key, ``time_hour``, features, and
    the label where the flight has arrived) with ``p_late``, P(late) from ``model_udf`` — a
    ``mlflow.pyfunc.spark_udf`` of the champion with ``result_type="array<double>"`` (P(on time), P(late))."""
    features = delay_features(with_origin_weather(spark, good_records(raw)))
    return features.withColumn("p_late", model_udf(features_struct(FEATURES))[1])


def hourly_aggregates(scored: DataFrame, watermark: str = WATERMARK) -> DataFrame:
    """Per origin and ``WINDOW`` of scheduled departure: flights, mean P(late), and — among the flights that
    arrived — how many and the share that was late. The watermark lets a window's result be written once
    no flight of it can arrive any more (``watermark`` after the latest event time seen), and its state be
    dropped."""
    from pyspark.sql import functions as F

    return (scored.withWatermark(EVENT_TIME, watermark)
            .groupBy(F.window(EVENT_TIME, WINDOW), "origin")
            .agg(F.count("*").alias("flights"), F.avg("p_late").alias("mean_p_late"),
                 F.count("label").alias("arrived"), F.avg("label").alias("share_late"))
            .select(F.col("window.start").alias("hour_start"), "origin", "flights", "mean_p_late", "arrived",
                    "share_late"))


def _sources(spark: SparkSession, paths: StreamPaths, model_udf: Callable[..., Column], watermark: str = WATERMARK,
             files_per_batch: int | None = None) -> dict[str, Callable[[], DataFrame]]:
    """The streaming DataFrame of each query (``QUERIES``), made when called."""
    raw = read_landing(spark, paths.landing, files_per_batch=files_per_batch)
    scored = predictions(spark, raw, model_udf)
    return {
        "predictions": lambda: scored,
        "quarantine": lambda: quarantined(raw),
        # the aggregates read the predictions sink back as a stream (so each flight is scored once); made
        # after the predictions query ran, because a file source needs its folder to exist
        "aggregates": lambda: hourly_aggregates(
            spark.readStream.schema(scored.schema).parquet(str(paths.predictions)), watermark),
    }


def _start(frame: DataFrame, paths: StreamPaths, name: str, available_now: bool) -> StreamingQuery:
    """``frame`` appended to the Parquet sink of query ``name`` with its checkpoint; ``available_now``: process
    what has landed and stop, else run until stopped (a new micro-batch as soon as the last one ended)."""
    writer = (frame.writeStream.format("parquet").outputMode("append").queryName(f"{paths.root.name}-{name}")
              .option("path", str(getattr(paths, name))).option("checkpointLocation", str(paths.checkpoint(name))))
    return (writer.trigger(availableNow=True) if available_now else writer).start()


def _report(query: StreamingQuery) -> dict[str, int]:
    progress = query.recentProgress
    return {"micro-batches": len(progress), "rows read": sum(int(p.numInputRows) for p in progress)}


def process_available(spark: SparkSession, paths: StreamPaths, model_udf: Callable[..., Column],
                      watermark: str = WATERMARK) -> dict[str, dict[str, int]]:
    """Run the three queries (``QUERIES``) one after the other, each with ``trigger(availableNow=True)``:
    process every file that has landed since its checkpoint's last commit, append to its Parquet sink, stop.
    Returns, per query, how many micro-batches it ran and how many input rows it read in this call."""
    report: dict[str, dict[str, int]] = {}
    for name, source in _sources(spark, paths, model_udf, watermark).items():
        query = _start(source(), paths, name, available_now=True)
        query.awaitTermination()
        report[name] = _report(query)
    return report


def start_scoring(spark: SparkSession, paths: StreamPaths, model_udf: Callable[..., Column],
                  files_per_batch: int = 1) -> dict[str, StreamingQuery]:
    """Start the predictions and quarantine queries as **running** streams, as a service runs them: each
    micro-batch takes at most ``files_per_batch`` new files, and the next one starts as soon as the last
    ended, until ``stop`` is called. The aggregates query is left to ``process_available``."""
    sources = _sources(spark, paths, model_udf, files_per_batch=files_per_batch)
    return {name: _start(sources[name](), paths, name, available_now=False) for name in ("predictions", "quarantine")}


def wait_for_batches(query: StreamingQuery, batches: int, timeout: float = 300.0) -> None:
    """Block until ``query`` has finished ``batches`` micro-batches that read data. Raises ``RuntimeError`` with
    the query's own error when it failed, and ``TimeoutError`` after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while sum(1 for p in query.recentProgress if int(p.numInputRows) > 0) < batches:
        failure = query.exception()
        if failure is not None:
            raise RuntimeError(f"streaming query {query.name} failed: {failure}")
        if not query.isActive:
            # A failing query records its error and then stops: read the error again, since it may have been
            # recorded between the two calls above.
            failure = query.exception()
            if failure is not None:
                raise RuntimeError(f"streaming query {query.name} failed: {failure}")
            raise RuntimeError(f"streaming query {query.name} stopped before {batches} micro-batch(es) with data")
        if time.monotonic() > deadline:
            raise TimeoutError(f"streaming query {query.name} did not finish {batches} micro-batch(es) with data "
                               f"in {timeout:.0f} s; its last progress: {query.lastProgress}")
        time.sleep(0.05)


def stop(queries: Mapping[str, StreamingQuery]) -> dict[str, dict[str, int]]:
    """Stop every query at once — a micro-batch still running is cut off, as when a cluster fails — and return,
    per query, the micro-batches it finished and the rows they read (``process_available``'s report)."""
    for query in queries.values():
        query.stop()
    return {name: _report(query) for name, query in queries.items()}


def checkpoint_batches(paths: StreamPaths, query: str) -> dict[str, list[int]]:
    """The micro-batches recorded in ``query``'s checkpoint: ``planned`` (an offsets file: which input the batch
    reads, written before it runs) and ``committed`` (a commits file: the batch reached the sink). A batch planned
    but not committed was cut off; a restart runs it again on the same input."""
    folder = paths.checkpoint(query)

    def ids(sub: str) -> list[int]:
        return sorted(int(p.name) for p in (folder / sub).glob("*") if p.name.isdigit())

    return {"planned": ids("offsets"), "committed": ids("commits")}


def sink_pandas(spark: SparkSession, folder: Path | str, order_by: Sequence[str]) -> pd.DataFrame:
    """A Parquet sink as a pandas frame sorted by ``order_by``, read **by Spark**: Spark reads only the files
    listed in the sink's log (``_spark_metadata``), while a plain Parquet reader (``pd.read_parquet``) would also
    count the files of a micro-batch that was cut off mid-write and redone after the restart."""
    from helpers.tables import ordered_pandas

    return ordered_pandas(spark.read.parquet(str(folder)), order_by)


# --------------------------------------------------------------------------------------------- checks


def counts(spark: SparkSession, paths: StreamPaths) -> dict[str, int]:
    """What landed against what the sinks hold: ``rows in`` (records in the landing files, read again as a
    batch) and ``good`` (those that break no rule), ``quarantined`` (rows in the quarantine sink), ``rows out``
    (rows in the predictions sink) and ``distinct flights`` (distinct ``FLIGHT_KEY`` among them: equal to
    ``rows out`` when no flight was written twice). Nothing was lost when rows in = good + quarantined and
    rows out = good."""
    from pyspark.sql import functions as F

    predicted = spark.read.parquet(str(paths.predictions))
    totals = predicted.agg(F.count("*").alias("rows"),
                           F.count_distinct(*[F.col(c) for c in FLIGHT_KEY]).alias("distinct")).first()
    landed = read_landing(spark, paths.landing, stream=False)
    classified = landed.agg(F.count("*").alias("rows"), F.count_if(problem().isNull()).alias("good")).first()
    return {"rows in": int(classified["rows"]), "good": int(classified["good"]),
            "quarantined": spark.read.parquet(str(paths.quarantine)).count(),
            "rows out": int(totals["rows"]), "distinct flights": int(totals["distinct"])}
