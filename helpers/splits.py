"""Train/test splits that give the same rows on every machine.

``DataFrame.randomSplit(seed=...)`` is reproducible only while the data sits in the same partitions:
after a shuffle, or on a machine with another number of cores, the same seed picks other rows.
``hash_split`` decides each row from a hash of its key columns instead, so the split depends on the
data alone — the property a shared, reviewed experiment needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_BUCKETS = 10_000


def hash_split(
    frame: DataFrame, test_fraction: float, keys: Sequence[str], seed: int = 42
) -> tuple[DataFrame, DataFrame]:
    """(train, test): a row goes to test when the hash of its ``keys`` (and ``seed``) falls in the
    lowest ``test_fraction`` of buckets. Rows with equal keys always land on the same side."""
    from pyspark.sql import functions as F

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), not {test_fraction!r}.")
    missing = [k for k in keys if k not in frame.columns]
    if not keys or missing:
        raise ValueError(
            f"hash_split needs key columns that exist in the DataFrame; missing: {missing or 'none given'}."
        )
    bucket = F.pmod(F.xxhash64(F.lit(seed), *[F.col(k) for k in keys]), F.lit(_BUCKETS))
    is_test = bucket < F.lit(int(test_fraction * _BUCKETS))
    return frame.where(~is_test), frame.where(is_test)
