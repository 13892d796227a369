"""Data-quality checks on Spark DataFrames, in the spirit of Databricks' pipeline expectations.

An expectation is a name and a Spark boolean ``Column`` that every good row satisfies. ``check``
counts the rows that break each one in a single pass over the data and returns a report table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame


def null_fractions(frame: DataFrame) -> pd.Series:
    """The share of null values in every column, computed in one Spark job."""
    import pandas as pd
    from pyspark.sql import functions as F

    total = F.count(F.lit(1))
    row = frame.select(
        [(F.sum(F.col(c).isNull().cast("long")) / total).alias(c) for c in frame.columns]
    ).first()
    return pd.Series({c: float(row[c] or 0.0) for c in frame.columns}, name="null_fraction").round(4)


def check(frame: DataFrame, expectations: Mapping[str, Column], max_failing_share: float = 0.0) -> pd.DataFrame:
    """One row per expectation: rows checked, rows failing, failing share and pass/FAIL.

    A row fails an expectation when the condition is false *or null* (a null can't be vouched for).
    ``max_failing_share`` is the tolerance: 0.0 means every row must pass.
    """
    import pandas as pd
    from pyspark.sql import functions as F

    if not expectations:
        raise ValueError("check() needs at least one expectation: a name mapped to a boolean Column.")
    counts = frame.select(
        F.count(F.lit(1)).alias("__rows"),
        *[F.sum(F.when(condition, 0).otherwise(1)).alias(name) for name, condition in expectations.items()],
    ).first()
    rows = int(counts["__rows"])
    report = pd.DataFrame(
        {
            "expectation": list(expectations),
            "rows": rows,
            "failing": [int(counts[name] or 0) for name in expectations],
        }
    )
    report["failing_share"] = (report["failing"] / max(rows, 1)).round(4)
    report["status"] = ["pass" if share <= max_failing_share else "FAIL" for share in report["failing_share"]]
    return report
