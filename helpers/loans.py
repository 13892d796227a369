"""The Lending Club task shared by the classification chapters (05, 07, 08, 17).

The question: from what is known when a loan is granted, will it go **bad** (charged off, defaulted or
21–120 days late)? ``label`` is 1.0 for a bad loan, the positive class, and 0.0 for a good one.

The data has no loan id, so every split keys a loan on its whole row (:data:`KEY`; no two loans are
identical). :func:`split` gives the sets the chapters share: the same 20% of loans are the test set in
every notebook, and 20% of the rest are the validation set (for thresholds, early stopping, AutoML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

DATASET = "lending_club"
LABEL = "label"
#: The raw outcome column ("good" / "bad") and the value that counts as the positive class.
OUTCOME = "class"
POSITIVE = "bad"
#: Text columns: loan term, Lending Club's sub-grade, state, income verification, employment length.
CATEGORICAL = ("term", "sub_grade", "addr_state", "verification_status", "emp_length")
#: Every other column is numeric (amounts, rates, counts), in the dataset's column order.
NUMERIC = ("funded_amnt", "int_rate", "annual_inc", "delinq_2yrs", "inq_last_6mths", "revol_util",
           "acc_now_delinq", "open_il_6m", "open_il_12m", "open_il_24m", "total_bal_il", "all_util", "inq_fi",
           "inq_last_12m", "delinq_amnt", "num_il_tl", "total_il_high_credit_limit")
FEATURES = CATEGORICAL + NUMERIC
#: The columns that identify a loan for ``hash_split`` (the whole row).
KEY = FEATURES
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 7


def with_label(loans: DataFrame) -> DataFrame:
    """Adds ``label``: 1.0 for a bad loan, 0.0 for a good one."""
    from pyspark.sql import functions as F

    return loans.withColumn(LABEL, (F.col(OUTCOME) == POSITIVE).cast("double"))


def load(spark: SparkSession, scale: str = "default") -> DataFrame:
    """The loans as a Spark DataFrame, with ``label``."""
    from helpers.datasets import load as load_dataset

    return with_label(load_dataset(DATASET, spark, scale=scale))


def split(loans: DataFrame, validation: bool = True) -> tuple[DataFrame, ...]:
    """``(train, validation, test)`` — or ``(train, test)`` with ``validation=False`` — the sets every
    chapter uses. The test set is the same with or without a validation set; with one, ``train`` is
    what is left after both are set aside."""
    from helpers.splits import hash_split

    train, test = hash_split(loans, test_fraction=TEST_FRACTION, keys=list(KEY))
    if not validation:
        return train, test
    train, valid = hash_split(train, test_fraction=VALIDATION_FRACTION, keys=list(KEY), seed=VALIDATION_SEED)
    return train, valid, test


def to_pandas(loans: DataFrame | pd.DataFrame) -> pd.DataFrame:
    """The features and ``label`` as a pandas frame for single-machine libraries (scikit-learn, LightGBM,
    FLAML): numeric columns as float64, text columns as strings, ``label`` as int (1 = bad), rows in a
    stable order (sorted by every feature) so that results do not depend on Spark's partitioning."""
    import pandas as pd

    frame = loans if isinstance(loans, pd.DataFrame) else loans.select(*FEATURES, LABEL).toPandas()
    if LABEL not in frame.columns:
        frame = frame.assign(**{LABEL: (frame[OUTCOME] == POSITIVE).astype(int)})
    frame = frame[list(FEATURES) + [LABEL]].astype({c: "float64" for c in NUMERIC} | {LABEL: "int64"})
    return frame.sort_values(list(FEATURES), kind="stable").reset_index(drop=True)
