"""The Ames house-price features, as notebook 03 builds them, for every chapter that models prices.

Rows: the sales of houses up to 4,000 sq ft of living area, as the dataset's author recommends (notebook 03 shows
the five it leaves out). Target: ``log_price`` = log10(sale price). Features: the numeric columns as they are, and a
dozen categorical columns one-hot encoded (categories unseen in training get their own slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.ml import Estimator, Transformer
    from pyspark.sql import DataFrame

TARGET = "log_price"
#: De Cock (2011), who compiled the data, recommends removing every house above 4,000 sq ft of above-ground living
#: area before modelling: five sales, three of them partial sales of unfinished houses priced far below their size.
MAX_LIVING_AREA = 4000
#: Categorical columns with a plausible link to price (notebook 03 explains the choice).
CATEGORICAL = ("ms_zoning", "neighborhood", "bldg_type", "house_style", "exterior_1st", "foundation",
               "bsmt_exposure", "heating_qc", "central_air", "garage_type", "garage_finish", "sale_condition",
               "functional")
#: The predictors of Tidy Modeling with R's Ames model: a small, readable feature set.
COMPACT_CATEGORICAL = ("neighborhood", "bldg_type")
COMPACT_NUMERIC = ("gr_liv_area", "year_built", "latitude", "longitude")


def drop_giant_houses(houses: DataFrame) -> DataFrame:
    """The sales of houses with at most ``MAX_LIVING_AREA`` sq ft of living area (``gr_liv_area``)."""
    from pyspark.sql import functions as F

    return houses.where(F.col("gr_liv_area") <= MAX_LIVING_AREA)


def with_target(houses: DataFrame) -> DataFrame:
    """Adds ``log_price`` (log10 of ``sale_price``)."""
    from pyspark.sql import functions as F

    return houses.withColumn(TARGET, F.log10("sale_price"))


def numeric_columns(houses: DataFrame) -> list[str]:
    """Every numeric column except the target and the raw price."""
    return [c for c, kind in houses.dtypes if kind in ("bigint", "int", "double") and c not in ("sale_price", TARGET)]


def feature_stages(categorical: Sequence[str], numeric: Sequence[str],
                   output_col: str = "features") -> list[Estimator | Transformer]:
    """Index and one-hot encode ``categorical``, then assemble them with ``numeric`` into ``output_col``."""
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    indexed = [f"{c}_index" for c in categorical]
    encoded = [f"{c}_onehot" for c in categorical]
    return [
        StringIndexer(inputCols=list(categorical), outputCols=indexed, handleInvalid="keep",
                      stringOrderType="alphabetAsc"),
        OneHotEncoder(inputCols=indexed, outputCols=encoded),
        VectorAssembler(inputCols=[*numeric, *encoded], outputCol=output_col),
    ]
