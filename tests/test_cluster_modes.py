"""The promise to teams: the same notebooks run unchanged on a real Spark cluster and a shared MLflow server.

Each test starts real servers on 127.0.0.1 with the project's own code (helpers.cluster), executes
notebooks against them with the same runner instructors use, and stops everything afterwards.
Outputs are not compared here (they name the cluster); nbval compares them in local mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import cluster, processes, runner
from helpers.mlflow_server import mlflow_server
from helpers.paths import notebooks_dir

ROOT = Path(__file__).resolve().parents[1]
#: `make test` runs a smoke set that proves the switch works: chapter 00 (the environment) and chapter 03 (an MLlib
#: pipeline fitted and evaluated: Spark ML over the wire) on a standalone cluster and over Spark Connect, and chapter
#: 04 against an MLflow tracking server (the last test below). Every notebook runs once per `make test` under nbval in
#: local mode; running more of them here repeated that work (CI took 76 of its 90 minutes). `make test-cluster`
#: (CLUSTER_TESTS=all) runs every notebook on both modes: run it before changing the session, cluster, paths or
#: tracking code. It is where the cluster-only hazards are caught: 08's XGBoost barrier stage asking for no more tasks
#: than the application's share of the cores (`task_slots`), and 23's job tasks, Spark applications of their own that
#: wait for cores while the chapter's application holds its executors.
CLUSTER_NOTEBOOKS = ("00", "03")
#: The longest a notebook may take on a cluster before the test is stopped (pytest-timeout), per notebook run.
SECONDS_PER_NOTEBOOK = 420
#: A cell that runs longer than this is stopped and named (the slowest real cell, chapter 23's job, took 55 s
#: on a 2-core machine); the same limit nbval applies (`--nbval-cell-timeout` in the Makefile).
CELL_TIMEOUT = 300


def _selected() -> list[Path]:
    everything = runner.discover(notebooks_dir())
    if os.environ.get("CLUSTER_TESTS") == "all":
        return everything
    return [p for p in everything if p.name[:2] in CLUSTER_NOTEBOOKS]


def connect_exclusion(path: Path) -> str | None:
    """Why a notebook cannot run over Spark Connect, as declared in its metadata (None if it can)."""
    meta = nbformat.read(path, as_version=4).metadata.get("curriculum", {})
    return None if meta.get("spark_connect", True) else meta.get("spark_connect_reason", "no reason given")


def _run(notebooks: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tmp_path.mkdir(parents=True, exist_ok=True)
    results = runner.run(notebooks, tmp_path, "default", refresh=False, timeout=CELL_TIMEOUT)
    failures = [r for r in results if r.status != "ok"]
    assert not failures, "; ".join(f"{r.notebook}: {r.error}" for r in failures)


@pytest.fixture
def no_leftovers():
    """Every server a test starts is stopped by the time the test ends (deliberate `make cluster-up` aside)."""
    deliberate = [server.pid for server in cluster.running_servers()]
    yield
    left = processes.own_leftovers(exclude=deliberate)
    assert not left, f"servers left running: {left}"


def _time_limit() -> int:
    """Seconds for a test that runs the selected notebooks (a hung one fails the test instead of CI's whole run)."""
    return SECONDS_PER_NOTEBOOK * (len(_selected()) + 1)


@pytest.mark.timeout(_time_limit())
def test_notebooks_run_on_a_standalone_cluster(tmp_path, monkeypatch, no_leftovers) -> None:
    with cluster.standalone_cluster(workers=1, cores_per_worker=2) as master:
        # An application gets its share of the cores, and task_slots says so: a barrier stage asks for no more.
        probe = "from helpers.spark import spark_session, task_slots; s = spark_session('slots'); print(task_slots(s))"
        slots = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT,
                               env={**os.environ, "SPARK_MASTER": master})
        assert slots.stdout.strip() == str(cluster.default_cores(workers=1, cores_per_worker=2)), slots.stderr[-2000:]
        _run(_selected(), tmp_path, monkeypatch, SPARK_MASTER=master)


def test_task_slots_says_when_no_executor_registers(no_leftovers) -> None:
    with cluster.standalone_cluster(workers=0) as master:  # a master with no worker: no executor can start
        probe = ("from helpers.spark import spark_session, task_slots; s = spark_session('no slots'); "
                 "task_slots(s, wait_seconds=2)")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "SPARK_MASTER": master})
    assert done.returncode != 0
    assert f"No executor of {master} registered within 2 s" in done.stderr
    assert "Is a worker running, with free cores?" in done.stderr


@pytest.mark.timeout(_time_limit())
def test_notebooks_run_over_spark_connect(tmp_path, monkeypatch, no_leftovers) -> None:
    runnable = [p for p in _selected() if connect_exclusion(p) is None]
    skipped = {p.name: connect_exclusion(p) for p in _selected() if connect_exclusion(p) is not None}
    with cluster.connect_server() as url:
        _run(runnable, tmp_path, monkeypatch, SPARK_REMOTE=url)
    if skipped:
        print("skipped over Spark Connect, as declared:", skipped)


def test_a_standalone_master_shares_its_cores_between_applications() -> None:
    assert cluster.default_cores(workers=1, cores_per_worker=2) == 1
    assert cluster.default_cores(workers=1, cores_per_worker=1) == 1
    assert cluster.default_cores(workers=4, cores_per_worker=8) == 16


def test_every_connect_exclusion_gives_a_reason() -> None:
    for path in runner.discover(notebooks_dir()):
        reason = connect_exclusion(path)
        assert reason is None or len(reason) > 20, f"{path.name} must say why it cannot run over Spark Connect"


@pytest.mark.timeout(2 * SECONDS_PER_NOTEBOOK)
def test_tracking_notebook_logs_to_an_mlflow_server(tmp_path, monkeypatch, no_leftovers) -> None:
    with mlflow_server(tmp_path / "server") as uri:
        _run([p for p in runner.discover(notebooks_dir()) if p.name.startswith("04")], tmp_path / "out", monkeypatch,
             MLFLOW_TRACKING_URI=uri)
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("04-mlflow-tracking")
        assert experiment is not None
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) >= 8
        logged = [r for r in runs if r.info.run_name == "elastic-net, by hand"][0]
        assert logged.data.metrics["r2"] > 0.8
        assert any((tmp_path / "server" / "artifacts").rglob("MLmodel")), (
            "the model went to the server's artifact store"
        )


def test_the_smoke_set_proves_both_switches() -> None:
    """`make test`'s cluster set: chapter 00 and an MLlib chapter, both runnable over Spark Connect too."""
    smoke = [p for p in runner.discover(notebooks_dir()) if p.name[:2] in CLUSTER_NOTEBOOKS]
    assert [p.name[:2] for p in smoke][0] == "00"
    mllib = [p for p in smoke if "pyspark.ml" in p.read_text() and connect_exclusion(p) is None]
    assert mllib, "the smoke set needs an MLlib chapter that runs on both a standalone cluster and Spark Connect"
