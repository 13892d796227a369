"""Servers are tagged, stopped with their whole process group, and found if left behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from helpers import processes

# A server that spawns a child of its own, as `mlflow models serve` spawns uvicorn.
PARENT_WITH_CHILD = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "time.sleep(60)\n"
)


def _tagged_within(pid: int) -> list[processes.Tagged]:
    import psutil

    family = {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    return [p for p in processes.leftovers() if p.pid in family]


def test_launch_tags_the_server_and_its_children_and_stop_group_ends_them_all(tmp_path: Path) -> None:
    server = processes.launch("test-server", [sys.executable, "-c", PARENT_WITH_CHILD], tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 20
        while len(_tagged_within(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        tagged = _tagged_within(server.pid)
        assert len(tagged) == 2, tagged
        assert {p.name for p in tagged} == {"test-server"}
        pids = [p.pid for p in tagged]
    finally:
        processes.stop_group(server.pid, grace_s=5)
    assert not any(processes.alive(pid) for pid in pids)
    assert all(p.pid not in pids for p in processes.leftovers())


def test_leftovers_honours_exclusions(tmp_path: Path) -> None:
    server = processes.launch("deliberate", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log")
    try:
        assert any(p.pid == server.pid for p in processes.leftovers())
        assert all(p.pid != server.pid for p in processes.leftovers(exclude=[server.pid]))
    finally:
        processes.stop_group(server.pid, grace_s=5)


def test_leftovers_by_owner_sees_only_that_runs_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setenv(processes.OWNER, "another-session")
    theirs = processes.launch("theirs", sleeper, tmp_path / "theirs.log")
    monkeypatch.setenv(processes.OWNER, "this-run")
    ours = processes.launch("ours", sleeper, tmp_path / "ours.log")
    try:
        deadline = time.monotonic() + 10
        while len({p.pid for p in processes.leftovers()} & {theirs.pid, ours.pid}) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        mine = {p.pid for p in processes.own_leftovers()}
        assert ours.pid in mine and theirs.pid not in mine
        assert {p.pid for p in processes.leftovers(owner="another-session")} == {theirs.pid}
        assert {theirs.pid, ours.pid} <= {p.pid for p in processes.leftovers()}
    finally:
        processes.stop_group(theirs.pid, grace_s=5)
        processes.stop_group(ours.pid, grace_s=5)


def test_wait_until_stops_a_server_that_never_gets_ready_and_shows_its_log(tmp_path: Path) -> None:
    log = tmp_path / "never.log"
    server = processes.launch("never-ready", [sys.executable, "-c", "print('listening soon', flush=True);"
                                              "import time; time.sleep(60)"], log)
    with pytest.raises(RuntimeError, match="listening soon"):
        processes.wait_until(lambda: False, "port 1 open", server.pid, log, timeout_s=2)
    assert not processes.alive(server.pid)


def test_port_open_sees_a_listener() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert processes.port_open(port)
    assert not processes.port_open(port)


class _Session:
    """What the leftover check reads of a pytest session: its plugins (no terminal here) and its exit status."""

    class config:  # noqa: N801 - mimics pytest's attribute
        class pluginmanager:  # noqa: N801
            @staticmethod
            def get_plugin(name: str) -> None:
                return None

    exitstatus = 0


def test_the_run_reports_and_stops_any_process_it_left_running_tagged_or_not() -> None:
    """A deliberately leaked kernel-like process (untagged, with a child of its own, as a kernel has its JVM) fails
    the run, is named, and is stopped; a process of another owner is left alone."""
    import os
    import subprocess

    from tests.conftest import report_leftovers

    owner = f"leak-test-{os.getpid()}"
    leaked = subprocess.Popen([sys.executable, "-c", PARENT_WITH_CHILD],
                              env={**os.environ, processes.OWNER: owner})
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 env={**os.environ, processes.OWNER: f"{owner}-other"})
    try:
        deadline = time.monotonic() + 20
        while len(processes.leftovers(owner=owner, everything=True)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        session = _Session()
        left = report_leftovers(session, owner, grace_s=1)
        assert {p.pid for p in left} >= {leaked.pid} and len(left) == 2, left
        assert all(not p.tagged and p.name.startswith("python") for p in left)
        assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
        assert not any(processes.alive(p.pid) for p in left), "the leftovers are stopped"
        assert processes.alive(bystander.pid), "another run's process is not this run's to stop"
        assert report_leftovers(_Session(), owner, grace_s=0) == []
    finally:
        for process in (leaked, bystander):
            processes.stop_tree(process.pid, grace_s=5)
            process.wait(timeout=10)


def test_everything_needs_an_owner() -> None:
    with pytest.raises(ValueError, match="needs an owner"):
        processes.leftovers(everything=True)
