"""Single-machine models at Spark scale: score a fitted scikit-learn-style model (scikit-learn,
LightGBM, XGBoost's sklearn API) over a Spark DataFrame, and run independent training trials as
Spark tasks.

The pattern is the one Databricks recommends for "train on one machine, apply everywhere": fit on
the driver from a pandas sample, ship the fitted model to the executors **once** (a broadcast
variable on a classic session; on Spark Connect, where there is no ``SparkContext``, the model
travels inside the function, which Spark also sends once per query), and apply it to Arrow batches
of rows with a pandas UDF or ``mapInPandas``.

    p1 = probability_udf(model, FEATURES)
    scored = frame.withColumn("p1", p1(*FEATURES))            # a column expression
    scored = score_partitions(frame, model, FEATURES)          # or whole batches, all columns kept

    results = run_trials(spark, fit_and_score, [{"C": 1.0}, {"C": 10.0}])   # one Spark task each
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

Prepare = Callable[[pd.DataFrame], pd.DataFrame]


def share(obj: Any, spark: SparkSession | None = None) -> Any:
    """``obj`` wrapped so that Spark sends it to each executor once: a ``Broadcast`` on a classic
    session, the object itself on Spark Connect (there is no ``SparkContext`` to broadcast with).
    Read it back inside a task with ``shared_value``.

    The broadcast holds ``obj`` serialised with cloudpickle, which — unlike the plain pickle a
    broadcast uses — carries functions and classes defined in the notebook itself (a scikit-learn
    ``FunctionTransformer`` around a notebook function, for example).
    """
    from pyspark import cloudpickle
    from pyspark.sql import SparkSession

    from helpers.spark import is_connect

    session = spark or SparkSession.getActiveSession()
    if session is None or is_connect(session):
        return obj
    return session.sparkContext.broadcast(cloudpickle.dumps(obj))


def shared_value(shared: Any) -> Any:
    """The object behind ``share``'s result (inside a Spark task or on the driver). Call it once per
    task, outside the loop over batches: unpacking a broadcast deserialises the object."""
    import pickle

    from pyspark.broadcast import Broadcast

    return pickle.loads(shared.value) if isinstance(shared, Broadcast) else shared


def _positive_scores(model: Any, features: pd.DataFrame, positive_index: int) -> pd.Series:
    scores = model.predict_proba(features)[:, positive_index]
    return pd.Series(scores, index=features.index, dtype="float64")


def probability_udf(model: Any, feature_names: Sequence[str], prepare: Prepare | None = None,
                    positive_index: int = 1, spark: SparkSession | None = None) -> Callable[..., Column]:
    """A pandas UDF that returns the model's probability of class ``positive_index`` as a double.

    Call it with the feature columns in the order of ``feature_names``:
    ``frame.withColumn("p1", probability_udf(model, FEATURES)(*FEATURES))``. The columns arrive as
    a pandas DataFrame with those names; ``prepare`` can turn it into exactly what the model was
    trained on (dtypes, categories). The model is shared once and unpacked once per task.
    """
    from pyspark.sql.functions import pandas_udf

    names = list(feature_names)
    if not names:
        raise ValueError("probability_udf needs at least one feature name.")
    shared = share(model, spark)

    def score(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        fitted = shared_value(shared)
        for columns in batches:
            if isinstance(columns, pd.Series):  # a single feature column arrives unwrapped
                columns = (columns,)
            features = pd.DataFrame(dict(zip(names, columns, strict=True)))
            if prepare is not None:
                features = prepare(features)
            yield _positive_scores(fitted, features, positive_index)

    return pandas_udf(score, "double")


def score_partitions(frame: DataFrame, model: Any, feature_names: Sequence[str], output_col: str = "p1",
                     prepare: Prepare | None = None, positive_index: int = 1) -> DataFrame:
    """``frame`` with ``output_col`` added: the model's probability of class ``positive_index``,
    computed batch by batch with ``mapInPandas`` (every column of ``frame`` is kept).

    ``frame``'s columns must convert to Arrow (numbers, strings, dates; not MLlib vectors).
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    names = list(feature_names)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"score_partitions: columns not in the DataFrame: {', '.join(missing)}.")
    if output_col in frame.columns:
        raise ValueError(f"score_partitions: the DataFrame already has a column {output_col!r}.")
    shared = share(model, frame.sparkSession)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = shared_value(shared)
        for batch in batches:
            features = batch[names]
            if prepare is not None:
                features = prepare(features)
            yield batch.assign(**{output_col: _positive_scores(fitted, features, positive_index).to_numpy()})

    schema = StructType([*frame.schema.fields, StructField(output_col, DoubleType())])
    return frame.mapInPandas(score, schema)


def run_trials(spark: SparkSession, trial: Callable[[dict[str, Any]], Mapping[str, float]],
               settings: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Run ``trial(setting)`` for every setting, one Spark task per setting, in a single Spark job.

    ``trial`` is any function of a dict of (JSON-serialisable) parameters that returns a dict of
    numbers (its metrics); it runs on an executor, so it must bring its own data (a small pandas
    frame captured in the closure, or a path it reads). Returns one row per setting, in the order
    given: the parameters, then the metrics.
    """
    if not settings:
        raise ValueError("run_trials needs at least one setting.")
    encoded = [json.dumps(dict(s), sort_keys=True) for s in settings]
    # range() splits its ids evenly over numPartitions: exactly one setting per partition, so one per task.
    tasks = spark.range(0, len(encoded), 1, numPartitions=len(encoded))

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for number in batch["id"]:
                metrics = {k: float(v) for k, v in trial(json.loads(encoded[int(number)])).items()}
                yield pd.DataFrame({"trial": [int(number)], "metrics": [json.dumps(metrics)]})

    rows = tasks.mapInPandas(run, "trial int, metrics string").toPandas().sort_values("trial")
    rows = rows.reset_index(drop=True)
    metrics = pd.DataFrame([json.loads(m) for m in rows["metrics"]])
    return pd.concat([pd.DataFrame([dict(s) for s in settings]), metrics], axis=1)
