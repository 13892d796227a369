from __future__ import annotations

from pyspark.sql import functions as F

from helpers import load
from helpers.flights import FLIGHT_KEY, enriched_flights, with_origin_weather


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




def test_origin_weather_is_a_left_join_on_origin_and_hour(spark) -> None:
    observed = load("weather", spark).select("origin", "time_hour", "temp").orderBy("origin", "time_hour").limit(2)
    expected = {(row.origin, row.time_hour): row.temp for row in observed.collect()}
    unknown = observed.limit(1).withColumn("origin", F.lit("XXX"))
    flights = observed.unionByName(unknown).drop("temp")
    joined = with_origin_weather(spark, flights)
    got = {(row.origin, row.time_hour): row.temp for row in joined.collect()}
    assert joined.count() == 3  # no flight lost, none duplicated
    assert {key: temp for key, temp in got.items() if key[0] != "XXX"} == expected
    assert [temp for key, temp in got.items() if key[0] == "XXX"] == [None]  # unknown airport: null weather
    assert "year" not in joined.columns  # the date parts stay the flight's own
