"""helpers.loans: the Lending Club task the classification chapters share."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import loans
from helpers.datasets import dataset
from helpers.splits import hash_split


def test_the_columns_are_the_datasets_columns() -> None:
    names = dataset(loans.DATASET).column_names
    types = dict(dataset(loans.DATASET).columns)
    assert sorted([*loans.FEATURES, loans.OUTCOME]) == sorted(names)
    # NUMERIC is "every other column", in the dataset's order, as notebooks 05-08 define it
    assert list(loans.NUMERIC) == [c for c in names if c not in (*loans.CATEGORICAL, loans.OUTCOME)]
    assert all(types[c] == "string" for c in loans.CATEGORICAL)
    assert all(types[c] in ("int64", "double") for c in loans.NUMERIC)
    assert loans.KEY == loans.CATEGORICAL + loans.NUMERIC


def test_with_label_marks_bad_loans_as_one(spark) -> None:
    frame = spark.createDataFrame([("good",), ("bad",)], [loans.OUTCOME])
    assert [row.label for row in loans.with_label(frame).collect()] == [0.0, 1.0]


def test_split_gives_the_chapters_sets(spark) -> None:
    rows = loans.load(spark)
    train, valid, test = loans.split(rows)
    key = list(loans.CATEGORICAL) + list(loans.NUMERIC)  # LOAN_KEY in notebooks 05, 07 and 08
    chapter_train, chapter_test = hash_split(rows, test_fraction=0.2, keys=key)
    chapter_fit, chapter_valid = hash_split(chapter_train, test_fraction=0.2, keys=key, seed=7)
    for ours, theirs in ((train, chapter_fit), (valid, chapter_valid), (test, chapter_test)):
        assert ours.count() == theirs.count() and ours.exceptAll(theirs).count() == 0
    assert train.count() + valid.count() + test.count() == dataset(loans.DATASET).rows
    without_validation = loans.split(rows, validation=False)
    assert len(without_validation) == 2 and without_validation[1].exceptAll(test).count() == 0
    assert 0.04 < test.agg({"label": "avg"}).first()[0] < 0.07


def test_to_pandas_types_and_orders_the_rows() -> None:
    raw = pd.read_parquet(dataset(loans.DATASET).path).head(200)
    frame = loans.to_pandas(raw)
    assert list(frame.columns) == [*loans.FEATURES, loans.LABEL]
    assert all(frame[c].dtype == "float64" for c in loans.NUMERIC)
    assert frame[loans.LABEL].dtype == "int64"
    assert frame[loans.LABEL].sum() == (raw[loans.OUTCOME] == loans.POSITIVE).sum()
    # the order depends on the rows, not on the order they came in
    pd.testing.assert_frame_equal(frame, loans.to_pandas(raw.iloc[::-1]))


def test_to_pandas_needs_every_feature() -> None:
    raw = pd.read_parquet(dataset(loans.DATASET).path).head(5)
    with pytest.raises(KeyError):
        loans.to_pandas(raw.drop(columns="term"))
