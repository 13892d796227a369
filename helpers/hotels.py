"""The capstone's model (notebook 26): the nightly price of a resort-hotel booking, end to end.

The task: from what is known when a booking is made, predict ``avg_price_per_room`` (the average daily
rate, EUR per night) of a stay at the Algarve resort hotel in ``hotel_rates`` (arrivals July 2016 to
August 2017). Prices are strongly seasonal (about 50 EUR in winter, 200 in August), so the model is
trained on a **window of months** and judged on the months that follow it, as it would be in production:

- ``FIRST_WINDOW``: trained on arrivals 2016-07 to 2017-02, validated on 2017-03 and 2017-04;
- the months after it (2017-05 to 2017-08) arrive later: scored, monitored for drift, and, when the
  monitor asks for it, used to retrain (``SECOND_WINDOW``: trained to 2017-06, validated on 2017-07/08).

Everything generic is reused from other modules: data-quality expectations (``helpers.quality``), the
LightGBM search space and objective (``helpers.tuning``), the approval gate (``helpers.registry``, with a
regression policy). This module holds only what is specific to hotel bookings. The logged model is a
scikit-learn pipeline (no code from this repository inside), so any server or executor can load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from helpers.tracking import registered_name

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo
    from pyspark.sql import Column, DataFrame, SparkSession
    from sklearn.pipeline import Pipeline

    from helpers.registry import GatePolicy

#: The registered model (``<catalog>.<schema>.hotel_rates`` in Unity Catalog).
MODEL_NAME = registered_name("hotel_rates")  # "hotel_rates" on a personal store
CHAMPION_URI = f"models:/{MODEL_NAME}@champion"
DATASET = "hotel_rates"
TARGET = "avg_price_per_room"
KEY = "booking_id"
MONTH = "arrival_month"  # "YYYY-MM": the window column of every table the capstone writes

NUMERIC = ["lead_time", "stays_in_weekend_nights", "stays_in_week_nights", "adults", "children", "babies",
           "is_repeated_guest", "previous_cancellations", "previous_bookings_not_canceled", "booking_changes",
           "days_in_waiting_list", "required_car_parking_spaces", "total_of_special_requests", "near_christmas",
           "near_new_years", "historical_adr", "arrival_weekday"]
#: The numeric features that are counts or flags (long integers in the model's signature); the rest are doubles.
INTEGER = [c for c in NUMERIC if c != "historical_adr"]
CATEGORICAL = ["meal", "country", "market_segment", "distribution_channel", "reserved_room_type",
               "assigned_room_type", "customer_type", "agent"]
FEATURES = NUMERIC + CATEGORICAL
REQUIREMENTS = ("mlflow", "scikit-learn", "lightgbm", "skops", "pandas", "numpy")
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "collections.OrderedDict", "lightgbm.basic.Booster",
                       "lightgbm.sklearn.LGBMRegressor"]


@dataclass(frozen=True)
class Window:
    """Which arrival months a model is trained on and which it is validated on (``"YYYY-MM"``, inclusive)."""

    train_from: str
    train_to: str
    validate_from: str
    validate_to: str

    def describe(self) -> str:
        return (f"trained on {self.train_from}..{self.train_to}, "
                f"validated on {self.validate_from}..{self.validate_to}")


FIRST_WINDOW = Window("2016-07", "2017-02", "2017-03", "2017-04")
SECOND_WINDOW = Window("2016-07", "2017-06", "2017-07", "2017-08")
LATER_MONTHS = ("2017-05", "2017-06", "2017-07", "2017-08")


# --------------------------------------------------------------------------------------------- data


def bookings(spark: SparkSession, scale: str = "default") -> DataFrame:
    """The ``hotel_rates`` rows with the capstone's derived columns: ``booking_id`` (a SHA-256 of the row's
    values and the copy number among identical rows, so it is the same on every machine), ``arrival_month``
    and ``arrival_weekday`` (1 = Sunday)."""
    from pyspark.sql import Window as SparkWindow
    from pyspark.sql import functions as F

    from helpers.datasets import load

    raw = load(DATASET, spark, scale=scale)
    content = F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("∅")) for c in raw.columns])
    digest = F.sha2(content, 256).substr(1, 16)
    # a few bookings are identical in every column: number the copies, so each row keeps its own key
    copy = F.row_number().over(SparkWindow.partitionBy(digest).orderBy(digest))
    return raw.select(
        F.concat(digest, F.lit("-"), copy.cast("string")).alias(KEY),
        F.date_format("arrival_date", "yyyy-MM").alias(MONTH),
        F.dayofweek("arrival_date").cast("long").alias("arrival_weekday"),
        *raw.columns,
    )


def expectations() -> dict[str, Column]:
    """The data-quality rules every booking must meet before it trains or is scored (for
    ``helpers.quality.check``): a plausible price, a stay of at least one night, at least one guest,
    counts that are not negative, and a known arrival date."""
    from pyspark.sql import functions as F

    nights = F.col("stays_in_weekend_nights") + F.col("stays_in_week_nights")
    counts = ["lead_time", "adults", "children", "babies", "booking_changes", "days_in_waiting_list"]
    return {
        "price between 0 and 1,000 EUR": F.col(TARGET).between(0.01, 1000),
        "at least one night": nights >= 1,
        "at least one guest": (F.col("adults") + F.col("children") + F.col("babies")) >= 1,
        "counts not negative": F.least(*[F.col(c) for c in counts]) >= 0,
        "arrival date known": F.col("arrival_date").isNotNull(),
    }


def split_by_quality(frame: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(clean, quarantined): the rows meeting every ``expectations()`` rule, and the others with a
    ``failed`` column naming the rules they break — nothing is dropped silently."""
    from pyspark.sql import functions as F

    rules = expectations()
    failed = F.concat_ws(", ", *[F.when(~F.coalesce(condition, F.lit(False)), F.lit(name))
                                 for name, condition in rules.items()])
    flagged = frame.withColumn("failed", failed)
    return flagged.where(F.col("failed") == "").drop("failed"), flagged.where(F.col("failed") != "")


def months(frame: DataFrame, first: str, last: str) -> DataFrame:
    """The bookings arriving from month ``first`` to month ``last`` (``"YYYY-MM"``, inclusive)."""
    from pyspark.sql import functions as F

    return frame.where(F.col(MONTH).between(first, last))


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """Bookings on the driver in a fixed row order (by ``booking_id``), with the model's dtypes, so a
    model trained on them is the same whatever the partitioning."""
    from helpers.tables import ordered_pandas

    return ordered_pandas(frame, [KEY], _dtypes() | {TARGET: "float64"})


def _dtypes() -> dict[str, str]:
    return ({c: "int64" for c in INTEGER} | {c: "float64" for c in NUMERIC if c not in INTEGER}
            | {c: "object" for c in CATEGORICAL})


def window_frames(clean: DataFrame, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) pandas frames of ``window``'s months."""
    return (to_pandas(months(clean, window.train_from, window.train_to)),
            to_pandas(months(clean, window.validate_from, window.validate_to)))


# --------------------------------------------------------------------------------------------- models


def tuning_data(train: pd.DataFrame, validation: pd.DataFrame) -> Any:
    """``helpers.tuning.LightGBMData`` for these frames: what ``tuning.lightgbm_objective`` needs."""
    from helpers.tuning import LightGBMData

    return LightGBMData.from_frames(train, validation, TARGET, CATEGORICAL, NUMERIC)


def build_pipeline(params: Mapping[str, Any], rounds: int) -> Pipeline:
    """An unfitted scikit-learn pipeline taking the raw ``FEATURES`` columns: categories as integer codes
    (an unseen category becomes missing) split by LightGBM as categories, then an ``LGBMRegressor`` with
    ``params`` (from ``tuning.lightgbm_space``), ``rounds`` trees and the shared fixed settings."""
    from sklearn.pipeline import Pipeline

    from helpers.tuning import category_codes, lightgbm_regressor

    return Pipeline([("prepare", category_codes(NUMERIC, CATEGORICAL)), ("model", lightgbm_regressor(params, rounds))])


def train(params: Mapping[str, Any], rounds: int, frame: pd.DataFrame) -> Pipeline:
    """``build_pipeline(params, rounds)`` fitted on ``frame``. Deterministic: the same rows give the same
    model."""
    return build_pipeline(params, rounds).fit(frame[FEATURES], frame[TARGET],
                                              model__categorical_feature=CATEGORICAL)


def signature() -> ModelSignature:
    """The model's contract: every ``FEATURES`` column by name (counts and flags as longs, ``historical_adr`` as a
    double, categories as strings); one price per booking out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("long" if c in INTEGER else "double", c) for c in NUMERIC]
                    + [ColSpec("string", c) for c in CATEGORICAL])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double")]))


def gate_policy() -> GatePolicy:
    """When a new version may replace the champion: validation RMSE no worse than the champion's, MAE at
    most 0.5 EUR worse, and an RMSE under 40 EUR even for the first version (a month-mean baseline
    scores about 50 on the first window)."""
    from helpers.registry import GatePolicy

    return GatePolicy(metric="rmse", tolerance=0.0, guard="mae", guard_tolerance=0.5, floor=40.0)


def log_model(model: Pipeline, train_frame: pd.DataFrame, validation: pd.DataFrame, window: Window,
              params: Mapping[str, Any], rounds: int, run_name: str) -> ModelInfo:
    """Log a fitted model as one MLflow run of the active experiment: settings, window, validation metrics,
    lineage tags (code version, dataset checksum), the training data, and the model (scikit-learn flavour,
    skops format, named-column signature, input example, pinned requirements). Returns the ``ModelInfo``."""
    import mlflow

    from helpers import registry
    from helpers.tracking import log_dataset, pinned_requirements

    with mlflow.start_run(run_name=run_name):
        mlflow.log_params({**dict(params), "rounds": rounds, "train_from": window.train_from,
                           "train_to": window.train_to, "validate_from": window.validate_from,
                           "validate_to": window.validate_to, "training_rows": len(train_frame)})
        mlflow.set_tags({**registry.lineage_tags([DATASET]), "model_name": MODEL_NAME, "window": window.describe()})
        log_dataset(train_frame[FEATURES + [TARGET]], name="hotel-bookings-train", targets=TARGET)
        predictions = model.predict(validation[FEATURES])
        mlflow.log_metrics(registry.regression_metrics(validation[TARGET].to_numpy(), predictions))
        return mlflow.sklearn.log_model(
            model, name="model", signature=signature(), input_example=train_frame[FEATURES].head(5),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=pinned_requirements(*REQUIREMENTS))


def month_mean_baseline(train_frame: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """The yardstick every model must beat: the training mean price of the same calendar month (the
    overall mean for a month the training rows lack)."""
    calendar = train_frame[MONTH].str[5:]
    means = train_frame.groupby(calendar)[TARGET].mean()
    return frame[MONTH].str[5:].map(means).fillna(train_frame[TARGET].mean()).to_numpy()


def evaluation_table(model: Pipeline, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """RMSE, MAE and R² of ``model`` on each named frame, rounded for display."""
    from helpers.registry import regression_metrics

    rows = {name: regression_metrics(frame[TARGET].to_numpy(), model.predict(frame[FEATURES]))
            for name, frame in frames.items()}
    return pd.DataFrame(rows).T.round(3)


def features_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s ``FEATURES`` columns with the signature's dtypes (what a client sends to the model)."""
    return frame[FEATURES].astype(_dtypes())


__all__ = [
    "MODEL_NAME", "CHAMPION_URI", "TARGET", "KEY", "MONTH", "NUMERIC", "INTEGER", "CATEGORICAL", "FEATURES", "Window",
    "FIRST_WINDOW", "SECOND_WINDOW", "LATER_MONTHS", "bookings", "expectations", "split_by_quality", "months",
    "to_pandas", "window_frames", "tuning_data", "build_pipeline", "train", "signature", "gate_policy",
    "log_model", "month_mean_baseline", "evaluation_table", "features_frame",
]
