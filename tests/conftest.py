"""Shared fixtures: one Spark session for the whole test run (starting a JVM costs seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import pytest

# Figures are drawn off-screen in tests (and closed after each one).
matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark() -> Iterator:
    from helpers.spark import spark_session

    session = spark_session("tests")
    yield session
    session.stop()
    stop_gateway_jvm()


def stop_gateway_jvm() -> None:
    """End this process's Spark JVM now rather than when Python exits (``stop()`` leaves it running), so the
    leftover check at the end of the run finds no process of this run's, the test process's own included."""
    import atexit

    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    flaml_spark = sys.modules.get("flaml.automl.spark")
    if flaml_spark is not None:  # FLAML restores a Spark setting at exit through the JVM: do it while there is one
        atexit.unregister(flaml_spark.restore_spark_ansi_mode)
        flaml_spark.restore_spark_ansi_mode(flaml_spark.spark, flaml_spark.ansi_conf, flaml_spark.adjusted)
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    if process is not None:
        process.stdin.close()  # the JVM exits when its standard input closes (PythonGatewayServer)
        process.wait(timeout=60)
    SparkContext._gateway = None
    SparkContext._jvm = None


@pytest.fixture
def plot_style() -> Iterator[None]:
    """The curriculum's plot style for one test, with every figure it opened closed afterwards."""
    import matplotlib.pyplot as plt

    from helpers.plots import use_style

    use_style()
    yield
    plt.close("all")


@contextmanager
def fresh_mlflow_store(work: Path, experiment: str, patch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite tracking store and model registry under ``work`` (``MLFLOW_TRACKING_URI`` points at it through
    ``patch``, artifacts go beside it) with ``experiment`` active; yields its URI. MLflow's global state — the
    active run and experiment, the tracking and registry URIs — is restored afterwards."""
    import mlflow
    import mlflow.tracking.fluent as fluent

    from helpers.tracking import use_experiment

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    uri = f"sqlite:///{work / 'mlflow' / 'mlflow.db'}"
    patch.setenv("CURRICULUM_WORK_DIR", str(work))
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    patch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    patch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    use_experiment(experiment)
    try:
        yield uri
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        fluent._active_experiment_id = None
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite tracking store in ``tmp_path`` with an active experiment; MLflow's state restored after."""
    with fresh_mlflow_store(tmp_path / "work", "lab-tests", monkeypatch) as uri:
        yield uri


def run_python(code: str, env: dict[str, str] | None = None, remove: tuple[str, ...] = (),
               timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment (for what must start from a clean process),
    with ``env`` added to this process's environment and the variables in ``remove`` taken out."""
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in remove}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment
    )


_RUN_ID = f"pytest-{os.getpid()}-{time.time_ns()}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Mark this run: every process it starts (servers, notebook kernels, Spark JVMs and their Python workers, job
    task kernels, TorchDistributor workers...) inherits the mark, so the check below judges this run's processes
    and not another session's on a shared machine."""
    from helpers.processes import OWNER

    os.environ[OWNER] = _RUN_ID


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any process it started — a server, a kernel, a JVM, a worker — is still running once every
    test and notebook has finished, then stop it so the machine is left clean."""
    report_leftovers(session, _RUN_ID)


def report_leftovers(session: pytest.Session, owner: str, grace_s: float = 15.0) -> list:
    """The leftover check itself (a test gives it a deliberately leaked process): what ``owner`` started and left
    running, reported in red, stopped, and the run marked failed."""
    from helpers.cluster import running_servers
    from helpers.processes import leftovers, stop_group, stop_tree

    deliberate = [server.pid for server in running_servers()]  # `make cluster-up` on a developer's machine

    def left_behind() -> list:
        return leftovers(exclude=deliberate, owner=owner, everything=True)

    deadline = time.monotonic() + grace_s
    left = left_behind()
    while left and time.monotonic() < deadline:  # a kernel or server stopped by the last test may still be exiting
        time.sleep(0.5)
        left = left_behind()
    if not left:
        return []
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {p.pid} ({p.name}): {p.command}" for p in left]
    message = "Processes left running after the tests (each must be stopped by the code that started it):\n"
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(message + "\n".join(lines), red=True)
    for process in left:
        if process.tagged:
            stop_group(process.pid, grace_s=5)
        else:
            stop_tree(process.pid, grace_s=5)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return left
