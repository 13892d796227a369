"""Single-machine models at Spark scale: score a fitted scikit-learn-style model (scikit-learn,
LightGBM, XGBoost's sklearn API) over a Spark DataFrame.

The pattern is the one Databricks recommends for "train on one machine, apply everywhere": fit on
the driver from a pandas sample, ship the fitted model to the executors **once** (a broadcast
variable on a classic session; on Spark Connect, where there is no ``SparkContext``, the model
travels inside the function, which Spark also sends once per query), and apply it to Arrow batches
of rows with a pandas UDF or ``mapInPandas``.

    scored = score_partitions(frame, model, FEATURES)          # whole batches, all columns kept
    scored = score_partitions(frame, model, FEATURES, method="predict")   # any per-row score the model has

Chapters 08 and 09 write these steps out in their own cells (a broadcast, ``mapInPandas``, a pandas UDF, one
Spark task per trial); the chapters after them, which teach something else, call this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

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
