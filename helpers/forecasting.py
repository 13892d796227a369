"""Many time series, one model each: the ETS fit and the seasonal naive baseline that a per-series function
calls inside ``applyInPandas``, the rolling-origin backtest frame and the forecast-accuracy metrics.

The pattern (notebook 13) is Spark's "many models": every group of rows (one series, one cut-off
date) goes to a Python worker as a pandas DataFrame, gets its own model, and comes back as rows of
forecasts. Chapter 13 and its lab write that per-group function in the notebook, with these pieces::

    cutoffs = rolling_origins("2019-09-01", horizon=12, folds=3)          # three forecast origins
    history = backtest_frame(employment, cutoffs, horizon=12)           # each series once per origin
    forecasts = (history.groupBy("series_id", "cutoff")
                 .applyInPandas(forecast_series, schema))               # forecast_series: the notebook's
    accuracy(forecasts.toPandas(), {"ETS": "ets", "seasonal naive": "snaive"}, by="series_id")

The model is ETS(A,A,A) from statsmodels (additive error, trend and seasonality: Holt-Winters as a
state-space model, so it has prediction intervals); the baseline it must beat is the seasonal naive
forecast (the value of the same month one year earlier).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from statsmodels.tsa.exponential_smoothing.ets import ETSResults

PERIOD = 12  # monthly data: the seasonal pattern repeats every 12 observations
FREQ = "MS"  # pandas' "month start" frequency: the data's months are dated on their first day
FORECAST_COLUMNS = ("h", "actual", "ets", "ets_lower", "ets_upper", "snaive", "scale", "converged")


# --- series and cut-offs --------------------------------------------------------------------------

def monthly_series(frame: pd.DataFrame, time: str = "month", value: str = "employed") -> pd.Series:
    """``frame``'s ``value`` column as a float series on a monthly ``DatetimeIndex`` with frequency "MS".

    statsmodels reads the frequency from the index (and warns when it cannot); an explicit frequency
    also proves that no month is missing: a gap raises ``ValueError`` instead of becoming a hole the
    model would fill silently.
    """
    index = pd.DatetimeIndex(pd.to_datetime(frame[time]), name=time)
    series = pd.Series(frame[value].to_numpy(dtype=float), index=index, name=value).sort_index()
    if series.index.has_duplicates:
        raise ValueError(f"{time} has repeated months; a series needs one value per month.")
    if len(series) == 0:
        return series.asfreq(FREQ)
    expected = pd.date_range(series.index[0], series.index[-1], freq=FREQ)
    if len(expected) != len(series) or not expected.equals(series.index):
        raise ValueError(f"{value} is not one value per consecutive month (first-of-month dates) from "
                         f"{series.index[0]:%Y-%m} to {series.index[-1]:%Y-%m}.")
    return series.asfreq(FREQ)


def rolling_origins(last: str | date | pd.Timestamp, horizon: int, folds: int, step: int | None = None
                    ) -> list[pd.Timestamp]:
    """Cut-off dates for a rolling-origin backtest (time-series cross-validation), oldest first.

    Each cut-off is the last month a model may see; it forecasts the ``horizon`` months after it. The
    newest fold's test window ends at ``last`` (the last observed month) and each earlier cut-off is
    ``step`` months earlier (default: ``horizon``, so the test windows tile the end of the data
    without overlapping).
    """
    if horizon < 1 or folds < 1:
        raise ValueError("horizon and folds must be at least 1.")
    step = horizon if step is None else step
    if step < 1:
        raise ValueError("step must be at least 1.")
    end = pd.Timestamp(last)
    if end != end.to_period("M").to_timestamp():
        raise ValueError(f"last must be the first day of a month, not {end.date()}.")
    return [end - pd.DateOffset(months=horizon + step * (folds - 1 - k)) for k in range(folds)]


def backtest_frame(frame: DataFrame, cutoffs: Sequence[str | date | pd.Timestamp], horizon: int,
                   time: str = "month") -> DataFrame:
    """``frame`` repeated once per cut-off, each copy cut at ``cutoff + horizon`` months.

    Adds a ``cutoff`` (date) column; grouping the result by (series, cutoff) gives every model its
    training months (``time <= cutoff``) and the ``horizon`` months it will be scored on, and nothing
    later — the future stays out of each model by construction.
    """
    from pyspark.sql import functions as F

    spark = frame.sparkSession
    origins = spark.createDataFrame([(pd.Timestamp(c).date(),) for c in cutoffs], "cutoff date")
    return (frame.crossJoin(F.broadcast(origins))
            .where(F.col(time) <= F.add_months(F.col("cutoff"), horizon)))


# --- the two forecasting methods ------------------------------------------------------------------

def seasonal_naive(y: pd.Series, horizon: int, period: int = PERIOD) -> np.ndarray:
    """Each future month gets the value of the same month in the last observed year:
    ŷ(T+h) = y(T+h−m(k+1)) with k the number of whole seasons in h−1."""
    if len(y) < period:
        raise ValueError(f"a seasonal naive forecast needs at least {period} observations, got {len(y)}.")
    last_season = np.asarray(y, dtype=float)[-period:]
    return last_season[np.arange(horizon) % period]


def seasonal_naive_scale(y: pd.Series, period: int = PERIOD) -> float:
    """Mean absolute error of the in-sample seasonal naive forecast, mean |y(t) − y(t−m)|: the
    denominator of MASE (Hyndman & Koehler 2006; fpp3 §5.8)."""
    values = np.asarray(y, dtype=float)
    if len(values) <= period:
        raise ValueError(f"the MASE scale needs more than {period} observations, got {len(values)}.")
    return float(np.mean(np.abs(values[period:] - values[:-period])))


def fit_ets(y: pd.Series, period: int = PERIOD, damped: bool = False,
            initialization: str = "heuristic") -> ETSResults:
    """ETS(A,A,A) — additive error, additive trend (damped if asked), additive seasonality — by
    maximum likelihood.

    ``initialization="heuristic"`` takes the starting level, slope and seasonal states from a
    decomposition of the first years (Hyndman et al. 2008, §2.6.1) and estimates only the smoothing
    parameters; ``"estimated"`` estimates the starting states too (level, slope, 12 seasonal terms),
    which is ten times slower or more, for nearly the same forecasts. ``y`` needs a frequency (see
    ``monthly_series``).

    The likelihood is maximised on the **standardised** series, ``(y - mean) / sd``, and the parameters found
    are mapped back to ``y``'s units (``to_original_units``): an additive ETS model fitted to a shifted and
    rescaled series is the same model, shifted and rescaled. On raw values in the hundred thousands the
    optimiser works on a badly scaled surface, and its end point then depends on the last bits of the
    arithmetic — which differ between CPUs (measured here: the forecasts of one series moved by 0.4% between
    two OpenBLAS kernels of the same machine); standardised, the fits agree to the printed digits. The
    result is ``y``'s model (forecasts, intervals and ``mse`` in ``y``'s units), with the optimiser's
    ``mle_retvals`` from the standardised fit.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    def model_of(series: pd.Series) -> ETSModel:
        return ETSModel(series, error="add", trend="add", damped_trend=damped, seasonal="add",
                        seasonal_periods=period, initialization_method=initialization)

    centre, spread = float(y.mean()), float(y.std())
    spread = spread if np.isfinite(spread) and spread > 0 else 1.0
    with warnings.catch_warnings():
        # Across hundreds of fits the optimiser occasionally stops at its iteration limit on a flat
        # likelihood (a slope of exactly 0, say). The fit is still usable and the flag is not lost:
        # results.mle_retvals["converged"] records it, and the per-series function returns it as the "converged"
        # column for the notebook to count.
        warnings.filterwarnings("ignore", message="Maximum Likelihood optimization failed to converge",
                                category=ConvergenceWarning)
        standardised = model_of((y - centre) / spread).fit(disp=False)
    model = model_of(y)
    results = model.smooth(to_original_units(dict(zip(model.param_names, standardised.params, strict=True)),
                                             centre, spread))
    results.mle_retvals = standardised.mle_retvals
    return results


def to_original_units(params: dict[str, float], centre: float, spread: float) -> np.ndarray:
    """ETS parameters fitted to ``(y - centre) / spread`` as the parameters of the same model for ``y``: the
    starting level is rescaled and shifted, the starting slope and seasonal terms rescaled, and the smoothing and
    damping parameters (which have no unit) kept."""
    def convert(name: str, value: float) -> float:
        if name == "initial_level":
            return value * spread + centre
        if name.startswith(("initial_trend", "initial_seasonal")):
            return value * spread
        return value

    return np.array([convert(name, value) for name, value in params.items()])


def ets_forecast(y: pd.Series, horizon: int, level: float = 0.95, period: int = PERIOD,
                 damped: bool = False) -> tuple[pd.DataFrame, bool]:
    """Fit ETS(A,A,A) to ``y`` and forecast ``horizon`` months with a ``level`` prediction interval.

    Returns a frame indexed by the forecast months with columns ``mean``, ``lower``, ``upper``, and
    whether the optimiser converged.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}.")
    results = fit_ets(y, period=period, damped=damped)
    frame = results.get_prediction(start=len(y), end=len(y) + horizon - 1).summary_frame(alpha=1 - level)
    frame = frame.rename(columns={"pi_lower": "lower", "pi_upper": "upper"})[["mean", "lower", "upper"]]
    return frame, bool(results.mle_retvals.get("converged", True))


# --- accuracy -------------------------------------------------------------------------------------

def _pair(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    if a.shape != f.shape or a.size == 0:
        raise ValueError("actual and forecast must be non-empty and of the same length.")
    return a, f


def mape(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error, in percent: 100 · mean |y − ŷ| / |y|. Undefined when y = 0."""
    a, f = _pair(actual, forecast)
    if np.any(a == 0):
        raise ValueError("MAPE is undefined when an actual value is 0; use sMAPE or MASE.")
    return float(100 * np.mean(np.abs(a - f) / np.abs(a)))


def smape(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray) -> float:
    """Symmetric MAPE as in the M3/M4 competitions, in percent (0–200): 100 · mean 2|y − ŷ| / (|y| + |ŷ|)."""
    a, f = _pair(actual, forecast)
    return float(100 * np.mean(2 * np.abs(a - f) / (np.abs(a) + np.abs(f))))


def rmse(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray) -> float:
    """Root mean squared error, in the data's units."""
    a, f = _pair(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def mase(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray,
         scale: float | Sequence[float] | np.ndarray) -> float:
    """Mean absolute scaled error: mean |y − ŷ| / scale, with scale the in-sample seasonal naive MAE
    (``seasonal_naive_scale``; one per row is allowed). Below 1: better than the seasonal naive method
    was on the training data."""
    a, f = _pair(actual, forecast)
    return float(np.mean(np.abs(a - f) / np.asarray(scale, dtype=float)))


def coverage(actual: Sequence[float] | np.ndarray, lower: Sequence[float] | np.ndarray,
             upper: Sequence[float] | np.ndarray) -> float:
    """Share of actual values inside their prediction interval [lower, upper]."""
    a, lo = _pair(actual, lower)
    _, hi = _pair(actual, upper)
    return float(np.mean((a >= lo) & (a <= hi)))


def accuracy(frame: pd.DataFrame, forecasts: Mapping[str, str], by: str | Sequence[str] | None = None,
             actual: str = "actual", scale: str = "scale") -> pd.DataFrame:
    """MAPE, sMAPE, RMSE and MASE of each forecast column, per group of ``by`` (or overall).

    ``forecasts`` maps a model's display name to its column. Rows without an actual value (forecasts
    of the future) are left out. The result has one row per group and model (index: ``by`` + "model").
    """
    scored = frame.dropna(subset=[actual])
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    groups = scored.groupby(keys, sort=True) if keys else [((), scored)]
    rows = []
    for group, part in groups:
        labels = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        for name, column in forecasts.items():
            rows.append({**labels, "model": name,
                         "MAPE": mape(part[actual], part[column]), "sMAPE": smape(part[actual], part[column]),
                         "RMSE": rmse(part[actual], part[column]),
                         "MASE": mase(part[actual], part[column], part[scale])})
    return pd.DataFrame(rows).set_index([*keys, "model"])
