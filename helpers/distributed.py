"""Single-machine models at Spark scale: score a fitted scikit-learn-style model (scikit-learn,
LightGBM, XGBoost's sklearn API) over a Spark DataFrame, and run independent training trials as
Spark tasks.

The pattern is the one Databricks recommends for "train on one machine, apply everywhere": fit on
the driver from a pandas sample, ship the fitted model to the executors **once** (a broadcast
variable on a classic session; on Spark Connect, where there is no ``SparkContext``, the model
travels inside the function, which Spark also sends once per query), and apply it to Arrow batches
of rows with a pandas UDF or ``mapInPandas``.

    p1 = score_udf(model, FEATURES)
    scored = frame.withColumn("p1", p1(*FEATURES))            # a column expression
    scored = score_partitions(frame, model, FEATURES)          # or whole batches, all columns kept
    margin = score_udf(svm, FEATURES, method="decision_function")   # any per-row score the model has

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


METHODS = ("predict_proba", "decision_function", "predict")


def model_scores(model: Any, features: pd.DataFrame, method: str = "predict_proba",
                 positive_index: int = 1) -> pd.Series:
    """One double per row: ``predict_proba``'s column ``positive_index``, the (binary) ``decision_function``
    margin, or ``predict``'s label — the per-row number the two scoring functions below return."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
    values = getattr(model, method)(features)
    if method == "predict_proba":
        values = values[:, positive_index]
    return pd.Series(values, index=features.index, dtype="float64")


def score_udf(model: Any, feature_names: Sequence[str], method: str = "predict_proba", prepare: Prepare | None = None,
              positive_index: int = 1, spark: SparkSession | None = None) -> Callable[..., Column]:
    """A pandas UDF that scores rows with the model (see ``model_scores`` for ``method``), as a double.

    Call it with the feature columns in the order of ``feature_names``:
    ``frame.withColumn("p1", score_udf(model, FEATURES)(*FEATURES))``. The columns arrive as a
    pandas DataFrame with those names; ``prepare`` can turn it into exactly what the model was
    trained on (dtypes, categories). The model is shared once and unpacked once per task.
    """
    from pyspark.sql.functions import pandas_udf

    names = list(feature_names)
    if not names:
        raise ValueError("score_udf needs at least one feature name.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
    shared = share(model, spark)

    def score(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        fitted = shared_value(shared)
        for columns in batches:
            if isinstance(columns, pd.Series):  # a single feature column arrives unwrapped
                columns = (columns,)
            features = pd.DataFrame(dict(zip(names, columns, strict=True)))
            if prepare is not None:
                features = prepare(features)
            yield model_scores(fitted, features, method, positive_index)

    return pandas_udf(score, "double")


def score_partitions(frame: DataFrame, model: Any, feature_names: Sequence[str], output_col: str = "p1",
                     method: str = "predict_proba", prepare: Prepare | None = None,
                     positive_index: int = 1) -> DataFrame:
    """``frame`` with ``output_col`` added: the model's score for each row (see ``model_scores`` for
    ``method``), computed batch by batch with ``mapInPandas`` (every column of ``frame`` is kept).

    ``frame``'s columns must convert to Arrow (numbers, strings, dates; not MLlib vectors).
    """
    from pyspark.sql.types import DoubleType, StructField, StructType

    names = list(feature_names)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"score_partitions: columns not in the DataFrame: {', '.join(missing)}.")
    if output_col in frame.columns:
        raise ValueError(f"score_partitions: the DataFrame already has a column {output_col!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
    shared = share(model, frame.sparkSession)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = shared_value(shared)
        for batch in batches:
            features = batch[names]
            if prepare is not None:
                features = prepare(features)
            yield batch.assign(**{output_col: model_scores(fitted, features, method, positive_index).to_numpy()})

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
