"""The measurements behind ``make bench``, each run in a fresh Python process (one JVM per measurement,
so sessions, caches and peak memory never leak from one measurement into the next).

    python -m helpers.bench_workloads <measurement> --out result.json [options]

Every measurement times the things it compares side by side, in the same process, on the same data,
repeating each several times and keeping the median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Numeric inputs of the scaled-up delay task (known before departure, plus the weather at the origin).
NUMERIC = ("month", "dep_hour", "distance", "temp", "humid", "wind_speed", "precip", "visib", "pressure")
#: Rows of the real flights table that the scale-up draws from (seeded draws with replacement).
SEED = 42


def median_seconds(action: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``action`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class PeakMemory:
    """Samples the resident memory of this process and all its children (the JVM) in a thread."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak_python = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            try:
                python = me.memory_info().rss
                total = python + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                continue
            self.peak_python = max(self.peak_python, python)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def _session(kind: str = "tuned", extra: dict[str, str] | None = None) -> Iterator[Any]:
    """The helpers' tuned session, or Spark's defaults with only Java and logging set up."""
    from helpers.spark import spark_session

    if kind == "tuned":
        spark = spark_session("bench", extra_config=extra)
    else:
        from pyspark.sql import SparkSession

        from helpers.java import ensure_java
        from helpers.spark import _jvm_output_to, log_path

        ensure_java()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        with _jvm_output_to(log_path()):
            spark = SparkSession.builder.master("local[*]").appName("bench-default").getOrCreate()
    try:
        yield spark
    finally:
        spark.stop()


def session_workload(spark: Any) -> Callable[[], Any]:
    """A typical chapter's Spark work: every flight joined to its weather, aggregated and sorted."""
    from pyspark.sql import functions as F

    from helpers.flights import enriched_flights

    def run() -> Any:
        return (enriched_flights(spark, scale="full")
                .groupBy("carrier", "month")
                .agg(F.avg("arr_delay").alias("delay"), F.avg("temp").alias("temp"), F.count("*").alias("n"))
                .orderBy("carrier", "month")
                .collect())

    return run


def measure_session(kind: str) -> dict[str, Any]:
    with _session(kind) as spark:
        return {"kind": kind, "seconds": median_seconds(session_workload(spark), repeats=5),
                "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions")),
                "adaptive": spark.conf.get("spark.sql.adaptive.enabled") == "true"}


def measure_arrow() -> dict[str, Any]:
    from helpers.flights import enriched_flights

    with _session() as spark:
        flights = enriched_flights(spark, scale="full").cache()
        rows = flights.count()
        timings = {}
        for enabled in ("true", "false"):
            spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", enabled)
            timings[enabled] = median_seconds(flights.toPandas)
        return {"rows": rows, "columns": len(flights.columns), "arrow_s": timings["true"],
                "no_arrow_s": timings["false"]}


def scaled_flights(spark: Any, rows: int, source: Any, order_by: Sequence[str] = ("flight_id",)) -> Any:
    """``rows`` flights drawn with replacement (seeded hash of the row number) from the real ``source``.

    This is the documented scale-up: every row is a real flight, with its real features and label; only
    their multiplicity changes, so a model sees the same distribution at every size."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Number the source rows in a fixed order, so the same seed draws the same flights on every run. A window
    # without partitions numbers them in one task (Spark's WindowExec warns about it): cheap for the ~270k source
    # flights, and the DataFrame API's only way to dense row numbers (zipWithIndex is RDD-only, absent over Connect).
    indexed = source.withColumn("source_row", F.row_number().over(Window.orderBy(*order_by)) - 1).cache()
    total = indexed.count()
    picks = spark.range(rows).select(F.pmod(F.xxhash64("id", F.lit(SEED)), F.lit(total)).alias("source_row"))
    return picks.join(F.broadcast(indexed), "source_row").drop("source_row")


def delay_task(spark: Any) -> tuple[Any, Any, list[str]]:
    """The real flights as a numeric delay task (label: arrival more than 15 minutes late), split 80/20 by
    flight, standardised with the training statistics; carriers and origins one-hot encoded."""
    from pyspark.sql import functions as F

    from helpers.flights import FLIGHT_KEY, enriched_flights
    from helpers.splits import hash_split

    flights = (enriched_flights(spark, scale="full").where(F.col("arr_delay").isNotNull())
               .withColumn("dep_hour", (F.col("sched_dep_time") / 100).cast("int").cast("double"))
               .withColumn("label", (F.col("arr_delay") > 15).cast("double")))
    carriers = sorted(r[0] for r in flights.select("carrier").distinct().collect())
    origins = sorted(r[0] for r in flights.select("origin").distinct().collect())
    train, test = hash_split(flights, 0.2, FLIGHT_KEY)
    stats = train.select(*[F.avg(c).alias(f"{c}_mean") for c in NUMERIC],
                         *[F.stddev(c).alias(f"{c}_std") for c in NUMERIC]).first()
    columns = [F.coalesce((F.col(c).cast("double") - stats[f"{c}_mean"]) / stats[f"{c}_std"], F.lit(0.0)).alias(c)
               for c in NUMERIC]
    columns += [(F.col("carrier") == c).cast("double").alias(f"carrier_{c}") for c in carriers[1:]]
    columns += [(F.col("origin") == o).cast("double").alias(f"origin_{o}") for o in origins[1:]]
    features = [c for c in NUMERIC] + [f"carrier_{c}" for c in carriers[1:]] + [f"origin_{o}" for o in origins[1:]]
    flight_id = F.xxhash64(*FLIGHT_KEY).alias("flight_id")
    return train.select(*columns, "label", flight_id), test.select(*columns, "label"), features


def measure_scaling(rows: int, max_iter: int = 30) -> dict[str, Any]:
    """MLlib vs scikit-learn logistic regression on ``rows`` scaled-up flights: time, ROC AUC, peak memory."""
    import numpy as np
    import pyarrow.parquet as pq
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    from sklearn.metrics import roc_auc_score

    from helpers.paths import work_dir

    extra = {"spark.driver.maxResultSize": "0", "spark.sql.shuffle.partitions": "8"}
    os.environ.setdefault("SPARK_DRIVER_MEMORY", "8g")
    with PeakMemory() as memory, _session(extra=extra) as spark:
        train_real, test, features = delay_task(spark)
        train = scaled_flights(spark, rows, train_real).select(*features, "label")
        assembler = VectorAssembler(inputCols=features, outputCol="features")
        assembled = assembler.transform(train).select("features", "label")
        started = time.perf_counter()
        assembled = assembled.cache()
        assembled.count()
        prepare_spark_s = time.perf_counter() - started
        test_pd = test.toPandas()

        mllib = LogisticRegression(maxIter=max_iter, regParam=0.0, tol=1e-9, standardization=False)
        started = time.perf_counter()
        model = mllib.fit(assembled)
        mllib_s = time.perf_counter() - started
        weights = model.coefficients.toArray()
        mllib_auc = roc_auc_score(test_pd["label"], test_pd[features].to_numpy() @ weights + model.intercept)
        mllib_peak = memory.peak_total
        assembled.unpersist()

        # scikit-learn gets the same rows the way a team would hand them over at this size: Spark writes Parquet,
        # Python reads the columns straight into NumPy (collecting gigabytes through the driver JVM would
        # measure the JVM's result transfer, not the libraries)
        started = time.perf_counter()
        handoff = Path(tempfile.mkdtemp(prefix="handoff-", dir=work_dir("bench")))
        try:
            train.write.mode("overwrite").parquet(str(handoff / "train"))
            table = pq.read_table(handoff / "train", columns=[*features, "label"])
            X = np.column_stack([table.column(c).to_numpy() for c in features]).astype(np.float64)
            y = table.column("label").to_numpy()
            del table
        finally:
            shutil.rmtree(handoff, ignore_errors=True)
        handoff_s = time.perf_counter() - started
        sk = SkLogisticRegression(max_iter=max_iter, C=1e12, tol=1e-9, solver="lbfgs")
        started = time.perf_counter()
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # both libraries run exactly max_iter steps
            sk.fit(X, y)
        sklearn_s = time.perf_counter() - started
        sklearn_auc = roc_auc_score(test_pd["label"], sk.decision_function(test_pd[features].to_numpy()))
    return {"rows": rows, "features": len(features), "max_iter": max_iter,
            "mllib_fit_s": mllib_s, "sklearn_fit_s": sklearn_s, "spark_cache_s": prepare_spark_s,
            "handoff_s": handoff_s, "mllib_auc": float(mllib_auc), "sklearn_auc": float(sklearn_auc),
            "peak_mllib_bytes": mllib_peak, "peak_total_bytes": memory.peak_total,
            "peak_python_bytes": memory.peak_python}


def measure_formats(rows: int, folder: Path) -> dict[str, Any]:
    """Parquet vs CSV scans of the same scaled-up flights, and the Parquet scan vs reading its raw bytes."""
    from pyspark.sql import functions as F

    from helpers.datasets import load
    from helpers.flights import FLIGHT_KEY

    with _session() as spark:

        flights = load("flights", spark, scale="full")
        parquet, csv = folder / "flights.parquet", folder / "flights.csv"
        if not parquet.exists() or not csv.exists():
            scaled = scaled_flights(spark, rows, flights, order_by=FLIGHT_KEY).drop("time_hour")
            scaled.write.mode("overwrite").parquet(str(parquet))
            spark.read.parquet(str(parquet)).write.mode("overwrite").option("header", True).csv(str(csv))
        schema = spark.read.parquet(str(parquet)).schema

        def query(frame: Any) -> Callable[[], Any]:
            return lambda: frame.groupBy("origin").agg(F.avg("arr_delay"), F.sum("distance")).collect()

        timings = {
            "parquet_s": median_seconds(query(spark.read.parquet(str(parquet)))),
            "csv_s": median_seconds(query(spark.read.schema(schema).option("header", True).csv(str(csv)))),
            "csv_infer_s": median_seconds(lambda: spark.read.option("header", True).option("inferSchema", True)
                                          .csv(str(csv)).count(), repeats=1),
        }
        files = [p for p in parquet.rglob("*.parquet")]
        parquet_bytes = sum(p.stat().st_size for p in files)

        def read_raw() -> None:
            for path in files:
                with path.open("rb") as handle:
                    while handle.read(8 << 20):
                        pass

        raw_s = median_seconds(read_raw)
        full_scan_s = median_seconds(lambda: spark.read.parquet(str(parquet)).select(
            *[F.sum(F.hash(c)) for c in spark.read.parquet(str(parquet)).columns]).collect())
    return {"rows": rows, "parquet_bytes": parquet_bytes,
            "csv_bytes": sum(p.stat().st_size for p in csv.rglob("*.csv")), **timings,
            "raw_read_s": raw_s, "parquet_full_scan_s": full_scan_s}


#: A chapter's first steps, timed in a process of their own: the set-up line, then a first small job through Arrow.
_STARTUP_PROBE = """
import time
started = time.perf_counter()
import helpers
spark = helpers.start("bench-startup")
ready = time.perf_counter()
import pandas as pd
spark.createDataFrame(pd.DataFrame({"a": range(10)})).groupBy("a").count().toPandas()
print(ready - started, time.perf_counter() - ready)
"""


def measure_startup(repeats: int = 5) -> dict[str, Any]:
    """A chapter's set-up with and without the driver's class-data archive (helpers.spark), each in a fresh process,
    alternated so that both see the same machine; medians of ``repeats``."""
    import subprocess

    from helpers.java import ensure_java
    from helpers.spark import CDS_ENV, class_data_archive

    java = ensure_java()
    if not class_data_archive(java.home, java.version).exists():
        return {"archive": False}
    timings: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    for _ in range(repeats):
        for mode in ("without", "with"):
            env = {k: v for k, v in os.environ.items() if k != CDS_ENV}
            if mode == "without":
                env[CDS_ENV] = "1"
            done = subprocess.run([sys.executable, "-c", _STARTUP_PROBE], env=env, capture_output=True, text=True,
                                  timeout=300, check=True)
            start_s, first_job_s = map(float, done.stdout.split()[-2:])
            timings[mode].append((start_s, first_job_s))
    result: dict[str, Any] = {"archive": True, "repeats": repeats}
    for mode, pairs in timings.items():
        result[f"{mode}_start_s"] = statistics.median(p[0] for p in pairs)
        result[f"{mode}_first_job_s"] = statistics.median(p[1] for p in pairs)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench_workloads")
    parser.add_argument("measurement", choices=("session", "startup", "arrow", "scaling", "formats"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kind", choices=("tuned", "default"), default="tuned")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    if args.measurement == "session":
        result = measure_session(args.kind)
    elif args.measurement == "startup":
        result = measure_startup()
    elif args.measurement == "arrow":
        result = measure_arrow()
    elif args.measurement == "scaling":
        result = measure_scaling(args.rows)
    else:
        args.folder.mkdir(parents=True, exist_ok=True)
        result = measure_formats(args.rows, args.folder)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
