"""helpers.streaming: the replay's malformed lines, and the whole pipeline stopped and restarted from its
checkpoints — nothing lost, nothing written twice, every malformed record quarantined (on a throw-away
MLflow store and folders in tmp_path, never the project's .work)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import delays, streaming
from helpers.datasets import load_pandas
from helpers.flights import FLIGHT_KEY
from tests.test_registry import registry_store, synthetic_flights  # noqa: F401  (a fixture, used by name)

# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(scope="module")
def july() -> pd.DataFrame:
    """Real flights of 1-2 July 2013 (default scale: about 200), in time order."""
    return pd.concat(streaming.replay_days(load_pandas("flights"), month=7, days=[1, 2]), ignore_index=True)


def test_malformed_lines_break_exactly_one_rule(july: pd.DataFrame) -> None:
    rec = streaming.record(july.iloc[0])
    assert rec["time_hour"] == july["time_hour"].iloc[0].strftime("%Y-%m-%dT%H:%M:%S")  # ISO text, no zone
    assert isinstance(rec["distance"], int) and isinstance(rec["dep_delay"], float)
    with pytest.raises(json.JSONDecodeError):
        json.loads(streaming.malform(rec, "bad JSON"))
    assert json.loads(streaming.malform(rec, "wrong type"))["distance"].endswith(" miles")
    assert "origin" not in json.loads(streaming.malform(rec, "missing field"))
    lines = streaming.json_lines(july.head(10), {"bad JSON": 1, "missing field": 2})
    assert len(lines) == 10 and lines[0] == json.dumps(rec)
    with pytest.raises(ValueError):
        streaming.malform(rec, "too late")


def test_land_is_atomic_and_named_after_the_day(july: pd.DataFrame, tmp_path: Path) -> None:
    landed = streaming.land(july.head(20), tmp_path, malformed={"wrong type": 2, "bad JSON": 0})
    assert [p.name for p in tmp_path.iterdir()] == ["flights-2013-07-01.json"]  # no hidden file left behind
    assert (landed.rows, landed.good, dict(landed.malformed)) == (20, 18, {"wrong type": 2})


def test_stop_and_restart_from_the_checkpoint_loses_and_repeats_nothing(
        spark, july: pd.DataFrame, tmp_path: Path, registry_store: str) -> None:  # noqa: F811
    model = delays.train_candidate(delays.Candidate("logistic", {"C": 1.0}), synthetic_flights(rows=300))
    info = delays.log_candidate(model, delays.Candidate("logistic"), synthetic_flights(rows=300))
    udf = streaming.model_udf(spark, info.model_uri)

    paths = streaming.StreamPaths.fresh(tmp_path / "stream")
    quarter = len(july) // 4
    files = [july.iloc[i * quarter:(i + 1) * quarter] for i in range(4)]
    malformed = [{"bad JSON": 1, "wrong type": 1}, {}, {"missing field": 2}, {"bad JSON": 1}]
    names = [f"part-{i}.json" for i in range(4)]
    landed = [streaming.land(f, paths.landing, n, m) for f, n, m in zip(files[:2], names, malformed, strict=False)]
    first = streaming.process_available(spark, paths, udf)
    assert first["predictions"]["rows read"] == 2 * quarter
    # the queries have stopped; two more files land; new queries start from the same checkpoints
    landed += [streaming.land(f, paths.landing, n, m) for f, n, m in zip(files[2:], names[2:], malformed[2:],
                                                                          strict=True)]
    second = streaming.process_available(spark, paths, udf)
    assert second["predictions"]["rows read"] == 2 * quarter  # only the new files were read

    counts = streaming.counts(spark, paths)
    rows_in, bad = sum(f.rows for f in landed), sum(sum(m.values()) for m in malformed)
    assert counts == {"rows in": rows_in, "good": rows_in - bad, "quarantined": bad,
                      "rows out": rows_in - bad, "distinct flights": rows_in - bad}
    reasons = pd.read_parquet(paths.quarantine)["reason"].value_counts().to_dict()
    assert reasons == {"bad JSON": 2, "wrong type": 1, "missing field": 2}
    scores = pd.read_parquet(paths.predictions)["p_late"]
    assert scores.between(0, 1).all() and scores.notna().all()
    aggregates = pd.read_parquet(paths.aggregates)
    assert 0 < aggregates["flights"].sum() <= rows_in - bad  # the windows the watermark has closed

    third = streaming.process_available(spark, paths, udf)  # nothing new: nothing read, nothing written
    assert third["predictions"]["rows read"] == 0 and third["quarantine"]["rows read"] == 0
    assert streaming.counts(spark, paths) == counts


@pytest.mark.parametrize("files_done_before_stop", [1, 2])
def test_a_stream_stopped_mid_stream_restarts_with_nothing_lost_or_repeated(
        spark, july: pd.DataFrame, tmp_path: Path, registry_store: str,  # noqa: F811
        files_done_before_stop: int) -> None:
    """Running queries (one file per micro-batch) are stopped while files are still waiting — the next
    micro-batch is usually cut off mid-flight — and the restarted queries score every flight exactly once."""
    model = delays.train_candidate(delays.Candidate("logistic", {"C": 1.0}), synthetic_flights(rows=300))
    info = delays.log_candidate(model, delays.Candidate("logistic"), synthetic_flights(rows=300))
    udf = streaming.model_udf(spark, info.model_uri)

    paths = streaming.StreamPaths.fresh(tmp_path / "stream")
    fifth = len(july) // 5
    malformed = [{"bad JSON": 1}, {"wrong type": 1}, {}, {"missing field": 1}, {"bad JSON": 1, "wrong type": 1}]
    landed = [streaming.land(july.iloc[i * fifth:(i + 1) * fifth], paths.landing, f"part-{i}.json", malformed[i])
              for i in range(5)]
    running = streaming.start_scoring(spark, paths, udf, files_per_batch=1)
    streaming.wait_for_batches(running["predictions"], files_done_before_stop)
    at_stop = streaming.stop(running)
    assert not any(query.isActive for query in running.values())
    scored_at_stop = spark.read.parquet(str(paths.predictions)).count()
    good = sum(f.good for f in landed)
    assert 0 < scored_at_stop < good  # stopped mid-stream: some flights scored, some files still waiting
    assert at_stop["predictions"]["micro-batches"] >= files_done_before_stop

    streaming.process_available(spark, paths, udf)  # restart from the checkpoints
    counts = streaming.counts(spark, paths)
    rows_in, bad = sum(f.rows for f in landed), sum(sum(m.values()) for m in malformed)
    assert counts == {"rows in": rows_in, "good": rows_in - bad, "quarantined": bad,
                      "rows out": rows_in - bad, "distinct flights": rows_in - bad}
    state = streaming.checkpoint_batches(paths, "predictions")
    assert state["planned"] == state["committed"]  # a batch cut off at the stop was redone, not skipped
    reasons = streaming.sink_pandas(spark, paths.quarantine, ["source_file", "reason"])["reason"]
    assert reasons.value_counts().to_dict() == {"bad JSON": 2, "wrong type": 2, "missing field": 1}
    assert len(streaming.sink_pandas(spark, paths.predictions, list(FLIGHT_KEY))) == rows_in - bad


def test_wait_for_batches_reports_a_failed_query(spark, tmp_path: Path) -> None:
    """A running query that fails is reported with its own error, not waited on until the timeout."""
    from pyspark.sql import functions as F

    paths = streaming.StreamPaths.fresh(tmp_path / "stream")
    streaming.land(load_pandas("flights").head(3), paths.landing, "part-0.json")
    failing = (streaming.read_landing(spark, paths.landing)
               .withColumn("boom", F.raise_error(F.lit("poisoned record"))))
    query = (failing.writeStream.format("parquet").option("path", str(paths.predictions))
             .option("checkpointLocation", str(paths.checkpoint("predictions"))).start())
    try:
        with pytest.raises(RuntimeError, match="poisoned record"):
            streaming.wait_for_batches(query, 1, timeout=120)
    finally:
        query.stop()
    with pytest.raises(ValueError, match="files_per_batch"):
        streaming.read_landing(spark, paths.landing, stream=False, files_per_batch=1)


def test_wait_for_batches_reports_an_error_recorded_as_the_query_stops() -> None:
    """The query's error can be recorded between the error check and the activity check of one poll: the query
    is then inactive, and its error, not "stopped before", is what the learner must read."""

    class FailingAsPolled:
        name, recentProgress, isActive, lastProgress = "predictions", [], False, None
        calls = 0

        def exception(self):
            self.calls += 1
            return None if self.calls == 1 else "poisoned record"

    with pytest.raises(RuntimeError, match="failed: poisoned record"):
        streaming.wait_for_batches(FailingAsPolled(), 1, timeout=5)
