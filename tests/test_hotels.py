"""helpers.hotels (the capstone's model): derived columns, quality rules, windows, the pipeline, the contract,
and logging + the regression gate on a throw-away store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import hotels, registry
from tests.test_registry import registry_store  # noqa: F401  (a fixture, used by name)

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(scope="module")
def clean_and_quarantined(spark):
    frame = hotels.bookings(spark)
    return frame, *hotels.split_by_quality(frame)


def test_booking_ids_are_unique_and_stable(spark, clean_and_quarantined) -> None:
    frame, _, _ = clean_and_quarantined
    ids = frame.select(hotels.KEY, hotels.MONTH).toPandas()
    assert ids[hotels.KEY].is_unique
    assert ids[hotels.KEY].tolist() == hotels.bookings(spark).select(hotels.KEY).toPandas()[hotels.KEY].tolist()
    assert ids[hotels.MONTH].min() == "2016-07" and ids[hotels.MONTH].max() == "2017-08"


def test_quality_split_keeps_every_row_and_names_the_broken_rules(spark, clean_and_quarantined) -> None:
    frame, clean, quarantined = clean_and_quarantined
    assert clean.count() + quarantined.count() == frame.count()
    bad = frame.limit(2).toPandas()
    bad.loc[0, hotels.TARGET] = -5.0
    bad.loc[1, ["stays_in_weekend_nights", "stays_in_week_nights"]] = 0
    bad.loc[1, ["adults", "children", "babies"]] = 0
    good, flagged = hotels.split_by_quality(spark.createDataFrame(bad, schema=frame.schema))
    reasons = flagged.orderBy(hotels.KEY).toPandas().set_index(hotels.KEY)["failed"]
    assert good.count() == 0
    assert reasons[bad.loc[0, hotels.KEY]] == "price between 0 and 1,000 EUR"
    assert reasons[bad.loc[1, hotels.KEY]] == "at least one night, at least one guest"


def test_windows_train_a_deterministic_model_that_beats_the_month_mean(clean_and_quarantined) -> None:
    _, clean, _ = clean_and_quarantined
    train, validation = hotels.window_frames(clean, hotels.FIRST_WINDOW)
    assert train[hotels.MONTH].max() == "2017-02" and validation[hotels.MONTH].min() == "2017-03"
    params = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20, "colsample_bytree": 0.8,
              "reg_lambda": 1.0}
    first, second = (hotels.train(params, 60, train) for _ in range(2))
    predictions = first.predict(validation[hotels.FEATURES])
    assert np.array_equal(predictions, second.predict(validation[hotels.FEATURES]))
    model_rmse = registry.regression_metrics(validation[hotels.TARGET], predictions)["rmse"]
    baseline = hotels.month_mean_baseline(train, validation)
    assert model_rmse < registry.regression_metrics(validation[hotels.TARGET], baseline)["rmse"]


def test_month_mean_baseline_falls_back_to_the_overall_mean() -> None:
    train = pd.DataFrame({hotels.MONTH: ["2016-07", "2016-07", "2016-08"], hotels.TARGET: [100.0, 200.0, 60.0]})
    later = pd.DataFrame({hotels.MONTH: ["2017-07", "2017-09"]})
    assert hotels.month_mean_baseline(train, later).tolist() == [150.0, 120.0]


def test_logged_model_is_gated_by_rmse(registry_store, clean_and_quarantined) -> None:  # noqa: F811
    _, clean, _ = clean_and_quarantined
    train, validation = hotels.window_frames(clean, hotels.FIRST_WINDOW)
    params = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20, "colsample_bytree": 0.8,
              "reg_lambda": 1.0}
    weak = hotels.train(params, 3, train)  # three trees: much worse than eighty
    strong = hotels.train(params, 80, train)
    versions = [registry.register(hotels.log_model(m, train, validation, hotels.FIRST_WINDOW, params, n,
                                                   f"unit {n}"), hotels.MODEL_NAME) for m, n in ((strong, 80),
                                                                                                 (weak, 3))]
    first = registry.gate(hotels.MODEL_NAME, versions[0].version, validation, label=hotels.TARGET,
                          policy=hotels.gate_policy(), log_run=False)
    assert first.promoted and "first version with a rmse" in first.reason
    second = registry.gate(hotels.MODEL_NAME, versions[1].version, validation, label=hotels.TARGET,
                           policy=hotels.gate_policy(), log_run=False)
    assert not second.promoted and "is worse than champion" in second.reason, second.reason
    assert registry.champion(hotels.MODEL_NAME).version == versions[0].version
    import mlflow

    loaded = mlflow.pyfunc.load_model(hotels.CHAMPION_URI)
    served = np.asarray(loaded.predict(hotels.features_frame(validation.head(5)))).ravel()
    assert np.allclose(served, strong.predict(validation[hotels.FEATURES].head(5)))
