"""Real Spark cluster modes on this machine: a standalone master with workers, and a Spark Connect server.

Teams run the notebooks against a cluster by setting ``SPARK_MASTER`` or ``SPARK_REMOTE``; this module
starts the same kinds of servers on 127.0.0.1 so the test suite (and a curious learner) can prove the
notebooks run unchanged there::

    python -m helpers.cluster up        # standalone master + worker, and a Spark Connect server
    python -m helpers.cluster status
    python -m helpers.cluster down      # stops everything `up` started

Each server runs in its own process group, so stopping it stops every child it spawned (executors,
Python workers). What is running is recorded in ``.work/cluster/state.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from helpers.java import ensure_java
from helpers.paths import work_dir
from helpers.processes import alive, launch, port_open, stop_group, wait_until
from helpers.spark import free_port

STARTUP_TIMEOUT_S = 120


@dataclass
class Server:
    name: str
    pid: int
    url: str
    ui: str
    log: str


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _state_file() -> Path:
    return work_dir("cluster") / "state.json"


def _read_state() -> list[Server]:
    path = _state_file()
    return [Server(**entry) for entry in json.loads(path.read_text())] if path.exists() else []


def _write_state(servers: Sequence[Server]) -> None:
    _state_file().write_text(json.dumps([asdict(s) for s in servers], indent=2))


def _environment() -> dict[str, str]:
    ensure_java()
    env = dict(os.environ)
    env.update({
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(work_dir("cluster", "logs")),
        "SPARK_WORKER_DIR": str(work_dir("cluster", "worker")),
    })
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_MASTER", None)
    return env


def _launch(name: str, command: list[str], url: str, ui: str, extra_env: dict[str, str] | None = None) -> Server:
    log = work_dir("cluster", "logs") / f"{name}.log"
    env = {**_environment(), **(extra_env or {})}
    process = launch(f"spark-{name}", command, log, env=env, cwd=work_dir("cluster"))
    return Server(name=name, pid=process.pid, url=url, ui=ui, log=str(log))


def _wait(condition, what: str, server: Server) -> None:
    wait_until(condition, what, server.pid, Path(server.log), timeout_s=STARTUP_TIMEOUT_S)


def running_servers() -> list[Server]:
    """The servers `python -m helpers.cluster up` started that are still running."""
    return [server for server in _read_state() if alive(server.pid)]


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except OSError:
        return 0


def default_cores(workers: int, cores_per_worker: int) -> int:
    """The cores the master gives an application that does not ask (``spark.deploy.defaultCores``): half the
    cluster, at least one. A standalone master otherwise gives the first application *every* core, and a job's
    task notebooks — applications of their own, started while the notebook that runs the job holds its
    executors — would wait for cores forever. An application that needs more sets ``spark.cores.max``."""
    return max(1, workers * cores_per_worker // 2)


def start_standalone(workers: int = 1, cores_per_worker: int = 2, memory_per_worker: str = "2g") -> list[Server]:
    """A standalone master and ``workers`` workers on 127.0.0.1, shared by applications (``default_cores``);
    returns once the workers registered."""
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui_port = free_port(7077), free_port(8080)
    master_url = f"spark://127.0.0.1:{port}"
    sharing = {"SPARK_MASTER_OPTS": f"-Dspark.deploy.defaultCores={default_cores(workers, cores_per_worker)}"}
    master = _launch("master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(port), "--webui-port", str(ui_port)],
                     url=master_url, ui=f"http://127.0.0.1:{ui_port}", extra_env=sharing)
    _wait(lambda: port_open(port), f"master listening on {port}", master)
    servers = [master]
    for index in range(workers):
        worker_ui = free_port(8081 + index)
        servers.append(_launch(
            f"worker-{index + 1}",
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--cores", str(cores_per_worker), "--memory", memory_per_worker, "--webui-port", str(worker_ui)],
            url=master_url, ui=f"http://127.0.0.1:{worker_ui}"))
    try:
        _wait(lambda: _alive_workers(ui_port) >= workers, f"{workers} worker(s) registered", master)
    except RuntimeError:
        stop(servers)  # the master is already stopped; do not leave its workers behind
        raise
    return servers


def start_connect_server(master: str = "local[2]") -> Server:
    """A Spark Connect server (the protocol of Databricks Connect) on a free port of 127.0.0.1."""
    port = free_port(15002)
    log_config = Path(__file__).with_name("log4j2.properties")
    server = _launch("connect", [
        str(spark_home() / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master", master,
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", f"spark.driver.extraJavaOptions=-Dlog4j2.configurationFile={log_config}",
        "--conf", f"spark.sql.warehouse.dir={work_dir('cluster', 'connect-warehouse')}",
        "--conf", "spark.sql.execution.arrow.pyspark.enabled=true",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "spark-internal",
    ], url=f"sc://127.0.0.1:{port}", ui="")
    _wait(lambda: port_open(port), f"Spark Connect listening on {port}", server)
    return server


def stop(servers: Sequence[Server], grace_s: float = 10.0) -> None:
    """Stop each server's whole process group (SIGTERM, then SIGKILL after ``grace_s``)."""
    for server in servers:
        stop_group(server.pid, grace_s)


@contextmanager
def standalone_cluster(workers: int = 1, cores_per_worker: int = 2) -> Iterator[str]:
    """A standalone cluster for the duration of a ``with`` block; yields its ``spark://`` URL."""
    servers = start_standalone(workers, cores_per_worker)
    try:
        yield servers[0].url
    finally:
        stop(servers)


@contextmanager
def connect_server(master: str = "local[2]") -> Iterator[str]:
    """A Spark Connect server for the duration of a ``with`` block; yields its ``sc://`` URL."""
    server = start_connect_server(master)
    try:
        yield server.url
    finally:
        stop([server])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    running = running_servers()
    if args.action == "down":
        stop(running)
        _write_state([])
        print(f"stopped {len(running)} server(s)")
        return 0
    if args.action == "up":
        if running:
            print("already running; `python -m helpers.cluster down` first", file=sys.stderr)
            return 1
        running = [*start_standalone(args.workers), start_connect_server()]
        _write_state(running)
    for server in running:
        print(f"{server.name:<10} pid {server.pid:<7} {server.url:<28} {server.ui}")
    if args.action == "up":
        master = running[0].url
        connect = running[-1].url
        print(f"\nRun the notebooks on them:\n  SPARK_MASTER={master} make run\n  SPARK_REMOTE={connect} make run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
