"""One call to get a Spark session that is right for where the notebook runs.

* Nothing set: local mode on this machine, sized to its cores, quiet, with every file it writes
  inside the project's ignored ``.work/`` folder.
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
from helpers.paths import work_dir

REMOTE_ENV = "SPARK_REMOTE"
MASTER_ENV = "SPARK_MASTER"
DRIVER_MEMORY_ENV = "SPARK_DRIVER_MEMORY"
DEFAULT_DRIVER_MEMORY = "4g"


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
    return SparkTarget("local", f"local[{os.cpu_count() or 1}]")


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


def shuffle_partitions(cores: int | None = None) -> int:
    """Two tasks per core: enough to keep every core busy, few enough that tiny tasks don't dominate."""
    return max(2, 2 * (cores or os.cpu_count() or 1))


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
                "spark.sql.shuffle.partitions": str(shuffle_partitions()),
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.port": str(free_port()),
            }
        )
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
    ensure_java()
    if target.kind == "local":
        # Without it Spark warns that the hostname resolves to a loopback address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in {**session_config(target, app_name), **(extra_config or {})}.items():
        builder = builder.config(key, value)
    with _jvm_output_to(log_path()):
        return builder.getOrCreate()


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
    """The Spark UI's address for a classic session (Connect servers show theirs on the server)."""
    if is_connect(session):
        return None
    return session.sparkContext.uiWebUrl


def checkpoint_dir(name: str) -> str:
    """A checkpoint folder for one streaming query or one iterative job, inside ``.work/``."""
    return str(work_dir("checkpoints", name))
