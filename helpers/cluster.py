"""Real Spark cluster modes on this machine: a standalone master with workers, and a Spark Connect server.

Teams run the notebooks against a cluster by setting ``SPARK_MASTER`` or ``SPARK_REMOTE``; this module
starts the same kinds of servers on 127.0.0.1 so the test suite (and a curious learner) can prove the
notebooks run unchanged there::

    python -m helpers.cluster up        # standalone master + worker, and a Spark Connect server
    python -m helpers.cluster status
    python -m helpers.cluster down      # stops everything `up` started
    python -m helpers.cluster up --isolated   # the workers cannot see the driver's .work/ or /tmp

Each server runs in its own process group, so stopping it stops every child it spawned (executors,
Python workers). What is running is recorded in ``.work/cluster/state.json``.

On a real cluster the executors run on other machines: they see the libraries installed on every node and
shared storage, never the driver's disk. An *isolated* worker gives one machine that property: it runs in a
mount namespace of its own (Linux ``unshare``) where the driver's work folder and temporary folder are empty
tmpfs mounts, while the repository, its environment and a shared work folder (``CURRICULUM_WORK_DIR``) stay
visible. A notebook that leaves a file on the driver's disk for a task to read fails there as it would on a
real cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from helpers.java import ensure_java
from helpers.paths import WORK_ENV, project_root, work_dir
from helpers.processes import alive, launch, port_open, stop_group, wait_until
from helpers.spark import DEFAULT_DRIVER_MEMORY, DRIVER_MEMORY_ENV, free_port

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


def driver_local_folders() -> list[Path]:
    """The folders an isolated worker must not see: the default work folder (``.work/``) and the temporary folder,
    where the driver keeps what it writes for itself."""
    return [project_root() / ".work", Path(tempfile.gettempdir())]


def worker_visible_folders() -> list[Path]:
    """The folders an isolated worker still sees, even where they lie inside a hidden one: the repository (and the
    environment within it), the interpreter's environment, and the work folder when ``CURRICULUM_WORK_DIR`` sets
    one."""
    folders = [project_root(), Path(sys.prefix)]
    if os.environ.get(WORK_ENV):
        folders.append(Path(os.environ[WORK_ENV]))
    return folders


def isolation_script(hidden: Sequence[Path], visible: Sequence[Path]) -> str:
    """A POSIX shell script, run inside a fresh mount namespace, that covers each ``hidden`` folder with an empty
    tmpfs and then mounts back each ``visible`` folder that lay below one (a clone in ``/tmp`` stays visible).
    A visible folder is held open (a file descriptor) before it is covered, and bound back from that descriptor.
    It ends with ``exec "$@"``: the worker command keeps the script's process id."""
    hidden = sorted({Path(os.path.abspath(p)) for p in hidden}, key=lambda p: len(p.parts))
    inner = sorted({Path(os.path.abspath(p)) for p in visible}, key=lambda p: len(p.parts))
    for folder in inner:
        if folder in hidden:
            raise ValueError(f"{folder} cannot be both hidden from the worker and visible to it; put the shared work "
                             f"folder ({WORK_ENV}) outside {', '.join(map(str, hidden))}")
    lines = ["set -e"]
    held = {}  # visible folder lying below a hidden one -> (the deepest hidden folder above it, its descriptor)
    for folder in inner:
        covering = [h for h in hidden if folder.is_relative_to(h)]
        # The environment inside a restored repository comes back with it.
        restored = covering and any(folder.is_relative_to(v) and v.is_relative_to(covering[-1]) for v in held)
        if covering and not restored:
            descriptor = 3 + len(held)
            if descriptor > 9:
                raise ValueError("too many visible folders inside hidden ones (a shell holds descriptors 3 to 9)")
            held[folder] = (covering[-1], descriptor)
            lines.append(f"exec {descriptor}<{shlex.quote(str(folder))}")
    for folder in hidden:
        lines.append(f"mount -t tmpfs driver-local {shlex.quote(str(folder))}")
        for kept, (covering, descriptor) in held.items():
            if covering == folder:
                # --no-canonicalize: resolving the descriptor's path would name the new, empty folder.
                lines += [f"mkdir -p {shlex.quote(str(kept))}",
                          f"mount --no-canonicalize --bind /proc/self/fd/{descriptor} {shlex.quote(str(kept))}"]
    lines += [f"exec {descriptor}<&-" for _, descriptor in held.values()]
    lines += ["cd /", 'exec "$@"']
    return "\n".join(lines)


def isolated_command(command: Sequence[str]) -> list[str]:
    """``command`` wrapped to run in a mount namespace of its own that hides the driver-local folders."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        raise RuntimeError("An isolated worker needs Linux's `unshare` (util-linux): it hides the driver's folders "
                           "in a mount namespace. On this system run the cluster tests without isolation, or on Linux.")
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:  # an unprivileged user may mount inside a user namespace of its own
        namespace[1:1] = ["--user", "--map-root-user"]
    script = isolation_script(driver_local_folders(), worker_visible_folders())
    return [*namespace, "sh", "-c", script, "isolated-worker", *command]


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
    except (OSError, ValueError):  # not listening yet, or (a busy machine, seen in CI) an empty page while it starts
        return 0


def default_cores(workers: int, cores_per_worker: int) -> int:
    """The cores the master gives an application that does not ask (``spark.deploy.defaultCores``): half the
    cluster, at least one. A standalone master otherwise gives the first application *every* core, and a job's
    task notebooks — applications of their own, started while the notebook that runs the job holds its
    executors — would wait for cores forever. An application that needs more sets ``spark.cores.max``."""
    return max(1, workers * cores_per_worker // 2)


def start_standalone(workers: int = 1, cores_per_worker: int = 2, memory_per_worker: str = "2g",
                     isolated: bool = False) -> list[Server]:
    """A standalone master and ``workers`` workers on 127.0.0.1, shared by applications (``default_cores``);
    returns once the workers registered. ``isolated`` workers cannot see the driver's ``.work/`` or temporary
    folder (see the module's introduction); they see ``CURRICULUM_WORK_DIR`` as it is set now."""
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
        command = [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
                   "--cores", str(cores_per_worker), "--memory", memory_per_worker, "--webui-port", str(worker_ui)]
        extra_env = None
        if isolated:
            command = isolated_command(command)
            # Inside the namespace the temporary folder is the worker's own tmpfs, like a node's local disk.
            extra_env = {"SPARK_WORKER_DIR": str(Path(tempfile.gettempdir()) / "spark-worker")}
        servers.append(_launch(f"worker-{index + 1}", command, url=master_url, ui=f"http://127.0.0.1:{worker_ui}",
                               extra_env=extra_env))
    try:
        _wait(lambda: _alive_workers(ui_port) >= workers, f"{workers} worker(s) registered", master)
    except BaseException:
        stop(servers)  # whatever went wrong, leave no master or worker behind
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
        # The server is the driver of every client's queries, and keeps their cached tables: as much memory as a
        # local session's driver gets (spark-submit's default of 1g ran out broadcasting chapter 25's join).
        "--driver-memory", os.environ.get(DRIVER_MEMORY_ENV, DEFAULT_DRIVER_MEMORY),
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
def standalone_cluster(workers: int = 1, cores_per_worker: int = 2, isolated: bool = False) -> Iterator[str]:
    """A standalone cluster for the duration of a ``with`` block; yields its ``spark://`` URL."""
    servers = start_standalone(workers, cores_per_worker, isolated=isolated)
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
    parser.add_argument("--isolated", action="store_true",
                        help="workers that cannot see the driver's .work/ or /tmp, as on a multi-node cluster")
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
        running = [*start_standalone(args.workers, isolated=args.isolated), start_connect_server()]
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
