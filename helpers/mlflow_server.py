"""A shared MLflow tracking server on 127.0.0.1, the way a team runs one: a SQLite (or any SQL) backend,
artifacts proxied by the server, optionally with MLflow's built-in basic-auth app.

Teams point every notebook at it with one variable, ``MLFLOW_TRACKING_URI=http://host:port``; the test
suite and notebook 24 start one here::

    with mlflow_server(work_dir("team-server")) as uri:
        ...                                   # MLFLOW_TRACKING_URI=uri

The server runs in its own process group (tagged, see :mod:`helpers.processes`) and is stopped when the
``with`` block ends, even on an error.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.processes import launch, stop_group, wait_until
from helpers.spark import free_port

STARTUP_TIMEOUT_S = 120


@dataclass(frozen=True)
class TrackingServer:
    """A running tracking server: its URL, its process group and its log file."""

    url: str
    pid: int
    log: Path


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def server_command(folder: Path, port: int, app_name: str | None = None) -> list[str]:
    """The ``mlflow server`` command line for a server whose state lives in ``folder``."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", (folder / "artifacts").as_uri(), "--serve-artifacts", "--workers", "1"]
    if app_name:
        command += ["--app-name", app_name]
    return command


def start(folder: Path, app_name: str | None = None, env: Mapping[str, str] | None = None) -> TrackingServer:
    """Start a tracking server whose database and artifacts live in ``folder``; returns once it answers."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port(5000)
    url = f"http://127.0.0.1:{port}"
    environment = dict(os.environ)
    environment.pop("MLFLOW_TRACKING_URI", None)  # the server must not try to track into another server
    environment.update(env or {})
    log = folder / "server.log"
    process = launch("mlflow-server", server_command(folder, port, app_name), log, env=environment, cwd=folder)
    wait_until(lambda: _healthy(url), f"MLflow answering on {url}/health", process.pid, log, STARTUP_TIMEOUT_S)
    return TrackingServer(url=url, pid=process.pid, log=log)


def stop(server: TrackingServer) -> None:
    """Stop the server and every process it started."""
    stop_group(server.pid)


@contextmanager
def mlflow_server(folder: Path, app_name: str | None = None, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A tracking server for the duration of a ``with`` block; yields its URL."""
    server = start(folder, app_name, env)
    try:
        yield server.url
    finally:
        stop(server)
