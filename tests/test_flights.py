from __future__ import annotations

from pyspark.sql import functions as F

from helpers import load
from helpers.flights import FLIGHT_KEY, enriched_flights


def test_enriched_flights_keeps_every_flight_and_adds_context(spark) -> None:
    flights = load("flights", spark)
    enriched = enriched_flights(spark)
    assert enriched.count() == flights.count()
    for column in ("airline", "dest_name", "plane_year", "seats", "temp", "visib", *FLIGHT_KEY):
        assert column in enriched.columns
    matched = enriched.select(
        F.avg(F.col("airline").isNotNull().cast("double")).alias("airline"),
        F.avg(F.col("temp").isNotNull().cast("double")).alias("weather"),
    ).first()
    assert matched.airline == 1.0
    assert matched.weather > 0.95
