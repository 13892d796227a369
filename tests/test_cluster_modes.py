"""The promise to teams: the same notebooks run unchanged on a real Spark cluster and a shared MLflow server.

Each test starts real servers on 127.0.0.1 with the project's own code (helpers.cluster), executes
notebooks against them with the same runner instructors use, and stops everything afterwards.
Outputs are not compared here (they name the cluster); nbval compares them in local mode.

The standalone cluster's worker is *isolated* (``helpers.cluster``): it runs in a mount namespace of its own and
cannot see the driver's ``.work/`` or temporary folder, as a worker on another machine could not. The notebooks run
there as a team runs them: the work folder on storage every node sees (``CURRICULUM_WORK_DIR``, here a folder
below ``SHARED_STORAGE``, standing for a network share or a Databricks volume) and a tracking server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
import pytest

from helpers import cluster, processes, runner
from helpers.mlflow_server import mlflow_server
from helpers.paths import WORK_ENV, notebooks_dir, project_root

ROOT = Path(__file__).resolve().parents[1]
#: `make test` runs a smoke set that proves the switch works: chapter 00 (the environment) and chapter 03 (an MLlib
#: pipeline fitted and evaluated: Spark ML over the wire) on a standalone cluster and over Spark Connect, chapter 19
#: (batch scoring: the executors load the champion model from the shared work folder) on the isolated standalone
#: cluster, and chapter 04 against an MLflow tracking server (the last test below). Every notebook runs once per
#: `make test` under nbval in local mode; running more of them here repeated that work (CI took 76 of its 90
#: minutes). `make test-cluster` (CLUSTER_TESTS=all) runs every notebook on both modes, the standalone one isolated,
#: with a shared work folder and a tracking server: run it before changing the session, cluster, paths or tracking
#: code. It is where the cluster-only hazards are caught: 08's XGBoost barrier stage asking for no more tasks
#: than the application's share of the cores (`task_slots`), and 23's job tasks, Spark applications of their own that
#: wait for cores while the chapter's application holds its executors.
CLUSTER_NOTEBOOKS = ("00", "03")
#: The smoke set's chapter whose executors load a model, run on the isolated standalone cluster only.
EXECUTOR_MODEL_NOTEBOOKS = ("19",)
#: Stands for the storage every node of a real cluster mounts; outside the folders an isolated worker cannot see.
SHARED_STORAGE = Path("/var/tmp")
#: The longest a notebook may take on a cluster before the test is stopped (pytest-timeout), per notebook run.
SECONDS_PER_NOTEBOOK = 420
#: A cell that runs longer than this is stopped and named (the slowest real cell, chapter 23's job, took 55 s
#: on a 2-core machine); the same limit nbval applies (`--nbval-cell-timeout` in the Makefile).
CELL_TIMEOUT = 300


def _selected(standalone: bool = False) -> list[Path]:
    """The notebooks a cluster test runs: the smoke set; every notebook with CLUSTER_TESTS=all; or the chapters
    CLUSTER_TESTS lists (CLUSTER_TESTS=18,21 reruns two chapters after a fix)."""
    everything = runner.discover(notebooks_dir())
    chosen = os.environ.get("CLUSTER_TESTS", "")
    if chosen == "all":
        return everything
    if chosen:
        return [p for p in everything if p.name[:2] in {n.strip().zfill(2) for n in chosen.split(",")}]
    smoke = CLUSTER_NOTEBOOKS + (EXECUTOR_MODEL_NOTEBOOKS if standalone else ())
    return [p for p in everything if p.name[:2] in smoke]


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


def _time_limit(standalone: bool = False) -> int:
    """Seconds for a test that runs the selected notebooks (a hung one fails the test instead of CI's whole run)."""
    return SECONDS_PER_NOTEBOOK * (len(_selected(standalone)) + 1)


@pytest.fixture
def shared_work_dir(monkeypatch):
    """A work folder on the 'shared storage' (``CURRICULUM_WORK_DIR``), set before the cluster starts so that the
    isolated worker sees it and its executors inherit it; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="curriculum-shared-", dir=SHARED_STORAGE))
    monkeypatch.setenv(WORK_ENV, str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a driver of its own) with ``env`` on top of this process's environment;
    a variable set to "" is removed."""
    environment = {**os.environ, **env}
    environment = {key: value for key, value in environment.items() if value != ""}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=environment)


@pytest.mark.timeout(_time_limit(standalone=True))
def test_notebooks_run_on_a_standalone_cluster(tmp_path, monkeypatch, shared_work_dir, no_leftovers) -> None:
    with mlflow_server(tmp_path / "tracking") as tracking, \
            cluster.standalone_cluster(workers=1, cores_per_worker=2, isolated=True) as master:
        # An application gets its share of the cores, and task_slots says so: a barrier stage asks for no more.
        slots = _python("from helpers.spark import spark_session, task_slots; print(task_slots(spark_session('s')))",
                        SPARK_MASTER=master)
        assert slots.stdout.strip() == str(cluster.default_cores(workers=1, cores_per_worker=2)), slots.stderr[-2000:]
        _run(_selected(standalone=True), tmp_path / "out", monkeypatch, SPARK_MASTER=master,
             MLFLOW_TRACKING_URI=tracking)


ISOLATION_PROBE = """
    import json, os, tempfile
    from pathlib import Path
    from helpers.paths import project_root, work_dir
    from helpers.spark import spark_session

    spark = spark_session("isolation")
    places = {"temporary folder": Path(tempfile.mkdtemp()) / "driver.txt",
              "default work folder": project_root() / ".work" / "isolation-probe.txt",
              "shared work folder": work_dir() / "isolation-probe.txt"}
    for path in places.values():
        path.write_text("written by the driver")
    places["repository"] = project_root() / "datasets" / "manifest.json"

    def seen_by_a_task(item):
        import os
        return item[0], os.path.exists(item[1])

    try:
        print(json.dumps(dict(spark.sparkContext.parallelize([(k, str(v)) for k, v in places.items()], 1)
                              .map(seen_by_a_task).collect())))
    finally:
        for name in ("temporary folder", "default work folder", "shared work folder"):
            places[name].unlink()
"""


@pytest.mark.timeout(2 * SECONDS_PER_NOTEBOOK)
def test_an_isolated_worker_sees_shared_storage_not_the_drivers_disk(shared_work_dir, no_leftovers) -> None:
    with cluster.standalone_cluster(workers=1, cores_per_worker=2, isolated=True) as master:
        isolation = _python(ISOLATION_PROBE, SPARK_MASTER=master)
        assert isolation.returncode == 0, isolation.stderr[-3000:]
        assert json.loads(isolation.stdout.strip().splitlines()[-1]) == {
            "temporary folder": False, "default work folder": False, "shared work folder": True, "repository": True}

        # The session refuses, before any chapter's job, a work folder the executors cannot see: unset (the
        # driver's .work/) or set to a folder on the driver's own disk.
        unset = _python("from helpers.spark import spark_session; spark_session('unset')", SPARK_MASTER=master,
                        **{WORK_ENV: ""})
        driver_local = Path(tempfile.mkdtemp(prefix="driver-local-"))
        try:
            local = _python("from helpers.spark import spark_session; spark_session('local')", SPARK_MASTER=master,
                            **{WORK_ENV: str(driver_local)})
        finally:
            shutil.rmtree(driver_local)
    for refused, why in ((unset, f"{WORK_ENV} is unset, so the work folder is the driver's own "
                                 f"{project_root() / '.work'}"),
                         (local, f"{WORK_ENV}={driver_local} is not on storage they share")):
        assert refused.returncode != 0
        assert f"The executors of {master} cannot see the work folder" in refused.stderr, refused.stderr[-3000:]
        assert why in refused.stderr
        assert f"Set {WORK_ENV} to such a folder for the driver and for every worker" in refused.stderr
    assert not list((project_root() / ".work").glob(".shared-check-*")), "the marker files are removed"


def test_the_isolation_script_hides_driver_folders_and_keeps_a_repository_inside_them() -> None:
    script = cluster.isolation_script(hidden=[Path("/tmp"), Path("/tmp/clone/.work")],
                                      visible=[Path("/tmp/clone"), Path("/tmp/clone/.venv"), Path("/mnt/share")])
    assert script.splitlines() == [
        "set -e",
        "exec 3</tmp/clone",  # held open before /tmp is covered
        "mount -t tmpfs driver-local /tmp",
        "mkdir -p /tmp/clone",
        "mount --no-canonicalize --bind /proc/self/fd/3 /tmp/clone",
        "mount -t tmpfs driver-local /tmp/clone/.work",  # covered after the repository came back
        "exec 3<&-",
        "cd /",
        'exec "$@"',
    ]
    with pytest.raises(ValueError, match="cannot be both hidden from the worker and visible to it"):
        cluster.isolation_script(hidden=[Path("/tmp")], visible=[Path("/tmp")])


def test_task_slots_says_when_no_executor_registers(no_leftovers) -> None:
    with cluster.standalone_cluster(workers=0) as master:  # a master with no worker: no executor can start
        # The session start waits for an executor (to check the work folder) and says when none comes.
        done = _python("import helpers.spark as s; s.EXECUTOR_WAIT_S = 2; s.spark_session('no slots')",
                       SPARK_MASTER=master)
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
    executors_load = [p for p in runner.discover(notebooks_dir()) if p.name[:2] in EXECUTOR_MODEL_NOTEBOOKS]
    assert any("mapInPandas" in p.read_text() or "spark_udf" in p.read_text() for p in executors_load), (
        "the standalone smoke set needs a chapter whose executors load a model")


def test_a_master_page_that_is_not_json_yet_counts_as_no_worker() -> None:
    """Seen in CI on a busy machine: the master's /json/ answered with an empty page while it started, and the
    JSON error escaped the start-up wait, leaving the master and worker running."""
    import http.server
    import threading

    class EmptyPage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), EmptyPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert cluster._alive_workers(server.server_address[1]) == 0
    finally:
        server.shutdown()
        server.server_close()
