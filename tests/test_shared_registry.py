"""On a shared tracking server the notebooks register models under names of the learner's own and never delete a
registered model unless told to (``CURRICULUM_RESET_MODELS=1``); on a personal store nothing changes."""

from __future__ import annotations

import pytest

from helpers import tracking


@pytest.mark.parametrize(("uri", "shared"), [
    ("sqlite:///somewhere/mlflow.db", False), ("file:///somewhere/mlruns", False), ("/somewhere/mlruns", False),
    ("http://mlflow.team:5000", True), ("https://mlflow.example.org", True), ("databricks", True),
])
def test_a_server_is_shared_and_a_database_file_is_personal(uri: str, shared: bool) -> None:
    assert tracking.is_shared_store(uri) is shared


def test_names_are_unchanged_on_a_personal_store(monkeypatch) -> None:
    monkeypatch.delenv(tracking.TRACKING_ENV, raising=False)
    monkeypatch.delenv(tracking.MODEL_SCHEMA_ENV, raising=False)
    assert tracking.registered_name("flight_delay") == "flight_delay"


def test_names_carry_the_learner_on_a_shared_server(monkeypatch) -> None:
    monkeypatch.setenv(tracking.TRACKING_ENV, "http://mlflow.team:5000")
    monkeypatch.delenv(tracking.MODEL_SCHEMA_ENV, raising=False)
    monkeypatch.setenv(tracking.LEARNER_ENV, "Alice Smith")
    assert tracking.registered_name("flight_delay") == "flight_delay__alice_smith"
    monkeypatch.setenv(tracking.LEARNER_ENV, "bob")
    assert tracking.registered_name("flight_delay") == "flight_delay__bob"
    monkeypatch.setenv(tracking.LEARNER_ENV, "!!!")
    with pytest.raises(ValueError, match="CURRICULUM_LEARNER"):
        tracking.registered_name("flight_delay")


def test_a_unity_catalog_schema_gives_three_level_names(monkeypatch) -> None:
    monkeypatch.setenv(tracking.TRACKING_ENV, "databricks")
    monkeypatch.setenv(tracking.MODEL_SCHEMA_ENV, "main.alice")
    assert tracking.registered_name("flight_delay") == "main.alice.flight_delay"
    monkeypatch.setenv(tracking.MODEL_SCHEMA_ENV, "alice")
    with pytest.raises(ValueError, match="catalog.schema"):
        tracking.registered_name("flight_delay")


def test_reset_refuses_on_a_shared_server_unless_told_and_loses_nothing(tmp_path, monkeypatch) -> None:
    import mlflow

    from helpers import registry
    from helpers.mlflow_server import mlflow_server

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with mlflow_server(tmp_path / "server") as uri:
        try:
            monkeypatch.setenv(tracking.TRACKING_ENV, uri)
            monkeypatch.setenv(tracking.LEARNER_ENV, "alice")
            monkeypatch.delenv(tracking.RESET_ENV, raising=False)
            monkeypatch.delenv(tracking.MODEL_SCHEMA_ENV, raising=False)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            name = tracking.registered_name("flight_delay")
            assert name == "flight_delay__alice"
            assert registry.reset(name) is False  # nothing there: nothing to refuse
            mlflow.MlflowClient().create_registered_model(name)
            with pytest.raises(registry.SharedRegistryError) as refused:
                registry.reset(name)
            message = str(refused.value)
            assert all(part in message for part in (name, uri, "CURRICULUM_RESET_MODELS=1", "CURRICULUM_LEARNER",
                                                    "Nothing was deleted"))
            assert registry.exists(name)
            monkeypatch.setenv(tracking.RESET_ENV, "1")
            assert registry.reset(name) is True
            assert not registry.exists(name)
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])
