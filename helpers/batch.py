"""Batch inference with a registered model: score a Spark DataFrame with ``mlflow.pyfunc.spark_udf`` or with
``mapInPandas`` (the model loaded once per partition), stamp each row with the model that scored it, and
write the result to a partitioned Parquet table that a re-run overwrites one partition at a time.

    version = registry.champion("flight_delay")                     # resolve the alias ONCE, on the driver
    uri = batch.version_uri("flight_delay", version.version)          # models:/flight_delay/<n>
    scored = batch.score_with_spark_udf(spark, flights, uri, delays.FEATURES)
    path = batch.download_model(uri)                                   # or: a local copy for mapInPandas
    scored = batch.score_with_map_in_pandas(flights, path, delays.FEATURES, keep=["flight"])
    table = batch.stamp(scored, "flight_delay", version.version, scored_at)
    batch.write_partitions(table, folder, ["month"])                   # replaces only the months in ``table``

``score_partitions`` runs on the executors; it lives here because chapters 19 and 26 share it (PySpark
would ship a notebook-defined function to the workers with cloudpickle just as well).
Scores are P(positive class): the second column of a ``predict_proba`` model's output (see
``helpers.registry.positive_scores``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: Column names added by the scorers and by ``stamp``.
SCORE = "p_late"
LOAD_ID = "model_load"
BATCH = "arrow_batch"
MODEL_NAME_COLUMN = "model_name"
MODEL_VERSION_COLUMN = "model_version"
SCORED_AT_COLUMN = "scored_at"

# Counts the model loads made by this Python process (each executor-side Python worker has its own).
_LOADS = itertools.count(1)


def version_uri(name: str, version: str | int) -> str:
    """``models:/<name>/<version>``: a URI that keeps meaning the same model while an alias moves."""
    return f"models:/{name}/{version}"


def download_model(model_uri: str, folder: Path | str | None = None) -> str:
    """Copy the model at ``model_uri`` to a local folder (``folder``, or a fresh temporary one) and return its
    path. Executors then load the files directly instead of asking the registry — what ``spark_udf`` does too.
    On a real cluster the folder must be on storage every worker can read (a Unity Catalog volume, DBFS)."""
    import tempfile

    import mlflow

    target = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="batch-model-"))
    target.mkdir(parents=True, exist_ok=True)
    return mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(target))


def _positive(output: object) -> pd.Series:
    from helpers.registry import positive_scores

    return pd.Series(positive_scores(output), dtype="float64")


def score_partitions(batches: Iterator[pd.DataFrame], model_path: str, features: Sequence[str],
                     keep: Sequence[str], loader: Callable[[str], object] | None = None,
                     ) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` function: load the model at ``model_path`` **once**, then score every Arrow batch
    of the partition with it. Yields the ``keep`` columns, ``SCORE``, and two bookkeeping columns: ``LOAD_ID``
    (``"<process id>-<n>"``, the same for every row scored by one load) and ``BATCH`` (the batch's number
    within the partition, from 0). ``loader`` defaults to ``mlflow.pyfunc.load_model``.

    The model is loaded lazily, when the first batch arrives, so an empty partition loads nothing."""
    model = None
    load_id = ""
    for number, batch in enumerate(batches):
        if model is None:
            if loader is None:
                import mlflow

                loader = mlflow.pyfunc.load_model
            model = loader(model_path)
            load_id = f"{os.getpid()}-{next(_LOADS)}"
        scores = _positive(model.predict(batch[list(features)]))  # type: ignore[attr-defined]
        out = batch[list(keep)].reset_index(drop=True)
        yield out.assign(**{SCORE: scores.to_numpy(), LOAD_ID: load_id, BATCH: number})


def score_with_map_in_pandas(frame: DataFrame, model_path: str, features: Sequence[str],
                             keep: Sequence[str]) -> DataFrame:
    """``frame`` scored by ``score_partitions`` through ``mapInPandas``: the ``keep`` columns, ``SCORE``
    (double), ``LOAD_ID`` (string) and ``BATCH`` (int). Each partition (each Spark task) loads the model once,
    whatever the number of Arrow batches (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows each)."""
    from functools import partial

    kept = ", ".join(f"`{name}` {kind}" for name, kind in frame.select(*keep).dtypes)
    schema = f"{kept}, `{SCORE}` double, `{LOAD_ID}` string, `{BATCH}` int"
    function = partial(score_partitions, model_path=model_path, features=list(features), keep=list(keep))
    return frame.select(*dict.fromkeys([*keep, *features])).mapInPandas(function, schema)


def model_udf(spark: SparkSession, model_uri: str) -> Callable[..., Column]:
    """A Spark UDF of the MLflow model at ``model_uri`` (``mlflow.pyfunc.spark_udf``): MLflow copies the model to
    the executors once and wraps its ``predict`` in a pandas UDF that returns ``array<double>`` (for a
    ``predict_proba`` model: [P(negative), P(positive)]), run in this Python environment (``env_manager="local"``).
    Call it with **one struct** of the feature columns, ``udf(features_struct(FEATURES))``: the model then
    receives a pandas frame with the struct's field names and its signature matches them **by name**. Separate
    columns, ``udf(*FEATURES)``, reach the model unnamed and are matched to the signature **by position**, which
    goes silently wrong the day the column order changes. Batch jobs and streams score with this one UDF."""
    import logging

    import mlflow

    # With env_manager="local" MLflow warns that it does not rebuild the training environment: here the
    # executors run this very environment (pinned by requirements.lock), which is the point of "local".
    quiet = [logging.getLogger(n) for n in ("mlflow.pyfunc", "mlflow.models.flavor_backend_registry")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        return mlflow.pyfunc.spark_udf(spark, model_uri, result_type="array<double>", env_manager="local")
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def features_struct(features: Sequence[str]) -> Column:
    """The ``features`` columns as one struct, whose field names are the column names: the argument that makes a
    ``model_udf`` match its input to the model's signature by name (see ``model_udf``)."""
    from pyspark.sql import functions as F

    return F.struct(*[F.col(c) for c in features])


def score_with_spark_udf(spark: SparkSession, frame: DataFrame, model_uri: str,
                         features: Sequence[str]) -> DataFrame:
    """``frame`` with a ``SCORE`` column, P(positive), from ``model_udf`` given the ``features`` columns by name
    (one struct, ``features_struct``)."""
    udf = model_udf(spark, model_uri)
    return frame.withColumn(SCORE, udf(features_struct(features))[1])


def stamp(frame: DataFrame, model_name: str, model_version: str | int, scored_at: object) -> DataFrame:
    """``frame`` with the provenance of its scores in every row: ``model_name``, ``model_version`` (string) and
    ``scored_at`` (a timestamp: one value for the whole batch, decided by the caller)."""
    from pyspark.sql import functions as F

    return frame.withColumns({
        MODEL_NAME_COLUMN: F.lit(model_name),
        MODEL_VERSION_COLUMN: F.lit(str(model_version)),
        SCORED_AT_COLUMN: F.lit(scored_at).cast("timestamp"),
    })


def write_partitions(frame: DataFrame, path: Path | str, partition_by: Sequence[str]) -> None:
    """Write ``frame`` as Parquet under ``path``, partitioned by ``partition_by``, with **dynamic** partition
    overwrite: the partitions present in ``frame`` are replaced, every other partition is left as it is. So a
    re-run of one month's job replaces that month's rows (no duplicates) and touches nothing else."""
    (frame.write.mode("overwrite")
     .option("partitionOverwriteMode", "dynamic")
     .partitionBy(*partition_by)
     .parquet(str(path)))


def partition_summary(spark: SparkSession, path: Path | str, by: Sequence[str]) -> pd.DataFrame:
    """One row per partition (``by``) of the Parquet table at ``path``: its rows, the model versions that scored
    them (comma-separated) and the latest ``scored_at`` — a pandas frame sorted by ``by``."""
    from pyspark.sql import functions as F

    table = spark.read.parquet(str(path))
    summary = table.groupBy(*by).agg(
        F.count(F.lit(1)).alias("rows"),
        F.concat_ws(",", F.array_sort(F.collect_set(MODEL_VERSION_COLUMN))).alias("model_versions"),
        F.max(SCORED_AT_COLUMN).alias("scored_at"),
    )
    return summary.toPandas().sort_values(list(by)).reset_index(drop=True)


def evaluate_fully(frame: DataFrame) -> float:
    """Seconds to compute every column of every row of ``frame`` without keeping the result: a write to
    Spark's ``noop`` sink (``count()`` could skip the scoring columns it does not need)."""
    start = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def rows_per_second(rows: int, seconds: float) -> float:
    """Throughput; ``seconds`` must be positive."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    return rows / seconds
