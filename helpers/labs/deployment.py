"""Checks for Lab 21 · Deployment (chapters 19 batch inference, 20 streaming, 21 real-time serving) with the
flight-delay champion.

The lab's tasks: score the flights of July–August 2013 in a batch with ``mlflow.pyfunc.spark_udf``, write the
scores, stamped with the model version that made them, to a Parquet table partitioned by month (a re-run
replaces its months, never duplicates them), score flights landing as JSON files with a checkpointed stream that
is stopped and restarted (every good record scored once, every malformed one quarantined), and ask a REST model
server for predictions — a server started and stopped inside a ``with`` block. The checks score the same
flights with the champion themselves.

The lab only READS the shared champion (``models:/flight_delay@champion``); its table and stream live under
``<work>/labs/deployment``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.labs import active_spark, check, require

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from helpers.streaming import StreamPaths

#: The months the lab scores: the first two months after the champion's training window.
MONTHS = (7, 8)
#: How many flights the lab sends to the model server.
REQUEST_ROWS = 5
#: The stream's replay: the days of July 2013 that land, in two parts, and the records broken in each file.
STREAM_PARTS = {1: (1, 2), 2: (3, 4)}
STREAM_MALFORMED = {1: {"bad JSON": 1}, 2: {"wrong type": 1}, 3: {}, 4: {"missing field": 1}}

_cache: dict[tuple[str, int], Any] = {}


def table_path() -> Path:
    """Where the lab writes its scored table: ``<work>/labs/deployment/scores``."""
    from helpers.paths import work_dir

    return work_dir("labs", "deployment") / "scores"


def new_flights(spark: SparkSession, scale: str = "default") -> DataFrame:
    """The flights of ``MONTHS`` that arrived, as ``delays.delay_features`` rows (cached once per session)."""
    key = (f"flights-{scale}", id(spark))
    if key not in _cache:
        from helpers import delays

        _cache[key] = delays.model_flights(spark, scale, months=MONTHS).cache()
    return _cache[key]


def request_rows(spark: SparkSession, scale: str = "default") -> pd.DataFrame:
    """``REQUEST_ROWS`` flights of ``new_flights`` (the first by flight key) as pandas: what the lab sends to the
    model server."""
    from helpers import delays

    key = (f"request-{scale}", id(spark))
    if key not in _cache:
        flights = new_flights(spark, scale)
        _cache[key] = delays.to_pandas(flights.orderBy(*delays.FLIGHT_KEY).limit(REQUEST_ROWS))
    return _cache[key]


def stream_paths() -> StreamPaths:
    """A fresh folder for the lab's stream (landing folder, sinks, checkpoints): ``<work>/labs/deployment/stream``,
    emptied — run the set-up again to start the stream over."""
    from helpers import streaming
    from helpers.paths import work_dir

    return streaming.StreamPaths.fresh(work_dir("labs", "deployment") / "stream")


def land(paths: StreamPaths, part: int, scale: str = "default") -> list[str]:
    """Land part ``part`` (1 or 2) of the replay in ``paths.landing``: one JSON-lines file per day of
    ``STREAM_PARTS[part]``, a few records broken on purpose (``STREAM_MALFORMED``). Returns the files' names."""
    from helpers import streaming
    from helpers.datasets import load_pandas

    if part not in STREAM_PARTS:
        raise ValueError(f"part must be 1 or 2, not {part!r}")
    key = (f"replay-{scale}", 0)
    if key not in _cache:
        days = [day for part_days in STREAM_PARTS.values() for day in part_days]
        _cache[key] = dict(zip(days, streaming.replay_days(load_pandas("flights", scale), 7, days), strict=True))
    return [streaming.land(_cache[key][day], paths.landing, malformed=STREAM_MALFORMED[day]).file
            for day in STREAM_PARTS[part]]


def _champion_version() -> str:
    from helpers import delays, registry

    champion = registry.champion(delays.MODEL_NAME)
    require(champion is not None, "the registry has no flight_delay champion: run the set-up cell (it calls "
                                  "delays.ensure_champion)")
    return str(champion.version)


def _champion_scores(frame: pd.DataFrame) -> np.ndarray:
    """P(late) of the champion for the rows of ``frame``."""
    import mlflow

    from helpers import batch, delays

    key = ("model", 0)
    if key not in _cache or _cache[key][0] != _champion_version():
        version = _champion_version()
        _cache[key] = (version, mlflow.pyfunc.load_model(batch.version_uri(delays.MODEL_NAME, version)))
    return delays.delay_probability(_cache[key][1].predict(frame[delays.FEATURES]))


def _expected(spark: SparkSession) -> pd.DataFrame:
    """The flights of ``new_flights`` with the champion's ``p_late``, in flight-key order."""
    from helpers import delays

    key = ("expected", id(spark))
    if key not in _cache or _cache[key][0] != _champion_version():
        rows = delays.to_pandas(new_flights(spark))
        rows["p_late"] = _champion_scores(rows)
        _cache[key] = (_champion_version(), rows)
    return _cache[key][1]


def _is_spark_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "groupBy")


def _compare_scores(frame: DataFrame, what: str) -> None:
    """Fail unless ``frame`` holds every flight once with the champion's ``p_late``."""
    from pyspark.sql import functions as F

    from helpers import delays

    spark = active_spark()
    expected = _expected(spark)
    keys = list(delays.FLIGHT_KEY)
    got = frame.select(*keys, F.col("p_late").cast("double").alias("p_late")).toPandas()
    require(len(got) != 2 * len(expected), f"{what} holds {len(got):,} rows, twice the {len(expected):,} flights: "
                                           "a re-run APPENDED instead of replacing its months — write with "
                                           "batch.write_partitions (dynamic partition overwrite)")
    require(len(got) == len(expected), f"{what} holds {len(got):,} rows; the flights of July–August number "
                                       f"{len(expected):,}: score every row of `flights`")
    merged = expected[[*keys, "p_late"]].merge(got, on=keys, suffixes=("", "_got"))
    require(len(merged) == len(expected), f"{len(expected) - len(merged):,} flights of `flights` are missing")
    mean = float(merged["p_late_got"].mean())
    require(abs(mean - (1 - float(merged["p_late"].mean()))) > 1e-3,
            f"the mean p_late is {mean:.3f}: that is P(on time), the FIRST probability — take the second")
    gap = float((merged["p_late_got"] - merged["p_late"]).abs().max())
    require(gap < 1e-6, f"p_late differs from the champion's P(late) by up to {gap:.4f}: score with the champion's "
                        "version (batch.version_uri(\"flight_delay\", champion.version))")


@check("Batch: the new flights scored with spark_udf")
def test_scored(scored: DataFrame) -> str:
    """``scored``: ``flights`` (the flight key columns included) with ``p_late`` = the champion's P(late)."""
    require(_is_spark_frame(scored), f"scored should be a Spark DataFrame (flights with a p_late column), not "
                                     f"{type(scored).__name__}")
    require("p_late" in scored.columns, f"scored has no column p_late (it has {scored.columns[-3:]} at the end)")
    _compare_scores(scored, "scored")
    return f"{len(_expected(active_spark())):,} flights scored by the champion's version of flight_delay"


@check("Table: scores stamped with their model version, partitioned by month")
def test_table(path: Any) -> str:
    """``path``: the folder of the Parquet table the learner wrote — partitioned by ``month``, every flight once,
    with ``model_name``, ``model_version`` (the champion's) and ``scored_at``."""
    from helpers import batch

    require(isinstance(path, (str, Path)), f"path should be the table's folder (a str or Path), not "
                                           f"{type(path).__name__}")
    folder = Path(path)
    require(folder.exists(), "nothing is written at that path: write the table with batch.write_partitions")
    partitions = sorted(p.name for p in folder.glob("month=*"))
    require(partitions, "the table has no month=… folders: partition it by month (partition_by=[\"month\"])")
    require(partitions == [f"month={m}" for m in MONTHS], f"the table's partitions are {partitions}; expected "
                                                          f"month=7 and month=8")
    table = active_spark().read.parquet(str(folder))
    missing = [c for c in (batch.MODEL_NAME_COLUMN, batch.MODEL_VERSION_COLUMN, batch.SCORED_AT_COLUMN)
               if c not in table.columns]
    require(not missing, f"the table lacks the column(s) {missing}: stamp the rows with batch.stamp(scored, "
                         "\"flight_delay\", champion.version, scored_at) before writing")
    versions = sorted({str(r[0]) for r in table.select(batch.MODEL_VERSION_COLUMN).distinct().collect()})
    require(versions == [_champion_version()], f"the rows say model_version {versions}; the champion that scored "
                                               f"them is version {_champion_version()}")
    _compare_scores(table, "the table")
    return f"{', '.join(partitions)}; {len(_expected(active_spark())):,} rows, each stamped with the champion's version"


@check("Streaming: every landed record scored or quarantined once, across a restart")
def test_stream(stream: Any) -> str:
    """``stream``: the ``StreamPaths`` of the learner's stream, after both parts landed and the queries ran again
    from their checkpoints — every good record in the predictions sink once with the champion's P(late), every
    malformed one in the quarantine."""
    from helpers import delays, streaming

    require(isinstance(stream, streaming.StreamPaths), f"stream should be STREAM (the StreamPaths of set-up), not "
                                                       f"{type(stream).__name__}")
    landed = sorted(p.name for p in stream.landing.glob("*.json"))
    expected_files = sum(len(days) for days in STREAM_PARTS.values())
    require(landed, "nothing has landed: call lab.land(STREAM, 1) before the first run of the queries")
    require((stream.predictions / "_spark_metadata").exists(),
            "the predictions sink has no commit log: run the queries with streaming.process_available(spark, "
            "STREAM, udf), which writes to STREAM's sinks with a checkpoint")
    require((stream.quarantine / "_spark_metadata").exists(),
            "the quarantine sink has no commit log: run all three queries with streaming.process_available — "
            "the quarantine query is one of them")
    spark = active_spark()
    counts = streaming.counts(spark, stream)
    bad = sum(sum(m.values()) for m in STREAM_MALFORMED.values())
    require(counts["rows out"] > 0, "the predictions sink is empty: run streaming.process_available(spark, STREAM, "
                                    "udf) after the files land")
    require(counts["distinct flights"] == counts["rows out"],
            f"{counts['rows out'] - counts['distinct flights']} flight(s) are in the predictions sink twice: the same "
            "flights landed in more than one file (a file landed again under another name?) — start over with a "
            "fresh STREAM (run the set-up cell again) and land each part once")
    require(len(landed) >= expected_files, f"{len(landed)} of the {expected_files} files have landed: call "
                                           "lab.land(STREAM, 2), then run the queries again")
    require(counts["rows out"] == counts["good"],
            f"{counts['good'] - counts['rows out']} good record(s) were not scored: part 2 landed after the queries "
            "ran — run streaming.process_available again; it restarts from the checkpoints and reads only the new "
            "files")
    require(counts["quarantined"] == bad, f"the quarantine holds {counts['quarantined']} record(s); {bad} malformed "
                                          "ones landed: run the queries again after the last file landed")
    scored = streaming.sink_pandas(spark, stream.predictions, list(delays.FLIGHT_KEY))
    gap = float((scored["p_late"] - _champion_scores(scored)).abs().max())
    require(gap < 1e-6, f"p_late differs from the champion's P(late) by up to {gap:.4f}: make the UDF with "
                        "streaming.model_udf(spark, MODEL_URI), the champion's version")
    return (f"{counts['rows in']} records in = {counts['good']} scored + {counts['quarantined']} quarantined, "
            "no flight twice")


@check("Serving: predictions from a REST model server, stopped afterwards")
def test_served(server: Any, predictions: Any) -> str:
    """``server``: the ``ModelServer`` the learner started (it must be stopped by now); ``predictions``: what it
    answered for ``request_rows`` — two probabilities per flight, equal to the champion's."""
    import numpy as np

    from helpers import serving

    require(isinstance(server, serving.ModelServer), f"server should be the ModelServer of `with "
                                                     f"serving.model_server(...) as server:`, not "
                                                     f"{type(server).__name__}")
    require(not serving.running(server), "the server is still running: start it with `with "
                                         "serving.model_server(...) as server:` so that it stops at the end of the "
                                         "block, even on an error")
    values = np.asarray(predictions, dtype="float64")
    rows = request_rows(active_spark())
    require(values.shape == (len(rows), 2), f"predictions have the shape {values.shape}; the server answers two "
                                            f"probabilities for each of the {len(rows)} flights: send "
                                            "sample[delays.FEATURES] with serving.predict")
    expected = _champion_scores(rows)
    gap = float(np.abs(values[:, 1] - expected).max())
    require(gap < 1e-6, f"the server's P(late) differs from the champion's by up to {gap:.4f}: serve "
                        "delays.CHAMPION_URI and send the rows of `sample` unchanged")
    return f"{len(rows)} flights, P(late) {', '.join(f'{v:.3f}' for v in values[:, 1])} — server stopped"
