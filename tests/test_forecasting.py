from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

from helpers import forecasting
from helpers.labs.forecasting import FORECAST_SCHEMA, reference_forecast

MONTHS = pd.date_range("2010-01-01", periods=96, freq="MS")
SEASON = 30 * np.sin(2 * np.pi * np.arange(12) / 12) + 10 * np.cos(4 * np.pi * np.arange(12) / 12)


def synthetic(months: pd.DatetimeIndex = MONTHS, slope: float = 2.0, noise: float = 1.0,
              seed: int = 0) -> pd.Series:
    """A level of 1000, a linear trend, a fixed 12-month pattern and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(months))
    values = 1000 + slope * t + SEASON[t % 12] + rng.normal(0, noise, len(months))
    return pd.Series(values, index=months)


def long_frame(series: dict[str, pd.Series]) -> pd.DataFrame:
    parts = [pd.DataFrame({"series_id": key, "month": [m.date() for m in y.index], "employed": y.to_numpy()})
             for key, y in series.items()]
    return pd.concat(parts, ignore_index=True)


# --- metrics on known values ----------------------------------------------------------------------

def test_metrics_on_known_values() -> None:
    actual, forecast = [100.0, 200.0], [110.0, 180.0]
    assert forecasting.mape(actual, forecast) == pytest.approx(10.0)            # (10% + 10%) / 2
    assert forecasting.smape(actual, forecast) == pytest.approx(100 * (20 / 210 + 40 / 380) / 2)
    assert forecasting.rmse(actual, forecast) == pytest.approx(np.sqrt((100 + 400) / 2))
    assert forecasting.mase(actual, forecast, 5.0) == pytest.approx(3.0)        # mean |e| = 15, scale 5
    assert forecasting.mase(actual, forecast, [10.0, 20.0]) == pytest.approx(1.0)
    assert forecasting.coverage([1.0, 2.0, 3.0, 4.0], [0, 0, 0, 5], [1, 1, 9, 9]) == pytest.approx(0.5)


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="MAPE is undefined"):
        forecasting.mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        forecasting.rmse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        forecasting.smape([], [])


def test_accuracy_groups_and_skips_the_future() -> None:
    frame = pd.DataFrame({"series_id": ["a", "a", "b", "b", "b"],
                          "actual": [100.0, 200.0, 10.0, 20.0, np.nan],
                          "good": [110.0, 180.0, 10.0, 20.0, 30.0],
                          "bad": [50.0, 100.0, 5.0, 10.0, 15.0],
                          "scale": [10.0, 10.0, 1.0, 1.0, 1.0]})
    table = forecasting.accuracy(frame, {"good": "good", "bad": "bad"}, by="series_id")
    assert list(table.index) == [("a", "good"), ("a", "bad"), ("b", "good"), ("b", "bad")]
    assert table.loc[("a", "good"), "MAPE"] == pytest.approx(10.0)
    assert table.loc[("b", "good"), "MAPE"] == 0.0  # the row without an actual value is left out
    assert table.loc[("b", "bad"), "MASE"] == pytest.approx(7.5)
    overall = forecasting.accuracy(frame, {"good": "good"})
    assert list(overall.index) == ["good"] and overall.loc["good", "MAPE"] == pytest.approx(5.0)


# --- series, cut-offs, baseline -------------------------------------------------------------------

def test_monthly_series_sets_the_frequency_and_refuses_gaps() -> None:
    frame = long_frame({"x": synthetic()}).sample(frac=1.0, random_state=1)    # order does not matter
    y = forecasting.monthly_series(frame)
    assert y.index.freqstr == "MS" and len(y) == 96 and y.index.is_monotonic_increasing
    with pytest.raises(ValueError, match="consecutive month"):
        forecasting.monthly_series(frame.drop(frame.index[5]))
    with pytest.raises(ValueError, match="repeated"):
        forecasting.monthly_series(pd.concat([frame, frame.head(1)]))


def test_rolling_origins_tile_the_end_of_the_data() -> None:
    cutoffs = forecasting.rolling_origins("2019-09-01", horizon=12, folds=3)
    assert cutoffs == [pd.Timestamp("2016-09-01"), pd.Timestamp("2017-09-01"), pd.Timestamp("2018-09-01")]
    assert forecasting.rolling_origins("2019-09-01", horizon=3, folds=2, step=1) == [
        pd.Timestamp("2019-05-01"), pd.Timestamp("2019-06-01")]
    with pytest.raises(ValueError, match="first day of a month"):
        forecasting.rolling_origins("2019-09-15", horizon=12, folds=3)
    with pytest.raises(ValueError):
        forecasting.rolling_origins("2019-09-01", horizon=0, folds=3)


def test_seasonal_naive_repeats_the_last_season() -> None:
    y = pd.Series(np.arange(24, dtype=float), index=pd.date_range("2010-01-01", periods=24, freq="MS"))
    assert forecasting.seasonal_naive(y, 14).tolist() == [*range(12, 24), 12.0, 13.0]
    assert forecasting.seasonal_naive_scale(y) == 12.0  # y(t) - y(t-12) = 12 everywhere
    with pytest.raises(ValueError):
        forecasting.seasonal_naive(y[:6], 3)


# --- the model ------------------------------------------------------------------------------------

def test_ets_recovers_trend_and_seasonality_without_warnings() -> None:
    y = synthetic()
    train, test = y[:84], y[84:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ValueWarning or any other warning fails the test
        ets, converged = forecasting.ets_forecast(train, 12, level=0.95)
    assert converged
    assert list(ets.columns) == ["mean", "lower", "upper"] and ets.index.equals(test.index)
    assert forecasting.mape(test, ets["mean"]) < 0.3
    # remove the true trend: what is left is the seasonal pattern the model learnt
    t = np.arange(84, 96)
    learnt = ets["mean"].to_numpy() - (1000 + 2.0 * t)
    assert np.corrcoef(learnt, SEASON[t % 12])[0, 1] > 0.99
    assert np.all(ets["lower"] < ets["mean"]) and np.all(ets["mean"] < ets["upper"])
    widths = (ets["upper"] - ets["lower"]).to_numpy()
    assert widths[-1] > widths[0]  # intervals widen with the horizon
    assert forecasting.coverage(test, ets["lower"], ets["upper"]) >= 0.9
    # with a trend, ETS must beat the baseline, which lags a full year of growth behind
    naive = forecasting.seasonal_naive(train, 12)
    assert forecasting.mape(test, ets["mean"]) < forecasting.mape(test, naive) / 3


@pytest.mark.parametrize("initialization", ["heuristic", "estimated"])
def test_ets_is_fitted_in_standard_units_and_answers_in_the_series_units(initialization: str) -> None:
    """An additive model of a shifted, rescaled series is the same model shifted and rescaled: fitting on the
    standardised series (what keeps the optimiser's end point independent of the CPU) changes nothing else."""
    y = synthetic(noise=5.0)[:84]
    fit = forecasting.fit_ets(y, initialization=initialization)
    big = forecasting.fit_ets(y * 1000 + 250_000, initialization=initialization)
    np.testing.assert_allclose(big.forecast(12), fit.forecast(12) * 1000 + 250_000, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(big.mse), np.sqrt(fit.mse) * 1000, rtol=1e-6)  # in the series' units
    assert np.sqrt(fit.mse) == pytest.approx(5.0, rel=0.3)  # the residual sd is the noise's
    names = fit.model.param_names
    np.testing.assert_allclose(big.params[:3], fit.params[:3], atol=1e-6)  # smoothing parameters have no unit
    assert fit.mle_retvals["converged"]
    if initialization == "estimated":
        assert big.params[names.index("initial_level")] == pytest.approx(
            fit.params[names.index("initial_level")] * 1000 + 250_000, rel=1e-6)


def test_to_original_units_shifts_only_the_level_and_rescales_the_states() -> None:
    params = {"smoothing_level": 0.5, "initial_level": 1.0, "initial_trend": 0.1, "initial_seasonal.0": -2.0}
    np.testing.assert_allclose(forecasting.to_original_units(params, centre=100.0, spread=10.0),
                               [0.5, 110.0, 1.0, -20.0])


def test_a_damped_trend_grows_less() -> None:
    train = synthetic()[:84]
    trended, _ = forecasting.ets_forecast(train, 24)
    damped, _ = forecasting.ets_forecast(train, 24, damped=True)
    # the seasonal terms cancel in a 12-month difference: what is left is the growth over the second year
    growth = lambda f: f["mean"].iloc[23] - f["mean"].iloc[11]  # noqa: E731
    assert growth(damped) < growth(trended) and growth(trended) == pytest.approx(24.0, rel=0.2)


def test_reference_forecast_splits_at_the_cutoff() -> None:
    y = synthetic()
    frame = long_frame({"x": y}).assign(cutoff=pd.Timestamp("2016-12-01").date())
    frame = frame[pd.to_datetime(frame["month"]) <= "2017-12-01"]
    out = reference_forecast(frame, horizon=12)
    assert len(out) == 12 and out["h"].tolist() == list(range(1, 13))
    assert out["month"].iloc[0] == pd.Timestamp("2017-01-01").date()
    assert np.allclose(out["actual"], y["2017-01":"2017-12"])
    assert np.allclose(out["snaive"], y["2016-01":"2016-12"])                # last year's months
    assert out["scale"].iloc[0] == pytest.approx(forecasting.seasonal_naive_scale(y[:"2016-12"]))
    future = reference_forecast(frame.assign(cutoff=pd.Timestamp("2017-12-01").date()), horizon=6)
    assert len(future) == 6 and future["actual"].isna().all()  # nothing is known after the last month


def test_backtest_with_apply_in_pandas(spark) -> None:
    """The notebook's pipeline end to end on two synthetic series: a growing one and a flat one."""
    series = {"growing": synthetic(slope=3.0), "flat": synthetic(slope=0.0, seed=1)}
    frame = spark.createDataFrame(long_frame(series))
    cutoffs = forecasting.rolling_origins("2017-12-01", horizon=6, folds=2)
    history = forecasting.backtest_frame(frame, cutoffs, horizon=6)
    last_month = history.where("cutoff = DATE'2017-06-01'").agg({"month": "max"}).first()[0]
    assert last_month == pd.Timestamp("2017-12-01").date()  # the cut-off plus the horizon, nothing later
    result = (history.groupBy("series_id", "cutoff")
              .applyInPandas(functools.partial(reference_forecast, horizon=6), FORECAST_SCHEMA)
              .toPandas())
    assert len(result) == 2 * 2 * 6 and result["actual"].notna().all()
    # a fit that stops at the optimiser's limit is kept and flagged (the flat series' slope sits at 0, on a
    # flat likelihood), not announced by a warning
    assert result["converged"].dtype == bool
    assert result.loc[result["series_id"] == "growing", "converged"].all()
    table = forecasting.accuracy(result, {"ets": "ets", "snaive": "snaive"}, by="series_id")
    assert table.loc[("growing", "ets"), "MASE"] < table.loc[("growing", "snaive"), "MASE"] / 3
    assert table.loc[("flat", "ets"), "MAPE"] < 0.5
