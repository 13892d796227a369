"""helpers.serving: a real ``mlflow models serve`` of a small model registered in a throw-away SQLite store
(never the project's .work/mlflow) — request formats, bad requests, a burst of 2,000 requests, and no
server process left behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import delays, registry, serving
from helpers.processes import leftovers
from tests.conftest import fresh_mlflow_store
from tests.test_registry import synthetic_flights

# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SQLite store in which a small logistic regression (trained on synthetic flights) is version 1
    of ``flight_delay`` and holds the ``champion`` alias; MLflow's global state is restored afterwards."""
    import mlflow

    work = tmp_path_factory.mktemp("serving") / "work"
    with pytest.MonkeyPatch.context() as patch, fresh_mlflow_store(work, "serving-tests", patch) as uri:
        candidate = delays.Candidate("logistic", {"C": 1.0}, "test model")
        train = synthetic_flights(600)
        info = delays.log_candidate(delays.train_candidate(candidate, train), candidate, train, run_name="served")
        version = registry.register(info, delays.MODEL_NAME)
        mlflow.MlflowClient().set_registered_model_alias(delays.MODEL_NAME, registry.CHAMPION, version.version)
        yield uri


@pytest.fixture(scope="module")
def server(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[serving.ModelServer]:
    """One server of ``flight_delay@champion`` for the module; its whole process group is gone afterwards."""
    with serving.model_server(delays.CHAMPION_URI, tmp_path_factory.mktemp("server")) as running:
        yield running
    assert serving.group_members(running.pid) == []
    assert not serving.running(running)


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    frame = synthetic_flights(40, seed=1)[delays.FEATURES]
    frame.loc[frame.index[:3], "temp"] = np.nan  # missing weather is allowed: a double column may hold null
    return frame


# ------------------------------------------------------------------------------------------ no server


def test_payloads_name_the_columns_and_send_missing_values_as_null(flights: pd.DataFrame) -> None:
    split = serving.split_payload(flights.head(2))["dataframe_split"]
    assert split["columns"] == delays.FEATURES and len(split["data"]) == 2 and "index" not in split
    assert split["data"][0][delays.FEATURES.index("temp")] is None
    records = serving.records_payload(flights.head(2))["dataframe_records"]
    assert list(records[0]) == delays.FEATURES and records[0]["temp"] is None
    assert "NaN" not in json.dumps(serving.split_payload(flights))  # strict JSON


def test_error_message_keeps_the_part_that_names_the_problem() -> None:
    mlflow_error = json.dumps({"error_code": "BAD_REQUEST", "message": "Failed to predict data ' a\n0 1'. \n"
                               "Error: Failed to enforce schema of data ' a\n0 1' with schema 'x'. "
                               "Error: Model is missing inputs ['carrier']."})
    assert serving.error_message(mlflow_error) == "Model is missing inputs ['carrier']."
    assert serving.error_message("Plain text 415 answer") == "Plain text 415 answer"
    unordered = json.dumps({"message": "one of the input fields {'inputs', 'dataframe_split'}."})
    assert serving.error_message(unordered) == "one of the input fields {'dataframe_split', 'inputs'}."
    assert len(serving.error_message("x" * 500, limit=50)) == 50


def test_command_and_version_resolution(store: str) -> None:
    command = serving.serve_command(delays.CHAMPION_URI, 5123)
    assert command[1:5] == ["-m", "mlflow", "models", "serve"]
    assert command[command.index("--env-manager") + 1] == "local" and "127.0.0.1" in command
    assert serving.resolve_version(delays.CHAMPION_URI) == "1"
    assert serving.resolve_version(f"models:/{delays.MODEL_NAME}/7") == "7"
    assert serving.resolve_version(f"models:/{delays.MODEL_NAME}@nobody") is None
    assert serving.resolve_version("runs:/abc/model") is None
    assert serving.server_environment()["MLFLOW_TRACKING_URI"] == store


# ------------------------------------------------------------------------------------------ one server


def test_both_json_forms_agree_with_the_local_model(server: serving.ModelServer, flights: pd.DataFrame) -> None:
    import mlflow

    assert server.version == "1" and serving.healthy(server.url)
    local = np.asarray(mlflow.pyfunc.load_model(delays.CHAMPION_URI).predict(flights), dtype="float64")
    for orient in ("split", "records"):
        served = serving.predict(server.url, flights, orient)
        assert served.shape == (len(flights), 2)
        np.testing.assert_allclose(served, local, rtol=1e-9, atol=1e-12)


BAD_REQUESTS = {
    "malformed JSON": ('{"dataframe_split": {"columns": ["month"', serving.JSON, 400, "JSONDecodeError"),
    "wrong content type": (None, "text/plain", 415, "content types"),
    "missing column": ("drop carrier", serving.JSON, 400, "missing inputs ['carrier']"),
    "wrong type": ("distance far", serving.JSON, 400, "distance"),
    "unknown format": ('{"rows": []}', serving.JSON, 400, "dataframe_split"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_that_names_the_problem(server: serving.ModelServer, flights: pd.DataFrame,
                                                       case: str) -> None:
    body, content_type, status, needle = BAD_REQUESTS[case]
    rows = flights.head(2)
    if body is None:
        body = json.dumps(serving.split_payload(rows))
    elif body == "drop carrier":
        body = json.dumps(serving.split_payload(rows.drop(columns=["carrier"])))
    elif body == "distance far":
        body = json.dumps(serving.split_payload(rows.astype({"distance": "object"}).assign(distance="far")))
    answer, text = serving.request(server.url, body=body, content_type=content_type)
    assert answer == status
    assert needle in serving.error_message(text, limit=2000)


# ------------------------------------------------------------------------------------------ load, clean-up


def test_benchmark_burst_loses_nothing_and_leaves_nothing_running(store: str, tmp_path: Path,
                                                                   server: serving.ModelServer) -> None:
    result = serving.benchmark(tmp_path, requests=2000, threads=4, tracking_uri=store)
    assert result is not None and result["version"] == "1"
    assert result["requests"] == 2000 and result["lost"] == 0 and result["server_errors"] == 0
    assert result["errors"] == 0  # every request answered 200 with one prediction per row sent
    assert 0 < result["p50_ms"] <= result["p99_ms"] and result["requests_per_s"] > 0
    assert json.loads((tmp_path / "serving.json").read_text())["requests"] == 2000
    # the benchmark's own server (and its uvicorn child) is gone; only the module's server is still up
    assert [p for p in leftovers(exclude=[server.pid]) if p.name == serving.SERVER_NAME] == []


def test_burst_counts_one_prediction_per_row(server: serving.ModelServer, flights: pd.DataFrame) -> None:
    result = serving.burst(server.url, flights, requests=60, threads=3, rows_per_request=4)
    assert result.answered == 60 and result.errors == 0 and (result.predictions == 4).all()
    assert serving.latency_table({"burst": result}).loc["burst", "requests"] == 60


def test_benchmark_without_a_champion_returns_none(store: str, tmp_path: Path) -> None:
    assert serving.benchmark(tmp_path, model_uri="models:/no_such_model@champion", tracking_uri=store) is None


def test_a_server_that_cannot_start_raises_with_its_log_and_leaves_nothing(store: str, tmp_path: Path,
                                                                          server: serving.ModelServer) -> None:
    with pytest.raises(RuntimeError, match="did not become ready"):
        with serving.model_server("models:/no_such_model/1", tmp_path, timeout_s=90):
            pass  # pragma: no cover - never reached
    assert [p for p in leftovers(exclude=[server.pid]) if p.name == serving.SERVER_NAME] == []
