"""The checks of the Part IV labs (helpers/labs/operations.py): each fed a correct answer (passes) and the typical
wrong answers (fails with the specific feedback). The structure of the committed lab notebooks is tested
generically in tests/test_labs.py."""

from __future__ import annotations

import hashlib

import pytest

from tests.labs_support import fails_with

# --------------------------------------------------------------------------------------------------------------
# Lab 25 · operations: jobs, governance, scaling

FOLDER = "notebooks/jobs"


def _job(retries: int = 2, timeout: float | None = 900, chained: bool = True, notebook: str = "train"):
    from helpers import jobs

    return jobs.Job("flight_delay_retraining", [
        jobs.Task("ingest", f"{FOLDER}/ingest.ipynb", max_retries=retries),
        jobs.Task("train", f"{FOLDER}/{notebook}.ipynb", depends_on=("ingest",), timeout_seconds=timeout),
        jobs.Task("validate", f"{FOLDER}/validate.ipynb", depends_on=("train",) if chained else ()),
        jobs.Task("promote", f"{FOLDER}/promote.ipynb", depends_on=("validate",)),
    ], parameters={"scale": "default"})


def test_operations_job() -> None:
    from helpers import jobs
    from helpers.labs import operations as lab

    verdict = lab.test_job(_job())
    assert verdict.passed and "ingest → train → validate → promote" in verdict.message, verdict
    fails_with(lab.test_job(jobs.to_databricks(_job())), "helpers.jobs.Job", "dict")
    fails_with(lab.test_job(jobs.Job("short", [jobs.Task("ingest", f"{FOLDER}/ingest.ipynb")])),
               "it lacks ['train', 'validate', 'promote']")
    fails_with(lab.test_job(_job(notebook="training")), "notebooks/jobs/training.ipynb", "does not exist")
    fails_with(lab.test_job(_job(chained=False)), "validate does not depend on train")
    fails_with(lab.test_job(_job(retries=0)), "ingest has max_retries=0")
    fails_with(lab.test_job(_job(timeout=None)), "train has no timeout_seconds", "stuck training")


def test_operations_databricks() -> None:
    from helpers import jobs
    from helpers.labs import operations as lab

    verdict = lab.test_databricks(jobs.to_databricks(_job(), schedule="0 0 3 * * ?"))
    assert verdict.passed and "'0 0 3 * * ?'" in verdict.message, verdict
    fails_with(lab.test_databricks(_job()), "to_databricks", "Job")
    fails_with(lab.test_databricks(jobs.to_databricks(_job())), "no schedule", "0 0 3 * * ?")
    fails_with(lab.test_databricks(jobs.to_databricks(_job(), schedule="0 3 * * *")), "not a Quartz cron",
               "five")
    fails_with(lab.test_databricks(jobs.to_databricks(_job(timeout=None), schedule="0 0 3 * * ?")),
               "train has no timeout_seconds")


@pytest.fixture
def hotels(spark):
    from helpers.datasets import load

    return load("hotel_rates", spark, scale="full").select("agent", "adults")


def test_operations_pseudonymised(spark, hotels, monkeypatch) -> None:
    from pyspark.sql import functions as F

    from helpers import governance
    from helpers.labs import operations as lab

    monkeypatch.setenv(lab.KEY_NAME, "a test key from the environment")
    key = governance.get_secret(lab.KEY_NAME)
    verdict = lab.test_pseudonymised(governance.pseudonymise(hotels, ["agent"], key, drop=True))
    assert verdict.passed and "125 agents → 125 keyed tokens" in verdict.message, verdict
    fails_with(lab.test_pseudonymised(hotels.toPandas()), "Spark DataFrame")
    fails_with(lab.test_pseudonymised(hotels), "no column 'agent_token'")
    fails_with(lab.test_pseudonymised(governance.pseudonymise(hotels, ["agent"], key)), "raw column 'agent'",
               "drop=True")
    fails_with(lab.test_pseudonymised(hotels.withColumnRenamed("agent", "agent_token")), "raw agent names")
    plain = hotels.withColumn("agent_token", F.sha2("agent", 256)).drop("agent")
    fails_with(lab.test_pseudonymised(plain), "plain SHA-256", lab.KEY_NAME)
    typed = governance.pseudonymise(hotels, ["agent"], "a key typed into the notebook", drop=True)
    fails_with(lab.test_pseudonymised(typed), "not the HMAC-SHA-256", "get_secret")
    few = governance.pseudonymise(hotels.filter(F.col("agent") < "m"), ["agent"], key, drop=True)
    fails_with(lab.test_pseudonymised(few), "distinct tokens for the 125 agents")
    assert hashlib.sha256(b"x").hexdigest() != governance.token("x", key)


def test_operations_broadcast(spark) -> None:
    from pyspark.sql import functions as F

    from helpers.labs import operations as lab

    flights = spark.createDataFrame([("UA", 1), ("AA", 2), ("UA", 3)], "carrier string, flight int")
    airlines = spark.createDataFrame([("UA", "United"), ("AA", "American")], "carrier string, name string")
    previous = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        verdict = lab.test_broadcast(flights.join(F.broadcast(airlines), "carrier"))
        assert verdict.passed and "BroadcastHashJoin" in verdict.message, verdict
        fails_with(lab.test_broadcast(flights.join(airlines, "carrier")), "SortMergeJoin",
                   "F.broadcast(airlines)")
        fails_with(lab.test_broadcast(flights), "columns", "join the flights")
        fails_with(lab.test_broadcast(flights.toPandas()), "Spark DataFrame")
        fails_with(lab.test_broadcast(flights.join(airlines.hint("shuffle_hash"), "carrier")), "ShuffledHashJoin",
                   "expected BroadcastHashJoin")
        fails_with(lab.test_broadcast(flights.crossJoin(airlines.select("name"))), "no join")
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", previous)
