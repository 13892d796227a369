"""Checks for Lab 04 · Foundations (chapters 01–04) on the Ames house sales.

The lab's tasks: inspect the data, clean it and add features, fit a linear regression of log10(price) and
report its test RMSE in dollars, and track that model in an MLflow run. The checks recompute every expected
value from the data themselves (the cleaned table, the held-out rows of :func:`split`), so a learner's result
is judged, never their code.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

from helpers.houses import MAX_LIVING_AREA  # De Cock's 4,000 sq ft, as chapter 03 applies it
from helpers.labs import active_spark, check, finished_run, require

if TYPE_CHECKING:
    from pyspark.ml import Transformer
    from pyspark.sql import DataFrame

#: The chapter-03 compact model (neighbourhood, building type, living area, year built, location) reaches about
#: $31,300 RMSE on this lab's test rows once the 5 giant houses are removed; anything reasonable is below this.
RMSE_DOLLARS_LIMIT = 35_000


def _raw_columns() -> list[str]:
    from helpers.datasets import dataset

    return dataset("ames").column_names


def split(frame: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(train, test) of the lab: 20% of the sales held out by a hash of their original columns."""
    from helpers.splits import hash_split

    return hash_split(frame, test_fraction=0.2, keys=[c for c in _raw_columns() if c in frame.columns])


def reference_clean(houses: DataFrame) -> DataFrame:
    """The cleaning of task 2, as the checks expect it: drop the giant houses, add ``log_price`` and ``house_age``."""
    from pyspark.sql import functions as F

    from helpers import houses as ames

    return (ames.with_target(ames.drop_giant_houses(houses))
            .withColumn("house_age", F.col("year_sold") - F.col("year_built")))


def _test_rows() -> DataFrame:
    from helpers.datasets import load

    return split(reference_clean(load("ames", active_spark())))[1]


def _rmse_in_dollars(model: Transformer) -> tuple[float, float]:
    """(RMSE in dollars of 10**prediction, mean prediction) of ``model`` on the lab's test rows."""
    from pyspark.sql import functions as F

    scored = model.transform(_test_rows())
    row = scored.select(
        F.sqrt(F.avg((F.pow(F.lit(10.0), F.col("prediction")) - F.col("sale_price")) ** 2)).alias("rmse"),
        F.avg("prediction").alias("mean"),
    ).first()
    return float(row["rmse"]), float(row["mean"])


@check("Inspect: the number of sales and the busiest neighbourhood")
def test_inspect(n_sales: int, busiest: str) -> str:
    """``n_sales``: rows of the Ames table; ``busiest``: the neighbourhood with the most sales."""
    from helpers.datasets import load_pandas

    houses = load_pandas("ames")
    counts = houses["neighborhood"].value_counts()
    require(isinstance(n_sales, numbers.Integral) and not isinstance(n_sales, bool),
            f"n_sales should be a whole number (what `.count()` returns), not {type(n_sales).__name__}")
    require(n_sales != houses.shape[1], f"{n_sales} is the number of columns; count the rows with `houses.count()`")
    require(n_sales == len(houses), f"n_sales is {n_sales:,} but the table has {len(houses):,} sales — count the "
                                    "whole `houses` DataFrame, before any filter")
    require(isinstance(busiest, str), f"busiest should be the neighbourhood's name (a str), not "
                                      f"{type(busiest).__name__} — take it from the first row of the counts")
    require(busiest in counts.index, f"{busiest!r} is not a neighbourhood of the data (they are written like "
                                     f"{counts.index[0]!r})")
    require(busiest == counts.index[0], f"{busiest} has {counts[busiest]} sales, but another has more — group by "
                                        "neighborhood, count, and sort by the count in DESCENDING order")
    return f"{n_sales:,} sales; {busiest} has the most ({counts.iloc[0]})"


@check("Clean: giant houses removed, log_price and house_age added")
def test_clean(clean: DataFrame) -> str:
    """``clean``: the Ames sales without the houses above 4,000 sq ft, with ``log_price`` and ``house_age``."""
    from pyspark.sql import functions as F

    from helpers.datasets import load_pandas

    expected = load_pandas("ames")
    expected = expected[expected["gr_liv_area"] <= MAX_LIVING_AREA]
    missing = [c for c in ("log_price", "house_age", "sale_price", "gr_liv_area") if c not in clean.columns]
    require(not missing, f"the cleaned DataFrame lacks the column(s) {missing}; add them with `withColumn`")
    row = clean.agg(F.count(F.lit(1)).alias("n"), F.max("gr_liv_area").alias("area"),
                    F.avg(F.col("log_price") - F.log10("sale_price")).alias("log_gap"),
                    F.avg(F.col("log_price") - F.log("sale_price")).alias("ln_gap"),
                    F.avg("house_age").alias("age"), F.min("house_age").alias("min_age")).first()
    n = int(row["n"])
    require(n != len(expected) + 5 or row["area"] <= MAX_LIVING_AREA,
            f"{n:,} rows: the 5 houses above {MAX_LIVING_AREA:,} sq ft of living area (gr_liv_area) are still there")
    require(n == len(expected), f"{n:,} rows, expected {len(expected):,}: keep every sale with gr_liv_area <= "
                                f"{MAX_LIVING_AREA:,} and drop only the others")
    require(row["ln_gap"] is not None and abs(row["ln_gap"]) > 1e-9,
            "log_price holds the natural logarithm; this course uses log10 (`F.log10(\"sale_price\")`)")
    require(abs(row["log_gap"]) < 1e-9, "log_price should be log10(sale_price) for every row")
    age = float(expected["year_sold"].sub(expected["year_built"]).mean())
    require(not math.isclose(row["age"], -age, abs_tol=1e-6),
            f"house_age averages {row['age']:.1f}: the subtraction is the wrong way round (year_sold - year_built)")
    require(math.isclose(row["age"], age, abs_tol=1e-6), f"house_age averages {row['age']:.2f}, expected {age:.2f} "
                                                          "— it is year_sold - year_built")
    return f"{n:,} sales, log_price = log10(sale_price), mean house_age {age:.1f} years"


@check("Model: linear regression of log_price, test RMSE in dollars")
def test_model(model: Transformer, rmse_dollars: float) -> str:
    """``model``: a fitted pipeline predicting ``log_price``; ``rmse_dollars``: its RMSE on the lab's test rows,
    in dollars. The check re-scores the model on those rows itself."""
    from pyspark.ml import Model

    require(isinstance(model, Model), f"model should be a FITTED model (what `.fit(train)` returns), not "
                                      f"{type(model).__name__}")
    require(isinstance(rmse_dollars, (int, float)), f"rmse_dollars should be a number, not "
                                                    f"{type(rmse_dollars).__name__}")
    actual, mean_prediction = _rmse_in_dollars(model)
    require(mean_prediction < 10, f"the model predicts {mean_prediction:,.0f} on average: that is dollars. Train it "
                                  "on labelCol=\"log_price\" as the task asks, and convert its predictions back")
    require(rmse_dollars >= 10, f"RMSE {rmse_dollars:.4f} is on the log scale — did you predict on the log scale and "
                                "forget to transform back? Compute 10 ** prediction, then compare with sale_price")
    require(math.isclose(rmse_dollars, actual, rel_tol=0.01),
            f"you report an RMSE of ${rmse_dollars:,.0f} but your model's RMSE on the test rows is ${actual:,.0f} — "
            "compute it on `test` (not train), as sqrt(mean((10 ** prediction - sale_price) ** 2))")
    require(actual < RMSE_DOLLARS_LIMIT, f"RMSE ${actual:,.0f} is above ${RMSE_DOLLARS_LIMIT:,}: chapter 03's compact "
                                         "model reaches about $31,000 — use at least neighborhood, bldg_type, "
                                         "gr_liv_area, year_built, latitude and longitude, fitted on `train`")
    return f"test RMSE ${actual:,.0f} (limit ${RMSE_DOLLARS_LIMIT:,})"


def _regression_stage(model: Any) -> Any:
    stages = getattr(model, "stages", [model])
    return next((s for s in reversed(stages) if hasattr(s, "getRegParam")), None)


@check("Track: an MLflow run with the model's regParam and its RMSE in dollars")
def test_run(run_id: str, model: Transformer) -> str:
    """``run_id``: an MLflow run that logged the param ``regParam`` and the metric ``rmse_dollars`` of ``model``."""

    run = finished_run(run_id)
    metrics, params = run.data.metrics, run.data.params
    require("rmse_dollars" in metrics, f"the run has no metric 'rmse_dollars' (it has {sorted(metrics) or 'none'}) — "
                                       "`mlflow.log_metric(\"rmse_dollars\", rmse_dollars)`")
    require("regParam" in params, f"the run has no param 'regParam' (it has {sorted(params) or 'none'}) — "
                                  "`mlflow.log_param(\"regParam\", ...)` with the value your model used")
    stage = _regression_stage(model)
    require(stage is not None, "the model has no regression stage with a regParam")
    require(math.isclose(float(params["regParam"]), stage.getRegParam(), abs_tol=1e-12),
            f"the run logs regParam={params['regParam']} but the model was fitted with {stage.getRegParam()}")
    actual, _ = _rmse_in_dollars(model)
    logged = metrics["rmse_dollars"]
    require(logged >= 10, f"the logged rmse_dollars is {logged:.4f}: that is the log-scale RMSE — log the RMSE in "
                          "dollars (after 10 ** prediction)")
    require(math.isclose(logged, actual, rel_tol=0.01), f"the run logs rmse_dollars={logged:,.0f} but the model "
                                                        f"scores ${actual:,.0f} on the test rows — log this model's")
    return f"run logs regParam={params['regParam']} and rmse_dollars={logged:,.0f}"
