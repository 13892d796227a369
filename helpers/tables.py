"""Spark DataFrames on the driver: ``display()``, as in a Databricks notebook (a readable table of the first
rows), and ``ordered_pandas`` (a whole frame as pandas in a fixed row order, for single-machine libraries).

The SQL-cell convention of the curriculum is::

    display(spark.sql('''
        SELECT origin, count(*) AS flights
        FROM flights
        GROUP BY origin
    '''))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

DEFAULT_ROWS = 10


def display(frame: DataFrame, n: int = DEFAULT_ROWS) -> pd.DataFrame:
    """The first ``n`` rows as a pandas DataFrame, which Jupyter renders as a table.

    Floats are rounded to 4 significant decimals so the table reads well and is stable between runs.
    """
    rows = frame.limit(n).toPandas()
    return rows.round(4)


def ordered_pandas(frame: DataFrame, order_by: Sequence[str],
                   dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` as a pandas DataFrame sorted by ``order_by`` (a stable sort), with ``dtypes`` applied.

    Spark returns rows in partition order, which changes with the number of cores and partitions; some
    learners (bootstrap samples, stochastic solvers, LightGBM's bins) depend on row order, so a model trained
    on this frame is the same on every machine only when the order is fixed here. ``order_by`` should
    identify a row (a key, or every column). The result carries no ``attrs``, so it can be written anywhere."""
    rows = frame.toPandas().sort_values(list(order_by), kind="stable").reset_index(drop=True)
    rows = rows.astype(dict(dtypes)) if dtypes else rows
    # Over Spark Connect, toPandas() leaves the query's metrics in ``attrs`` (PlanMetrics objects); pandas carries
    # them along and ``to_parquet`` then fails to write them as JSON. They describe the query, not the data.
    rows.attrs.clear()
    return rows
