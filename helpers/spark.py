"""One call to get a Spark session that is right for where the notebook runs.

* Nothing set: local mode on this machine, using all its cores, quiet, with every file it writes
  inside the project's ignored ``.work/`` folder. How the data is split into partitions (which decides some
  results) is the same on every machine; see ``data_layout``.
* ``SPARK_REMOTE=sc://host:15002``: a Spark Connect client (the protocol Databricks Connect uses).
* ``SPARK_MASTER=spark://host:7077`` (or ``yarn``, ``k8s://...``): a classic session on that cluster.

The notebooks never change; only the environment does.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from pyspark.sql import SparkSession

from helpers.java import ensure_java
from helpers.paths import WORK_ENV, work_dir

REMOTE_ENV = "SPARK_REMOTE"
MASTER_ENV = "SPARK_MASTER"
DRIVER_MEMORY_ENV = "SPARK_DRIVER_MEMORY"
DEFAULT_DRIVER_MEMORY = "4g"
#: Set by JupyterHub (Binder) to the path of the user's JupyterLab; jupyter-server-proxy serves the Spark UI below it.
PROXY_PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"
#: How many task slots a local session gets (default: every core), e.g. 8 to run as an 8-core laptop would.
CORES_ENV = "CURRICULUM_CORES"
#: "machine" sizes the data layout to the cores (the runner sets it for ``--scale full``); anything else, or
#: nothing, keeps the layout every learner shares.
PARTITIONS_ENV = "CURRICULUM_PARTITIONS"
#: The layout every learner shares: the one a 2-core machine had when the committed outputs were made.
SHARED_PARALLELISM = 2
SHARED_SHUFFLE_PARTITIONS = 4


@dataclass(frozen=True)
class SparkTarget:
    """Where a session will run: ``kind`` is "local", "cluster" or "connect"."""

    kind: str
    url: str


def spark_target(environ: Mapping[str, str] | None = None) -> SparkTarget:
    env = os.environ if environ is None else environ
    if env.get(REMOTE_ENV):
        url = env[REMOTE_ENV]
        if not url.startswith("sc://"):
            raise ValueError(f"{REMOTE_ENV}={url!r} is not a Spark Connect URL; it must look like sc://host:15002")
        return SparkTarget("connect", url)
    if env.get(MASTER_ENV):
        return SparkTarget("cluster", env[MASTER_ENV])
    return SparkTarget("local", f"local[{local_cores(env)}]")


def local_cores(environ: Mapping[str, str] | None = None) -> int:
    """The task slots of a local session: ``CURRICULUM_CORES`` when set, else the cores this process may use."""
    env = os.environ if environ is None else environ
    value = env.get(CORES_ENV, "").strip()
    if not value:
        return available_cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{CORES_ENV}={value!r} is not a number of cores; set a whole number such as 4, or unset "
                         "it to use every core of this machine")
    return int(value)


def free_port(start: int = 4040, attempts: int = 100) -> int:
    """The first port from ``start`` on that nothing listens on at 127.0.0.1."""
    for port in range(start, start + attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"No free port in {start}-{start + attempts - 1} for the Spark UI")


def available_cores(cgroup_root: Path = Path("/sys/fs/cgroup"), own_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The cores this process may use: those it may be scheduled on, capped by its container's CPU limit (a
    Binder or Kubernetes pod, ``docker run --cpus``). ``os.cpu_count()`` sees the whole host; Spark would then
    run that many Python workers at once, each with its own memory, in a pod sized for one or two."""
    import math

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = None
    try:
        for line in own_cgroup.read_text().splitlines():  # "0::/path" (v2), "4:cpu,cpuacct:/path" (v1)
            _, controllers, path = line.split(":", 2)
            folder = path.lstrip("/")
            if controllers == "" and (cgroup_root / folder / "cpu.max").exists():
                quota, period = (cgroup_root / folder / "cpu.max").read_text().split()[:2]
                limit = None if quota == "max" else int(quota) / int(period)
            elif "cpu" in controllers.split(","):
                quota = int((cgroup_root / "cpu" / folder / "cpu.cfs_quota_us").read_text())
                period = int((cgroup_root / "cpu" / folder / "cpu.cfs_period_us").read_text())
                limit = quota / period if quota > 0 else None
            if limit:
                break
    except (OSError, ValueError):
        limit = None
    return max(1, min(cores, math.ceil(limit))) if limit else max(1, cores)


def shuffle_partitions(cores: int | None = None) -> int:
    """Two tasks per core: enough to keep every core busy, few enough that tiny tasks don't dominate."""
    return max(2, 2 * (cores or os.cpu_count() or 1))


def data_layout(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings that decide how a local session splits data into partitions, which is what some results
    depend on: a random split or a bootstrap sample is drawn per partition, k-means|| picks its starts per
    partition, a sum of floats adds up in partition order. Spark sizes them to the machine's cores by default,
    so a chapter would print other numbers on a 4- or 8-core laptop than on the 2-core machine that made the
    committed outputs. Fixed here, they are the same everywhere, while every core still runs tasks.

    ``spark.default.parallelism`` sets the partitions of ``createDataFrame`` and ``range``, and (through
    ``spark.sql.files.minPartitionNum``) how files are split when read; ``spark.sql.shuffle.partitions`` sets
    the partitions after a shuffle. With ``CURRICULUM_PARTITIONS=machine`` (``make run SCALE=full``) they
    follow the cores instead, so that all rows use all of a large machine."""
    env = os.environ if environ is None else environ
    if env.get(PARTITIONS_ENV, "").strip() == "machine":
        cores = local_cores(env)
        parallelism, shuffle = max(SHARED_PARALLELISM, cores), shuffle_partitions(cores)
    else:
        parallelism, shuffle = SHARED_PARALLELISM, SHARED_SHUFFLE_PARTITIONS
    return {"spark.default.parallelism": str(parallelism), "spark.sql.shuffle.partitions": str(shuffle)}


def session_config(target: SparkTarget, app_name: str) -> dict[str, str]:
    """Spark settings for a classic (local or cluster) session; a pure function, so it is testable."""
    log_config = files("helpers").joinpath("log4j2.properties")
    config = {
        "spark.master": target.url,
        "spark.app.name": app_name,
        "spark.driver.memory": os.environ.get(DRIVER_MEMORY_ENV, DEFAULT_DRIVER_MEMORY),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={log_config}",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(work_dir("spark-warehouse")),
        "spark.local.dir": str(work_dir("spark-local")),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if target.kind == "local":
        config.update(
            {
                **data_layout(),
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.port": str(free_port()),
            }
        )
        prefix = os.environ.get(PROXY_PREFIX_ENV)
        if prefix:  # on Binder only JupyterLab's address is reachable: the UI is served through its proxy
            config["spark.ui.proxyBase"] = f"{prefix.rstrip('/')}/proxy/{config['spark.ui.port']}"
    else:
        config["spark.executor.extraJavaOptions"] = config["spark.driver.extraJavaOptions"]
    return config


def spark_session(app_name: str = "curriculum", extra_config: Mapping[str, str] | None = None) -> SparkSession:
    """The notebook's Spark session (an existing one is reused, as in a Databricks notebook)."""
    target = spark_target()
    if target.kind == "connect":
        session = SparkSession.builder.remote(target.url).appName(app_name).getOrCreate()
        session.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
        for key, value in (extra_config or {}).items():
            session.conf.set(key, value)
        return session
    java = ensure_java()
    if target.kind == "local":
        # Without it Spark warns that the hostname resolves to a loopback address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if target.kind == "cluster":
        # MLflow's Spark flavour stages a model in a folder that the driver and the executors both write and read
        # (DBFS on Databricks). Its default, /tmp/mlflow, is on the driver's own disk: on a cluster the executors'
        # parts of the model would land elsewhere. The shared work folder is seen by all (checked below).
        os.environ.setdefault("MLFLOW_DFS_TMP", str(work_dir("mlflow-dfs-tmp")))
    config = session_config(target, app_name)
    config["spark.driver.extraJavaOptions"] += class_archive_options(java.home, java.version)
    builder = SparkSession.builder
    for key, value in {**config, **(extra_config or {})}.items():
        builder = builder.config(key, value)
    with _jvm_output_to(log_path()):
        session = builder.getOrCreate()
    if target.kind == "cluster":
        check_work_dir_shared(session)
    return session


#: How long a session on a cluster waits for its first executor (a worker's) before saying that none registered.
EXECUTOR_WAIT_S = 60.0
_shared_checked: set[str] = set()  # the applications whose executors were seen to share the work folder


def check_work_dir_shared(spark: SparkSession, wait_seconds: float | None = None) -> None:
    """On a cluster, prove before any chapter's job runs that the executors see the work folder.

    Chapters leave models, checkpoints and tables in the work folder for tasks to read (chapter 19's batch scoring
    loads the champion model there). The executors of a real cluster run on other machines and see only shared
    storage, so a work folder on the driver's own disk would fail deep inside a task. The driver writes a marker
    file and one task looks for it; if the task cannot see it, this says what to set."""
    import uuid

    application = spark.sparkContext.applicationId
    if application in _shared_checked:
        return
    task_slots(spark, EXECUTOR_WAIT_S if wait_seconds is None else wait_seconds)  # a clear error if none registers
    folder = work_dir()
    marker = folder / f".shared-check-{uuid.uuid4().hex}"
    marker.write_text("written by the driver; a task must see it\n")

    def visible(path: str) -> bool:
        import os

        return os.path.exists(path)

    try:
        seen = spark.sparkContext.parallelize([str(marker)], 1).map(visible).collect()
    finally:
        marker.unlink(missing_ok=True)
    if seen != [True]:
        why = (f"{WORK_ENV} is unset, so the work folder is the driver's own {folder}"
               if not os.environ.get(WORK_ENV) else f"{WORK_ENV}={os.environ[WORK_ENV]} is not on storage they share")
        raise RuntimeError(
            f"The executors of {spark.sparkContext.master} cannot see the work folder: the driver wrote {marker.name} "
            f"in {folder} and a task did not find it ({why}). The chapters leave models, checkpoints and tables "
            "there for tasks to read, so on a cluster it must be on storage every node mounts at the same path (a "
            f"network share, a cloud file share, a Databricks volume under /Volumes/). Set {WORK_ENV} to such a "
            "folder for the driver and for every worker, then restart the kernel.")
    _shared_checked.add(application)


#: Set (to anything) to start the driver without the class-data archive, e.g. to measure what it saves.
CDS_ENV = "CURRICULUM_NO_CLASS_ARCHIVE"


def class_archive_options(java_home: Path, java_version: int, environ: Mapping[str, str] | None = None,
                          folder: Path | None = None) -> str:
    """The driver JVM options that map the class-data archive, or "" when there is none (or ``CDS_ENV`` is set).
    ``-Xshare:auto``: a JVM that cannot use the archive (another Java build) starts without it."""
    archive = class_data_archive(java_home, java_version, folder)
    if archive.exists() and CDS_ENV not in (os.environ if environ is None else environ):
        return f" -XX:SharedArchiveFile={archive} -Xshare:auto"
    return ""


def class_data_archive(java_home: Path, java_version: int, folder: Path | None = None) -> Path:
    """Where the driver JVM's class-data archive for this environment and Java lives (it may not exist yet).

    Starting Spark's driver loads about 10,000 classes from Spark's jars; Java's class-data sharing maps them from
    an archive written once instead (`make env` writes it: ``python -m helpers.spark --archive-classes``). It
    belongs to one Java runtime and one Spark installation, so it lives in the environment, named after both; a
    JVM that finds it does not match simply starts without it."""
    import hashlib

    import pyspark

    identity = f"{Path(java_home).resolve()}|{java_version}|{pyspark.__version__}|{Path(pyspark.__file__).parent}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return (folder or Path(sys.prefix) / "share" / "curriculum") / f"spark-driver-java{java_version}-{digest}.jsa"


#: What the archiving run does, so the classes a chapter's first steps load are in the archive: DataFrames, Arrow
#: both ways, a pandas UDF (the Python worker), Parquet, a shuffle, and an MLlib pipeline fitted and evaluated.
_ARCHIVE_WORKLOAD = """
import pandas as pd
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from helpers.paths import WORK_ENV, work_dir
from helpers.spark import spark_session

spark = spark_session("class-data-archive", EXTRA_CONFIG)
frame = spark.createDataFrame(pd.DataFrame({"x": [float(i % 17) for i in range(400)],
                                            "g": [("a", "b", "c")[i % 3] for i in range(400)]}))
frame = frame.withColumn("label", (F.col("x") > 8).cast("double"))
doubled = pandas_udf(lambda s: s * 2, "double")
frame.select(doubled("x").alias("y"), "g").groupBy("g").agg(F.avg("y")).toPandas()
path = str(work_dir("class-data-archive") / "probe.parquet")
frame.write.mode("overwrite").parquet(path)
frame = spark.read.parquet(path).join(frame.select("g").distinct(), "g").cache()
model = Pipeline(stages=[StringIndexer(inputCol="g", outputCol="gi"), OneHotEncoder(inputCol="gi", outputCol="go"),
                         VectorAssembler(inputCols=["x", "go"], outputCol="features"),
                         LogisticRegression(maxIter=5)]).fit(frame)
BinaryClassificationEvaluator().evaluate(model.transform(frame))
spark.sql("SELECT g, count(*) FROM VALUES ('a'), ('b') AS t(g) GROUP BY g").collect()
spark.stop()
from pyspark import SparkContext  # the JVM writes the archive as it exits: end it and wait for that
jvm = SparkContext._gateway.proc
SparkContext._gateway.shutdown()
jvm.stdin.close()
jvm.wait()
"""


#: The archive's proof: a session started with it (and -Xshare:on) runs a job.
_ARCHIVE_CHECK = """
from helpers.spark import spark_session

assert spark_session("class-data-archive-check", EXTRA_CONFIG).range(10).count() == 10
"""


def archive_classes(timeout_s: int = 600, workload: str | None = None) -> Path | None:
    """Write the class-data archive for this environment and Java (see ``class_data_archive``); returns its path,
    or None with one line saying why when this Java cannot write one (Spark then starts as it always did)."""
    import subprocess

    java = ensure_java()
    archive = class_data_archive(java.home, java.version)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f"{archive.stem}.{os.getpid()}.partial")
    log_config = f"-Dlog4j2.configurationFile={files('helpers').joinpath('log4j2.properties')}"

    def run(java_options: str, code: str) -> subprocess.CompletedProcess:
        code = f"EXTRA_CONFIG = {{'spark.driver.extraJavaOptions': {java_options!r}}}\n{code}"
        return subprocess.run([sys.executable, "-c", code], env={**os.environ, CDS_ENV: "1"}, capture_output=True,
                              text=True, timeout=timeout_s)

    try:
        done = run(f"{log_config} -XX:ArchiveClassesAtExit={partial}", workload or _ARCHIVE_WORKLOAD)
        # -Xshare:on makes a JVM that cannot map the archive (another classpath, another Java) fail to start.
        usable = done.returncode == 0 and partial.exists() and (
            done := run(f"{log_config} -XX:SharedArchiveFile={partial} -Xshare:on", _ARCHIVE_CHECK)).returncode == 0
    except subprocess.TimeoutExpired:
        usable, done = False, None
    if not usable:
        partial.unlink(missing_ok=True)
        reason = (done.stderr.strip().splitlines() or ["no archive written"])[-1] if done else "timed out"
        print(f"No class-data archive for Java {java.version} ({reason}); Spark starts without one, a few seconds "
              "slower.", file=sys.stderr)
        return None
    partial.replace(archive)
    return archive


def task_slots(spark: SparkSession, wait_seconds: float = 60.0) -> int:
    """How many tasks ``spark`` can run at once now: the cores of its executors (``local[N]``: N).

    A barrier stage starts only when it can start all its tasks together, and waits for that forever; XGBoost's
    ``SparkXGBClassifier`` trains in one, a task per ``num_workers``, so it must not ask for more than this. On a
    shared standalone cluster an application gets only its share of the cores (``helpers.cluster``), and its
    executors register a moment after the session starts: until the first one has, this waits (up to
    ``wait_seconds``). Spark Connect does not expose the scheduler, so this needs a classic session."""
    import time

    from pyspark.sql.utils import is_remote

    if is_remote():
        raise RuntimeError("task_slots needs a classic Spark session: over Spark Connect the client cannot see the "
                           "cluster's scheduler. Unset SPARK_REMOTE, or pass the number of task slots yourself.")
    scheduler = spark.sparkContext._jsc.sc()
    default_profile = scheduler.resourceProfileManager().defaultResourceProfile()
    deadline = time.monotonic() + wait_seconds
    while (slots := int(scheduler.maxNumConcurrentTasks(default_profile))) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    if slots == 0:
        raise RuntimeError(f"No executor of {spark.sparkContext.master} registered within {wait_seconds:.0f} s, so "
                           "the session can run no task. Is a worker running, with free cores? The master's web UI "
                           "lists its workers and the cores each application holds.")
    return slots


def log_path() -> Path:
    """The file that receives the Spark JVM's console output (its log and any Java warnings)."""
    return work_dir("logs") / "spark-driver.log"


@contextmanager
def _jvm_output_to(log: Path) -> Iterator[None]:
    """Start the JVM with its stdout/stderr going to ``log`` instead of the notebook.

    The JVM inherits the Python process's file descriptors 1 and 2. Jupyter shows whatever arrives
    on them under papermill but not under nbval, so JVM chatter would make outputs differ between
    runs; in the log file it stays available without cluttering the chapter.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with log.open("ab") as handle:
            os.dup2(handle.fileno(), 1)
            os.dup2(handle.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


def is_connect(session: SparkSession) -> bool:
    """True for a Spark Connect session, where ``sparkContext`` and RDDs are not available."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def ui_url(session: SparkSession) -> str | None:
    """The Spark UI's address for a classic session (Connect servers show theirs on the server); on Binder, its
    path through JupyterLab's proxy (open it in the same browser tab's address, below the JupyterLab address)."""
    if is_connect(session):
        return None
    proxied = session.conf.get("spark.ui.proxyBase", "")
    return f"{proxied}/" if proxied else session.sparkContext.uiWebUrl


def checkpoint_dir(name: str) -> str:
    """A checkpoint folder for one streaming query or one iterative job, inside ``.work/``."""
    return str(work_dir("checkpoints", name))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.spark", description="Spark session plumbing.")
    parser.add_argument("--archive-classes", action="store_true",
                        help="write the driver's class-data archive for this environment and Java (make env does)")
    if parser.parse_args().archive_classes:
        try:
            written = archive_classes()
        except Exception as error:  # the archive only saves seconds: never let it stop `make env`
            written = None
            print(f"No class-data archive ({type(error).__name__}: {error}); Spark starts without one.",
                  file=sys.stderr)
        if written:
            print(f"Class-data archive for Spark's driver: {written} ({written.stat().st_size / 2**20:.0f} MiB)")
