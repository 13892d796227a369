"""MLflow set-up: one tracking store for the whole curriculum and one experiment per notebook.

By default runs, models and the model registry live in a SQLite database inside ``.work/mlflow``
(the registry needs a database store; MLflow's plain file store cannot hold registered models).
Set ``MLFLOW_TRACKING_URI`` (for example ``http://mlflow.team:5000`` or ``databricks``) and the same
notebooks log to that server instead.
"""

from __future__ import annotations

import logging
import os

from helpers.paths import display_path, work_dir

TRACKING_ENV = "MLFLOW_TRACKING_URI"
# Alembic and MLflow announce every schema migration when a new SQLite store is created.
for _noisy in ("alembic", "mlflow.store.db.utils", "mlflow.store.model_registry"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def default_tracking_uri() -> str:
    return f"sqlite:///{work_dir('mlflow') / 'mlflow.db'}"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the project's local SQLite store."""
    return os.environ.get(TRACKING_ENV) or default_tracking_uri()


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:///") and uri.endswith(f"{work_dir('mlflow') / 'mlflow.db'}")


def use_experiment(name: str) -> str:
    """Point MLflow at the curriculum's store and at experiment ``name`` (created if new).

    Returns the experiment id. On the local store, artifacts go to ``.work/mlflow/artifacts/<name>``;
    on a server, the server decides (proxied artifacts or its default root).
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (work_dir("mlflow", "artifacts") / name).as_uri() if is_local_store(uri) else None
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def describe_store() -> str:
    """A one-line, machine-independent description of where runs are tracked."""
    uri = tracking_uri()
    if is_local_store(uri):
        return f"local SQLite store {display_path(work_dir('mlflow') / 'mlflow.db')} (open it with: make mlflow-ui)"
    return f"tracking server {uri}"
