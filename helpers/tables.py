"""``display()`` for Spark DataFrames, as in a Databricks notebook: a readable table of the first rows.

The SQL-cell convention of the curriculum is::

    display(spark.sql('''
        SELECT origin, count(*) AS flights
        FROM flights
        GROUP BY origin
    '''))
"""

from __future__ import annotations

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
