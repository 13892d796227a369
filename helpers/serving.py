"""Real-time serving of a registered model over REST with ``mlflow models serve`` (notebook 21).

The scoring server MLflow ships is a FastAPI app run by ``uvicorn``: ``GET /ping`` (and ``/health``) answer
200 once the model is loaded, ``GET /version`` gives the **MLflow** version (not the model's), and
``POST /invocations`` takes JSON (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``), CSV
or Parquet and answers ``{"predictions": [...]}``. The server resolves a ``models:/name@alias`` URI **once, when
it starts**: moving the alias later changes nothing until a server is (re)started.

    with serving.model_server(delays.CHAMPION_URI, work_dir("serving")) as server:
        print(server.url, server.version)                      # the version the alias pointed to at start
        p = serving.predict(server.url, frame[delays.FEATURES])  # [[P(on time), P(late)], ...]
        result = serving.burst(server.url, frame[delays.FEATURES], requests=1000, threads=4)
        print(result.p50_ms, result.p99_ms, result.requests_per_s, result.errors)

The server runs in its own process group, tagged by :func:`helpers.processes.launch` (``mlflow models serve``
starts ``bash -c "exec uvicorn ..."``: the whole group is stopped), and the ``with`` block stops it even when
the code inside fails. ``python -m helpers.bench`` calls :func:`benchmark`.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from helpers.processes import alive, launch, stop_group, wait_until

if TYPE_CHECKING:
    import pandas as pd

#: The tag (``CURRICULUM_SERVER=<name>``) that marks a model server and its children.
SERVER_NAME = "model-server"
STARTUP_TIMEOUT_S = 120.0
JSON = "application/json"
#: The first port tried for a model server (the next free one from there is used).
FIRST_PORT = 5100


@dataclass(frozen=True)
class ModelServer:
    """A running scoring server: where it answers, what it serves, and how to stop it.

    ``version`` is the registry version ``model_uri`` resolved to just before the server started (None for a
    URI that is not a registered model's): the server itself does not report it.
    """

    url: str
    model_uri: str
    version: str | None
    pid: int
    log: Path
    startup_s: float

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)


# ------------------------------------------------------------------------------------------ the server


def resolve_version(model_uri: str) -> str | None:
    """The registry version a ``models:/name@alias`` or ``models:/name/<version>`` URI points to now (None when
    it is another kind of URI, or the alias does not exist)."""
    from helpers.registry import by_alias

    if not model_uri.startswith("models:/"):
        return None
    rest = model_uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        found = by_alias(name, alias)
        return None if found is None else str(found.version)
    name, _, version = rest.partition("/")
    return version if version.isdigit() else None


def serve_command(model_uri: str, port: int, workers: int = 1) -> list[str]:
    """The ``mlflow models serve`` command line: the current Python environment (``--env-manager local``),
    loopback only, ``workers`` uvicorn worker processes."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
            "--host", "127.0.0.1", "-p", str(port), "-w", str(workers)]


def server_environment(tracking_uri: str | None = None) -> dict[str, str]:
    """This process's environment for the server, with MLflow pointed at ``tracking_uri`` (the current one by
    default, so ``models:/`` URIs resolve against the same registry) and this environment's ``bin`` folder
    first on PATH (the server runs ``uvicorn`` by name)."""
    import mlflow

    environment = dict(os.environ)
    uri = tracking_uri or mlflow.get_tracking_uri()
    environment["MLFLOW_TRACKING_URI"] = uri
    environment["MLFLOW_REGISTRY_URI"] = mlflow.get_registry_uri() if tracking_uri is None else uri
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    return environment


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    """Whether the server at ``url`` answers ``GET /ping`` with 200 (it does once the model is loaded)."""
    try:
        status, _ = request(url, "/ping", method="GET", timeout_s=timeout_s)
    except OSError:
        return False
    return status == 200


def start(model_uri: str, folder: Path, workers: int = 1, timeout_s: float = STARTUP_TIMEOUT_S,
          tracking_uri: str | None = None) -> ModelServer:
    """Start a scoring server for ``model_uri`` on a free loopback port, its log in ``folder``; returns once it
    answers ``/ping``. Raises ``RuntimeError`` with the end of its log (and leaves nothing running) when it
    does not come up. Prefer :func:`model_server`; a server started here and never passed to :func:`stop` is
    stopped when this Python process exits."""
    from helpers.spark import free_port

    folder.mkdir(parents=True, exist_ok=True)
    version = resolve_version(model_uri)
    port = free_port(FIRST_PORT)
    url = f"http://127.0.0.1:{port}"
    log = folder / f"model-server-{port}.log"
    started = time.perf_counter()
    process = launch(SERVER_NAME, serve_command(model_uri, port, workers), log,
                     env=server_environment(tracking_uri), cwd=folder)
    _STARTED[process.pid] = process.pid
    try:
        wait_until(lambda: healthy(url), f"{model_uri} answering on {url}/ping", process.pid, log, timeout_s)
    except BaseException:  # not ready in time, died, or interrupted: nothing may be left running
        _stop_pid(process.pid)
        raise
    return ModelServer(url=url, model_uri=model_uri, version=version, pid=process.pid, log=log,
                       startup_s=time.perf_counter() - started)


def stop(server: ModelServer, grace_s: float = 10.0) -> None:
    """Stop the server's whole process group (``mlflow``, ``uvicorn`` and any worker processes) and wait,
    up to ``grace_s`` more seconds, until no process of the group is left."""
    _stop_pid(server.pid, grace_s)


def _stop_pid(pid: int, grace_s: float = 10.0) -> None:
    stop_group(pid, grace_s)
    deadline = time.monotonic() + grace_s
    while group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _STARTED.pop(pid, None)


#: Servers started by this process and not stopped yet: stopped when the interpreter exits (a notebook
#: that keeps a server across cells and fails before its ``stop`` cell still leaves nothing running).
_STARTED: dict[int, int] = {}


@atexit.register
def _stop_all() -> None:
    for pid in list(_STARTED):
        _stop_pid(pid, grace_s=5.0)


@contextmanager
def model_server(model_uri: str, folder: Path | None = None, workers: int = 1,
                 timeout_s: float = STARTUP_TIMEOUT_S, tracking_uri: str | None = None) -> Iterator[ModelServer]:
    """A scoring server for the duration of a ``with`` block (stopped even if the block fails). ``folder``
    holds its log (``work_dir("serving")`` by default)."""
    from helpers.paths import work_dir

    server = start(model_uri, folder or work_dir("serving"), workers, timeout_s, tracking_uri)
    try:
        yield server
    finally:
        stop(server)


def running(server: ModelServer) -> bool:
    """Whether the server's main process is still alive."""
    return alive(server.pid)


# ------------------------------------------------------------------------------------------ requests


def request(url: str, path: str = "/invocations", body: bytes | str | None = None, content_type: str = JSON,
            method: str = "POST", timeout_s: float = 30.0) -> tuple[int, str]:
    """One HTTP request to the server at ``url``: (status code, response text)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        payload = body.encode("utf-8") if isinstance(body, str) else body
        headers = {"Content-Type": content_type} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()


def split_payload(frame: pd.DataFrame) -> dict[str, Any]:
    """``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` — column names once, then rows of
    values; a missing value becomes JSON ``null``."""
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def records_payload(frame: pd.DataFrame) -> dict[str, Any]:
    """``{"dataframe_records": [{"column": value, ...}, ...]}`` — one object per row (wordier, but each row
    stands alone); a missing value becomes JSON ``null``."""
    return {"dataframe_records": json.loads(frame.to_json(orient="records"))}


PAYLOADS = {"split": split_payload, "records": records_payload}


def predict(url: str, frame: pd.DataFrame, orient: str = "split") -> np.ndarray:
    """The server's predictions for the rows of ``frame``, sent as ``dataframe_<orient>`` JSON. Raises
    ``RuntimeError`` with the server's message on any status but 200."""
    status, text = request(url, body=json.dumps(PAYLOADS[orient](frame)))
    if status != 200:
        raise RuntimeError(f"the server answered {status}: {text[:500]}")
    return np.asarray(json.loads(text)["predictions"], dtype="float64")


def error_message(text: str, limit: int = 240) -> str:
    """The part of an error response that names the problem, on one line of at most ``limit`` characters.

    From the ``message`` of MLflow's JSON error (a 415 answer is plain text), the ``Error:``-separated parts
    that do not echo the request's data back (MLflow prints the whole input frame, twice, before saying that a
    column is missing), without the echoed ``Input:``, joined by `` — ``; a set of names is sorted."""
    try:
        message = str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        message = text
    # a Python set of names ({'b', 'a'}) is printed in a different order by every server process: sort it
    message = re.sub(r"\{('[^'{}]*'(?:, '[^'{}]*')*)\}",
                     lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)
    parts = [" ".join(part.split()) for part in message.split("\nInput:")[0].split("Error: ")]
    kept = [part for part in parts if part and " data '" not in part] or parts[-1:]
    message = " — ".join(kept)
    return message if len(message) <= limit else message[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------ load


@dataclass
class Burst:
    """What a burst of requests measured: one entry per request, in the order they were sent."""

    latencies_ms: np.ndarray
    statuses: np.ndarray
    rows_sent: np.ndarray
    predictions: np.ndarray
    seconds: float
    threads: int
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return int(len(self.statuses))

    @property
    def answered(self) -> int:
        """Requests that got an HTTP response (any status)."""
        return int((self.statuses > 0).sum())

    @property
    def lost(self) -> int:
        """Requests that got no response at all (connection refused or reset, time-out)."""
        return self.requests - self.answered

    @property
    def errors(self) -> int:
        """Requests without a 200 answer holding one prediction per row sent."""
        return int(((self.statuses != 200) | (self.predictions != self.rows_sent)).sum())

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return int((self.statuses >= 500).sum())

    def percentile_ms(self, q: float) -> float:
        answered = self.latencies_ms[self.statuses > 0]
        return float(np.percentile(answered, q)) if len(answered) else float("nan")

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """The numbers ``helpers.bench`` reports, plus how many requests were lost or got a 5xx."""
        return {"requests": self.requests, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
                "requests_per_s": self.requests_per_s, "errors": self.errors, "lost": self.lost,
                "server_errors": self.server_errors, "threads": self.threads}


def burst(url: str, frame: pd.DataFrame, requests: int = 1000, threads: int = 4, rows_per_request: int = 1,
          timeout_s: float = 30.0) -> Burst:
    """Send ``requests`` POSTs to ``/invocations`` from ``threads`` client threads at once, each thread on its
    own keep-alive connection, as fast as answers come back. Request ``i`` carries ``rows_per_request``
    consecutive rows of ``frame`` starting at row ``i * rows_per_request`` (wrapping round), in
    ``dataframe_split`` form; the bodies are encoded before the clock starts. Latency is measured per
    request from send to the last byte of the answer."""
    count = len(frame)
    if count == 0:
        raise ValueError("frame has no rows to send")
    bodies = []
    for i in range(requests):
        rows = [(i * rows_per_request + k) % count for k in range(rows_per_request)]
        bodies.append(json.dumps(split_payload(frame.iloc[rows])).encode("utf-8"))
    latencies = np.full(requests, np.nan)
    statuses = np.zeros(requests, dtype="int64")
    predictions = np.zeros(requests, dtype="int64")
    failures: list[str] = []
    parts = urlsplit(url)
    next_index = iter(range(requests))
    lock = threading.Lock()

    def work() -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                sent = time.perf_counter()
                try:
                    connection.request("POST", "/invocations", body=bodies[i], headers={"Content-Type": JSON})
                    response = connection.getresponse()
                    text = response.read()
                except (OSError, http.client.HTTPException) as error:
                    connection.close()  # reconnect for the next request
                    with lock:
                        failures.append(f"request {i}: {error!r}")
                    continue
                latencies[i] = (time.perf_counter() - sent) * 1000
                statuses[i] = response.status
                if response.status == 200:
                    predictions[i] = len(json.loads(text)["predictions"])
        finally:
            connection.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=work, name=f"burst-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    return Burst(latencies, statuses, np.full(requests, rows_per_request, dtype="int64"), predictions, seconds,
                 threads, failures)


def example_rows(model_uri: str) -> pd.DataFrame:
    """The input example logged with the model (real rows of its training data), as a DataFrame."""
    import mlflow
    import pandas as pd

    example = mlflow.pyfunc.load_model(model_uri).input_example
    if example is None:
        raise ValueError(f"{model_uri} was logged without an input example")
    return example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)


def benchmark(out_dir: Path, model_uri: str | None = None, requests: int = 2000, threads: int = 4,
              tracking_uri: str | None = None) -> dict[str, Any] | None:
    """Latency and throughput of a freshly started server of ``model_uri`` (the flight-delay champion by
    default) over a burst of ``requests`` one-flight requests from ``threads`` threads, cycling through the
    rows of the model's input example. MLflow is pointed at ``tracking_uri`` (the curriculum's store by
    default). Returns ``{"requests", "p50_ms", "p99_ms", "requests_per_s", "errors", "lost",
    "server_errors", "threads", "startup_s", "version"}`` and writes it to ``out_dir/serving.json``; returns
    None when the registry has no such model (run notebook 18 or 21 first)."""
    import mlflow

    from helpers.delays import CHAMPION_URI
    from helpers.tracking import tracking_uri as curriculum_store

    uri = tracking_uri or curriculum_store()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model_uri = model_uri or CHAMPION_URI
    if model_uri.startswith("models:/") and resolve_version(model_uri) is None:
        return None
    rows = example_rows(model_uri)
    out_dir.mkdir(parents=True, exist_ok=True)
    with model_server(model_uri, out_dir, tracking_uri=uri) as server:
        request(server.url, body=json.dumps(split_payload(rows)))  # warm-up: first call pays lazy imports
        measured = burst(server.url, rows, requests=requests, threads=threads)
        result = {**measured.summary(), "startup_s": server.startup_s, "version": server.version}
    (out_dir / "serving.json").write_text(json.dumps(result, indent=2))
    return result


def latency_table(bursts: Mapping[str, Burst]) -> pd.DataFrame:
    """One row per named burst: requests, threads, p50/p90/p99 latency (ms), requests per second, errors."""
    import pandas as pd

    return pd.DataFrame([{
        "burst": name, "requests": b.requests, "threads": b.threads, "p50_ms": b.p50_ms,
        "p90_ms": b.percentile_ms(90), "p99_ms": b.p99_ms, "requests_per_s": b.requests_per_s,
        "errors": b.errors} for name, b in bursts.items()]).set_index("burst")


def group_members(pid: int) -> list[int]:
    """The live processes of the process group led by ``pid`` (the server and its uvicorn children)."""
    import psutil

    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pid:
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return members


__all__: Sequence[str] = (
    "SERVER_NAME", "ModelServer", "Burst", "resolve_version", "serve_command", "server_environment", "healthy",
    "start", "stop", "model_server", "running", "request", "split_payload", "records_payload", "predict",
    "error_message", "burst", "example_rows", "benchmark", "latency_table", "group_members",
)
