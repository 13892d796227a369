from __future__ import annotations

import math

from pyspark.ml import Pipeline

from helpers import houses, load


def test_feature_stages_build_the_expected_vector(spark) -> None:
    frame = houses.with_target(load("ames", spark))
    first = frame.select("sale_price", "log_price").first()
    assert math.isclose(first.log_price, math.log10(first.sale_price))
    numeric = houses.numeric_columns(frame)
    assert "sale_price" not in numeric and "log_price" not in numeric and "gr_liv_area" in numeric
    model = Pipeline(stages=houses.feature_stages(houses.COMPACT_CATEGORICAL, houses.COMPACT_NUMERIC)).fit(frame)
    vector = model.transform(frame).first().features
    neighborhoods = frame.select("neighborhood").distinct().count()
    building_types = frame.select("bldg_type").distinct().count()
    # one-hot drops one reference slot per column, and handleInvalid="keep" adds one for unseen values
    assert vector.size == len(houses.COMPACT_NUMERIC) + neighborhoods + building_types


def test_drop_giant_houses_leaves_out_the_five_the_author_names(spark) -> None:
    frame = load("ames", spark)
    kept = houses.drop_giant_houses(frame)
    assert frame.count() - kept.count() == 5
    assert kept.agg({"gr_liv_area": "max"}).first()[0] <= houses.MAX_LIVING_AREA
