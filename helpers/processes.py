"""Background servers the curriculum starts (Spark masters and workers, Spark Connect, MLflow servers,
model servers): launched in their own process group, tagged, stopped as a whole, and never left behind.

Every server is started by :func:`launch`, which marks it with the environment variable
``CURRICULUM_SERVER=<name>``. Children inherit the environment, so a server's own children (a model
server's uvicorn workers, a Spark worker's executors) carry the tag too. :func:`leftovers` finds every
tagged process still running, which is how the test suite proves that nothing is left running::

    python -m helpers.processes            # list tagged processes; exit 1 if any is not a deliberate cluster
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TAG = "CURRICULUM_SERVER"
#: Set by a test run (``tests/conftest.py``) and inherited by everything it starts, kernels included, so that
#: run judges only the servers it started itself, not another session's on a shared machine.
OWNER = "CURRICULUM_OWNER"


@dataclass(frozen=True)
class Tagged:
    """A running process started (directly or as a descendant) by :func:`launch`."""

    pid: int
    name: str
    command: str
    tagged: bool = True  # False: found only by its owner mark (a kernel, a JVM...), not started by launch()


def launch(name: str, command: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.Popen:
    """Start ``command`` in a new process group with its output appended to ``log``, tagged ``name``."""
    environment = dict(os.environ if env is None else env)
    environment[TAG] = name
    if os.environ.get(OWNER):
        environment.setdefault(OWNER, os.environ[OWNER])
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=environment, cwd=cwd, start_new_session=True)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def stop_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL whatever is left after ``grace_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        pass
    deadline = time.monotonic() + grace_s
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _reap(pid)


def stop_tree(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM ``pid`` and its descendants (a process that leads no group of its own), then SIGKILL what is left."""
    import psutil

    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for process in family:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive_still = psutil.wait_procs(family, timeout=grace_s)
    for process in alive_still:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive_still, timeout=grace_s)
    _reap(pid)


def _reap(pid: int) -> None:
    try:  # collect our own child's exit status so no zombie is left behind
        os.waitpid(pid, os.WNOHANG)
    except OSError:
        pass


def wait_until(ready: Callable[[], bool], what: str, process_pid: int, log: Path, timeout_s: float = 120.0) -> None:
    """Poll ``ready`` until it holds; if the process dies or time runs out, stop it and raise with its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive(process_pid):
            break
        time.sleep(0.25)
    stop_group(process_pid)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"The server did not become ready ({what}). Last lines of its log {log.name}:\n{tail}")


def leftovers(exclude: Sequence[int] = (), owner: str | None = None, everything: bool = False) -> list[Tagged]:
    """Every running process that carries the tag, except those in ``exclude`` and their descendants; with
    ``owner``, only those started under that ``CURRICULUM_OWNER`` value. With ``everything`` (and an ``owner``),
    every process started under that owner, tagged or not — notebook kernels, Spark JVMs and their Python workers,
    job task kernels, TorchDistributor workers — named by its tag if it has one, else by its program; this
    process itself is never counted."""
    import psutil

    if everything and owner is None:
        raise ValueError("everything=True needs an owner: untagged processes are judged by who started them")
    excluded = set(exclude)
    for pid in list(excluded):
        try:
            excluded.update(child.pid for child in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            pass
    excluded.add(os.getpid())  # this process, not its children: they are judged like any other
    found = []
    for process in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        if process.pid in excluded or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            environment = process.environ()
        except psutil.Error:
            continue
        if owner is not None and environment.get(OWNER) != owner:
            continue
        name = environment.get(TAG) or (process.info["name"] if everything else None)
        if name:
            command = " ".join(process.info["cmdline"] or [])[:200]
            found.append(Tagged(process.pid, name, command, tagged=TAG in environment))
    return found


def own_leftovers(exclude: Sequence[int] = ()) -> list[Tagged]:
    """``leftovers`` started under this process's ``CURRICULUM_OWNER`` (all of them when it is not set)."""
    return leftovers(exclude, owner=os.environ.get(OWNER) or None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.processes", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    from helpers.cluster import running_servers

    deliberate = [server.pid for server in running_servers()]
    left = leftovers(exclude=deliberate)
    for process in left:
        print(f"left running: pid {process.pid} ({process.name}): {process.command}")
    if deliberate:
        print(f"{len(deliberate)} server(s) from `make cluster-up` are running on purpose "
              "(`make cluster-down` stops them)")
    if not left:
        print("no curriculum server left running")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
