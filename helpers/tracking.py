"""MLflow set-up: one tracking store for the whole curriculum and one experiment per notebook.

By default runs, models and the model registry live in a SQLite database inside ``.work/mlflow``
(the registry needs a database store; MLflow's plain file store cannot hold registered models).
Set ``MLFLOW_TRACKING_URI`` (for example ``http://mlflow.team:5000`` or ``databricks``) and the same
notebooks log to that server instead.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from helpers.paths import display_path, work_dir

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models.model import ModelInfo

TRACKING_ENV = "MLFLOW_TRACKING_URI"
#: Who is running the notebooks, for the names of their registered models on a shared server (default: the login).
LEARNER_ENV = "CURRICULUM_LEARNER"
#: A Unity Catalog schema (``catalog.schema``) for the registered models: names become ``catalog.schema.model``.
MODEL_SCHEMA_ENV = "CURRICULUM_MODEL_SCHEMA"
#: Set to 1 to let the notebooks delete the registered models they name for you on a shared server.
RESET_ENV = "CURRICULUM_RESET_MODELS"
# MLflow's download progress bars print rates and times that differ on every run: not notebook material.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Alembic and MLflow announce every schema migration when a new SQLite store is created.
# mlflow.spark logs temporary paths at INFO level on every model save.
for _noisy in ("alembic", "mlflow.store.db.utils", "mlflow.store.model_registry", "mlflow.spark"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def default_tracking_uri() -> str:
    return f"sqlite:///{work_dir('mlflow') / 'mlflow.db'}"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the project's local SQLite store."""
    return os.environ.get(TRACKING_ENV) or default_tracking_uri()


def is_local_store(uri: str) -> bool:
    return uri.startswith("sqlite:///") and uri.endswith(f"{work_dir('mlflow') / 'mlflow.db'}")


def is_shared_store(uri: str | None = None) -> bool:
    """Whether the tracking store may hold other people's work: a server (``http(s)://``, ``databricks``...). A SQLite
    database or a folder that ``MLFLOW_TRACKING_URI`` names is one person's."""
    uri = uri or tracking_uri()
    return not uri.startswith(("sqlite:", "file:", "/"))


def learner() -> str:
    """``$CURRICULUM_LEARNER``, else the login name, as lower-case letters, digits and underscores."""
    import getpass
    import re

    name = os.environ.get(LEARNER_ENV) or getpass.getuser()
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if not cleaned:
        raise ValueError(f"{LEARNER_ENV}={name!r} has no letter or digit; set it to a name such as 'alice'.")
    return cleaned


def registered_name(base: str) -> str:
    """The name under which these notebooks register model ``base`` for this learner.

    On a personal store it is ``base``. With ``$CURRICULUM_MODEL_SCHEMA`` (a Unity Catalog ``catalog.schema``, say
    ``main.alice``) it is ``catalog.schema.base``. On a shared server it is ``base__<learner>``, so that two learners'
    notebooks never move each other's aliases or delete each other's versions.
    """
    schema = os.environ.get(MODEL_SCHEMA_ENV, "").strip()
    if schema:
        if len(schema.split(".")) != 2 or not all(schema.split(".")):
            raise ValueError(f"{MODEL_SCHEMA_ENV}={schema!r} should be a Unity Catalog schema, catalog.schema "
                             "(for example main.alice).")
        return f"{schema}.{base}"
    return f"{base}__{learner()}" if is_shared_store() else base


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


def pinned_requirements(*packages: str) -> list[str]:
    """``name==version`` for each installed package: the environment a logged model needs.

    Passing these to ``log_model`` skips MLflow's requirement inference, which loads the model in a
    separate process and takes ~10 s per model (measured here) for the same answer.
    """
    return [f"{name}=={version(name)}" for name in packages]


_INTEGER_HINT = "Hint: Inferred schema contains integer column"


def log_dataset(frame: pd.DataFrame, name: str, targets: str | None = None, context: str = "training") -> None:
    """Record ``frame`` as an input of the active run: its name, schema, a content digest and its size."""
    import warnings

    import mlflow

    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; here the schema is only a record.
        warnings.filterwarnings("ignore", message=_INTEGER_HINT)
        mlflow.log_input(mlflow.data.from_pandas(frame, name=name, targets=targets), context=context)


def log_spark_model(model: Any, artifact_path: str = "model", input_example: pd.DataFrame | None = None,
                    registered_model_name: str | None = None, extra_packages: tuple[str, ...] = ()) -> ModelInfo:
    """Log a fitted Spark ML model to the active run, with its signature inferred from ``input_example``
    and the environment pinned to this one's PySpark (and ``extra_packages``)."""
    import warnings

    import mlflow

    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values; the signature records the types the
        # model was trained on, and notebook 21 shows how serving treats a missing value.
        warnings.filterwarnings("ignore", message=_INTEGER_HINT)
        return mlflow.spark.log_model(
            model,
            artifact_path,
            input_example=input_example,
            registered_model_name=registered_model_name,
            pip_requirements=pinned_requirements("pyspark", *extra_packages),
            # MLflow would reload the saved model to score the input example once more (5-10 s per model
            # here); the signature is still inferred from the example, and the chapters score the
            # logged model themselves.
            validate_serving_input=False,
        )
