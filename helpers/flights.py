"""The NYC-flights tables joined into one row per flight, as notebook 01 builds them step by step.

Later chapters (features, the delay model, deployment, drift) start from this enriched table, so the
joins live here once instead of in every notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpers.datasets import load

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The columns that identify one flight (a carrier's flight number on a day from an origin).
FLIGHT_KEY = ("year", "month", "day", "carrier", "flight", "origin")


def enriched_flights(spark: SparkSession, scale: str = "default") -> DataFrame:
    """Every flight (at ``scale``) with its airline name, destination airport, aircraft and the weather
    at the origin in the scheduled hour. Left joins: no flight is lost when a reference row is missing."""
    from pyspark.sql import functions as F

    airlines = load("airlines", spark).withColumnRenamed("name", "airline")
    destinations = load("airports", spark).select(
        F.col("faa").alias("dest"), F.col("name").alias("dest_name"), F.col("lat").alias("dest_lat"),
        F.col("lon").alias("dest_lon"), F.col("tzone").alias("dest_tzone"),
    )
    aircraft = load("planes", spark).select("tailnum", F.col("year").alias("plane_year"), "seats", "engines")
    flights = (
        load("flights", spark, scale=scale)
        .join(F.broadcast(airlines), "carrier", "left")
        .join(F.broadcast(destinations), "dest", "left")
        .join(F.broadcast(aircraft), "tailnum", "left")
    )
    return with_origin_weather(spark, flights)


def with_origin_weather(spark: SparkSession, flights: DataFrame) -> DataFrame:
    """``flights`` (any frame with ``origin`` and ``time_hour``) with the weather observed at the origin in the
    scheduled hour. A left join on the small ``weather`` table, broadcast: a flight without an observation keeps
    null weather. Batch and streaming flights both get their weather here."""
    from pyspark.sql import functions as F

    weather = load("weather", spark).drop("year", "month", "day", "hour")
    return flights.join(F.broadcast(weather), ["origin", "time_hour"], "left")
