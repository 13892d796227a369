"""Checks for Lab 13 · Time-series forecasting (chapter 13) on six US employment series.

The lab's tasks: hold out the last year of one series by date, write the seasonal naive forecast, score an ETS
forecast by MASE against that baseline, write the per-group function that fits one model per series and cut-off
with ``applyInPandas`` in a rolling-origin backtest, and measure how often the truth falls inside the 95%
prediction intervals. The checks rebuild every value that the data decide (the hold-out, the baseline, the
scales, the actual values) and judge the learner's forecasts by their accuracy, so any ETS implementation passes.
"""

from __future__ import annotations

import functools
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from helpers.labs import active_spark, check, require

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Six series of chapter 13's figure, chosen for their different shapes.
SERIES = {
    "CEU7000000001": "Leisure and Hospitality",
    "CEU6562000001": "Health Care and Social Assistance",
    "CEU4245200001": "Retail: General Merchandise Stores",
    "CEU9092161101": "State Government Education",
    "CEU2023800001": "Construction: Specialty Trade Contractors",
    "CEU1000000001": "Mining and Logging",
}
#: The series of tasks 1–3 (chapter 13, section 3).
ONE_SERIES = "CEU7000000001"
START, LAST = "2010-01-01", "2019-09-01"
HORIZON, LEVEL, FOLDS = 12, 0.95, 2
#: The cut-off of tasks 1–3: train up to September 2018, forecast the following 12 months.
CUTOFF = "2018-09-01"
#: The Spark schema (DDL) of task 4's rows, one per series, cut-off and forecast month: what ``applyInPandas`` is
#: told the learner's function returns.
FORECAST_SCHEMA = ("series_id string, cutoff date, month date, h int, actual double, ets double, ets_lower double, "
                   "ets_upper double, snaive double, scale double, converged boolean")
#: Chapter 13's backtest: ETS has a MASE of about 0.48 over all sampled series, the seasonal naive method 0.94; on
#: these six series at two cut-offs ETS scores 0.50 and the seasonal naive method 0.87. Anything that clearly beats
#: the seasonal naive method is below this limit.
MASE_LIMIT = 0.8


def employment(spark: SparkSession) -> DataFrame:
    """The lab's six series (``SERIES``), January 2010 to September 2019, long format: series_id, title, month,
    employed (thousands)."""
    from pyspark.sql import functions as F

    from helpers.datasets import load

    return (load("us_employment", spark, scale="full")
            .where(F.col("series_id").isin(list(SERIES)) & (F.col("month") >= START) & F.col("employed").isNotNull())
            .select("series_id", "title", "month", "employed"))


@functools.cache
def _rows() -> pd.DataFrame:
    return employment(active_spark()).toPandas()


def _series(series_id: str = ONE_SERIES) -> pd.Series:
    from helpers import forecasting

    return forecasting.monthly_series(_rows()[_rows()["series_id"] == series_id])


def _one_split() -> tuple[pd.Series, pd.Series]:
    y = _series()
    return y[:CUTOFF], y[pd.Timestamp(CUTOFF) + pd.DateOffset(months=1):]


def cutoffs() -> list[pd.Timestamp]:
    """The backtest's cut-offs: ``FOLDS`` origins a year apart, the last one 12 months before ``LAST``."""
    from helpers import forecasting

    return forecasting.rolling_origins(LAST, horizon=HORIZON, folds=FOLDS)


def reference_forecast(pdf: pd.DataFrame, horizon: int = HORIZON, level: float = LEVEL) -> pd.DataFrame:
    """The checks' own answer to task 4 for one group (one series at one cut-off): ETS and the seasonal naive
    method trained on the months up to the cut-off, ``horizon`` forecasts lined up with the actual values where
    the group holds them (NaN after its last month), in the columns of ``FORECAST_SCHEMA``."""
    from helpers import forecasting

    cutoff = pd.Timestamp(pdf["cutoff"].iloc[0])
    months = pd.to_datetime(pdf["month"])
    history = forecasting.monthly_series(pdf[months <= cutoff])
    ahead = pd.date_range(cutoff + pd.DateOffset(months=1), periods=horizon, freq=forecasting.FREQ)
    actual = pdf[months > cutoff].set_index(months[months > cutoff])["employed"].reindex(ahead)
    ets, converged = forecasting.ets_forecast(history, horizon, level=level)
    return pd.DataFrame({
        "series_id": pdf["series_id"].iloc[0], "cutoff": cutoff.date(), "month": ahead.date,
        "h": np.arange(1, horizon + 1, dtype="int32"), "actual": actual.to_numpy(dtype=float),
        "ets": ets["mean"].to_numpy(), "ets_lower": ets["lower"].to_numpy(), "ets_upper": ets["upper"].to_numpy(),
        "snaive": forecasting.seasonal_naive(history, horizon),
        "scale": forecasting.seasonal_naive_scale(history), "converged": converged,
    })


@functools.cache
def _reference_backtest() -> pd.DataFrame:
    frames = []
    for cutoff in cutoffs():
        rows = _rows()[pd.to_datetime(_rows()["month"]) <= cutoff + pd.DateOffset(months=HORIZON)]
        for _, group in rows.groupby("series_id"):
            frames.append(reference_forecast(group.assign(cutoff=cutoff.date())))
    return pd.concat(frames).sort_values(["series_id", "cutoff", "h"], ignore_index=True)


@check("Hold-out: the last 12 months of the series, split by date")
def test_holdout(train: pd.Series, test: pd.Series) -> str:
    """``train``: Leisure and Hospitality up to September 2018; ``test``: the 12 months after it."""
    require(isinstance(train, pd.Series) and isinstance(test, pd.Series),
            f"train and test should be pandas Series (slices of `leisure`), not {type(train).__name__} and "
            f"{type(test).__name__}")
    expected_train, expected_test = _one_split()
    require(len(test) == HORIZON, f"test holds {len(test)} months; the task forecasts {HORIZON}")
    require(not set(train.index) & set(test.index), "train and test share months: a month must be in one of them")
    require(train.index.max() < test.index.min(),
            "some training months come after test months: a time series is split by date — everything up to the "
            "cut-off trains, the months after it test — never at random")
    require(test.index.equals(expected_test.index),
            f"test runs from {test.index.min():%Y-%m} to {test.index.max():%Y-%m}; it should be the 12 months after "
            f"the cut-off {CUTOFF[:7]}: {expected_test.index.min():%Y-%m} to {expected_test.index.max():%Y-%m}")
    require(train.index.equals(expected_train.index),
            f"train runs from {train.index.min():%Y-%m} to {train.index.max():%Y-%m}; keep every month from "
            f"{expected_train.index.min():%Y-%m} up to and including {CUTOFF[:7]}")
    require(np.allclose(train.to_numpy(), expected_train.to_numpy()) and np.allclose(test, expected_test),
            "the values differ from the series'; slice `leisure` without changing it")
    return f"train {train.index.min():%Y-%m} – {train.index.max():%Y-%m} ({len(train)} months), test " \
           f"{test.index.min():%Y-%m} – {test.index.max():%Y-%m}"


@check("Seasonal naive: each month as in the same month a year earlier")
def test_seasonal_naive(naive: Any) -> str:
    """``naive``: the 12 seasonal naive forecasts (October 2018 to September 2019) from the training months."""
    from helpers import forecasting

    train, test = _one_split()
    values = np.asarray(naive, dtype=float).ravel()
    require(len(values) == HORIZON, f"naive holds {len(values)} values; forecast each of the {HORIZON} test months")
    expected = forecasting.seasonal_naive(train, HORIZON)
    require(not np.allclose(values, test.to_numpy()),
            "these are the actual test values: a forecast may only use the training months")
    require(not np.allclose(values, train.iloc[-1]),
            f"every value is {train.iloc[-1]:,.0f}, the last observation: that is the naive forecast. The SEASONAL "
            "naive forecast copies the same month of the last observed year (train's last 12 values)")
    require(not np.allclose(values, expected[::-1]), "the values are in reverse order: October 2018 gets October "
                                                     "2017's value, and so on")
    require(np.allclose(values, expected), "the values differ from the last 12 training months, in order — "
                                           "train.to_numpy()[-12:] forecasts October 2018 to September 2019")
    return f"{HORIZON} forecasts, from {values[0]:,.0f} to {values[-1]:,.0f} thousand"


@check("MASE of the ETS forecast against the seasonal naive scale")
def test_mase(ets_mase: float, forecast: Any) -> str:
    """``ets_mase``: the MASE of ``forecast`` (12 values, or a frame whose ``mean`` column holds them: an ETS forecast
    of the test months, by
    ``forecasting.ets_forecast`` or any other ETS implementation) — its mean absolute error on the test months
    divided by the in-sample seasonal naive error of the training months. The forecast must beat that baseline."""
    from helpers import forecasting

    require(isinstance(ets_mase, numbers.Real), f"ets_mase should be a number, not {type(ets_mase).__name__}")
    if isinstance(forecast, pd.DataFrame):
        require("mean" in forecast.columns,
                f"the forecast frame has no column 'mean' (it has {list(forecast.columns)})")
        forecast = forecast["mean"]
    mean = np.asarray(forecast, dtype=float).ravel()
    require(len(mean) == HORIZON, f"the forecast holds {len(mean)} values; give the {HORIZON} forecasts of the test "
                                  "months (the `mean` column of forecasting.ets_forecast's frame)")
    require(np.isfinite(mean).all(), "the forecast holds NaN or infinite values")
    train, test = _one_split()
    actual = test.to_numpy()
    expected = forecasting.mase(actual, mean, forecasting.seasonal_naive_scale(train))
    naive = forecasting.seasonal_naive(train, HORIZON)
    wrong_scale = {
        "the seasonal naive error on the TEST months": float(np.mean(np.abs(actual - naive))),
        "the in-sample error over all months, test included": forecasting.seasonal_naive_scale(_series()),
    }
    for what, scale in wrong_scale.items():
        require(not np.isclose(ets_mase, np.mean(np.abs(actual - mean)) / scale, rtol=1e-3),
                f"{ets_mase:.3f} divides by {what}; MASE's scale is the seasonal naive method's mean absolute error "
                "on the TRAINING months (forecasting.seasonal_naive_scale(train))")
    require(not np.isclose(ets_mase, forecasting.mape(actual, mean), rtol=1e-3),
            f"{ets_mase:.3f} is the MAPE (in %); MASE divides the mean absolute error by the in-sample scale")
    require(np.isclose(ets_mase, expected, rtol=1e-3),
            f"ets_mase is {ets_mase:.3f}, but your forecast's MASE is {expected:.3f}: mean(|test − forecast|) / "
            "forecasting.seasonal_naive_scale(train)")
    require(expected < MASE_LIMIT, f"the forecast's MASE is {expected:.3f}, above {MASE_LIMIT}: an ETS model with a "
                                   "trend and a 12-month season, fitted on train only, does far better")
    return f"MASE {expected:.3f}: the forecast's error is {expected:.0%} of the seasonal naive method's in-sample error"


@check("Backtest: one ETS model per series and cut-off, with applyInPandas")
def test_backtest(backtest: pd.DataFrame) -> str:
    """``backtest``: the pandas result of ``applyInPandas`` with the learner's per-group function over the six series
    at the ``cutoffs()`` (``forecasting.backtest_frame``): one row per series, cut-off and horizon, with the columns
    of ``lab.FORECAST_SCHEMA``. The actual values, the seasonal naive forecasts and the scales must be
    exactly what each group's own months give; the ETS forecasts may come from any implementation, as long as they
    lie inside their intervals and beat the seasonal naive method."""
    from helpers import forecasting

    require(isinstance(backtest, pd.DataFrame), f"backtest should be a pandas DataFrame (`.toPandas()` of the "
                                                f"applyInPandas result), not {type(backtest).__name__}")
    missing = [c for c in ("series_id", "cutoff", "h", "actual", "ets", "ets_lower", "ets_upper", "snaive", "scale")
               if c not in backtest.columns]
    require(not missing, f"backtest lacks the column(s) {missing}: use lab.FORECAST_SCHEMA as the schema")
    reference = _reference_backtest()
    got = backtest.assign(cutoff=pd.to_datetime(backtest["cutoff"]))
    folds = sorted(got["cutoff"].drop_duplicates())
    require(len(folds) == FOLDS and all(a == b for a, b in zip(folds, cutoffs(), strict=True)),
            f"the cut-offs are {[f'{c:%Y-%m}' for c in folds]}; expected {[f'{c:%Y-%m}' for c in cutoffs()]} "
            "(CUTOFFS, given above)")
    models = got.groupby(["series_id", "cutoff"]).ngroups
    require(models == len(SERIES) * FOLDS, f"{models} models; expected {len(SERIES) * FOLDS}: one per series and "
                                           "cut-off — groupBy(\"series_id\", \"cutoff\")")
    require(len(got) == len(reference), f"{len(got)} rows; expected {len(reference)} ({HORIZON} forecasts per "
                                        "model, h = 1 … 12)")
    merged = got.sort_values(["series_id", "cutoff", "h"], ignore_index=True)
    require((merged["h"].to_numpy() == reference["h"].to_numpy()).all(),
            f"each model's rows should be h = 1 … {HORIZON}, the months after its cut-off")
    require(np.allclose(merged["scale"], reference["scale"], rtol=1e-6),
            "the in-sample scales differ from models trained only on the months up to each cut-off: train on "
            "pdf's months <= its cutoff (forecasting.backtest_frame(employment, CUTOFFS, 12) builds the groups)")
    require(np.allclose(merged["actual"], reference["actual"], rtol=1e-9, equal_nan=True),
            "the actual values are not those of the 12 months after each cut-off, in order of h")
    require(np.allclose(merged["snaive"], reference["snaive"], rtol=1e-9),
            "the seasonal naive forecasts are not the last 12 training months of each group")
    require(np.isfinite(merged[["ets", "ets_lower", "ets_upper"]].to_numpy()).all(),
            "some ETS forecasts or interval bounds are NaN")
    require(not np.allclose(merged["ets"], merged["snaive"]),
            "the ETS column holds the seasonal naive forecasts: fit ETS (forecasting.ets_forecast) on each group")
    require(bool(((merged["ets_lower"] <= merged["ets"]) & (merged["ets"] <= merged["ets_upper"])).all()),
            "some ETS forecasts lie outside their own interval: ets_lower and ets_upper are the interval's bounds")
    overall = forecasting.accuracy(merged, {"ETS": "ets", "seasonal naive": "snaive"})["MASE"]
    require(overall["ETS"] < MASE_LIMIT, f"ETS's MASE {overall['ETS']:.3f} is above {MASE_LIMIT}: an ETS(A,A,A) "
                                         "model per group beats the seasonal naive method clearly")
    return (f"{models} models, {len(got)} forecasts; MASE ETS {overall['ETS']:.3f} vs seasonal naive "
            f"{overall['seasonal naive']:.3f} (chapter 13: 0.48 vs 0.94 over more series)")


@check("Coverage of the 95% prediction intervals")
def test_coverage(backtest: pd.DataFrame, coverage: float) -> str:
    """``coverage``: the share (0–1) of the backtest's actual values inside their [ets_lower, ets_upper]."""
    from helpers import forecasting

    require(isinstance(coverage, numbers.Real), f"coverage should be a number, not {type(coverage).__name__}")
    require(isinstance(backtest, pd.DataFrame), "backtest (task 4) should be a pandas DataFrame")
    require(coverage <= 1, f"{coverage} looks like a percentage: give the share as a fraction between 0 and 1")
    expected = forecasting.coverage(backtest["actual"], backtest["ets_lower"], backtest["ets_upper"])
    below = float(np.mean(backtest["actual"] >= backtest["ets_lower"]))
    require(not (np.isclose(coverage, below) and not np.isclose(below, expected)),
            f"{coverage:.3f} counts only the values above the lower bound; a value is inside when it is above "
            "ets_lower AND below ets_upper")
    require(np.isclose(coverage, expected, atol=1e-9),
            f"coverage is {coverage:.3f}, but {expected:.3f} of the actual values lie in [ets_lower, ets_upper]")
    return f"{expected:.1%} of the actual values inside their 95% interval (chapter 13: about 94%)"
