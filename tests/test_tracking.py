from __future__ import annotations

from pathlib import Path

import pytest

from helpers import tracking
from tests.conftest import run_python


def test_default_store_is_sqlite_in_the_work_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CURRICULUM_WORK_DIR", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert tracking.is_local_store(tracking.tracking_uri())
    assert "make mlflow-ui" in tracking.describe_store()


def test_tracking_uri_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"
    assert not tracking.is_local_store(tracking.tracking_uri())
    assert tracking.describe_store() == "tracking server http://127.0.0.1:5999"


def test_experiment_runs_and_registry_work_on_the_default_store(tmp_path: Path) -> None:
    """A fresh store: the experiment is created once, runs are logged, a model version registered,
    and nothing is printed (MLflow's migration chatter would break notebook output comparison)."""
    code = (
        "import mlflow\n"
        "from helpers.tracking import use_experiment\n"
        "first = use_experiment('unit-test')\n"
        "assert use_experiment('unit-test') == first\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_param('alpha', 0.5)\n"
        "    mlflow.log_metric('rmse', 1.25)\n"
        "    mlflow.log_text('hello', 'notes.txt')\n"
        "client = mlflow.MlflowClient()\n"
        "client.create_registered_model('unit-model')\n"
        "version = client.create_model_version('unit-model', f'runs:/{run.info.run_id}/notes.txt', run.info.run_id)\n"
        "client.set_registered_model_alias('unit-model', 'champion', version.version)\n"
        "got = client.get_model_version_by_alias('unit-model', 'champion')\n"
        "print(client.get_run(run.info.run_id).data.metrics['rmse'], got.version,\n"
        "      mlflow.get_experiment(first).artifact_location.startswith('file://'))\n"
    )
    done = run_python(code, env={"CURRICULUM_WORK_DIR": str(tmp_path)}, remove=("MLFLOW_TRACKING_URI",))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["1.25", "1", "True"]
    assert done.stderr.strip() == ""
    assert (tmp_path / "mlflow" / "mlflow.db").exists()
    assert (tmp_path / "mlflow" / "artifacts" / "unit-test").is_dir()


def test_pinned_requirements_name_the_installed_versions() -> None:
    import mlflow
    import pyspark

    assert tracking.pinned_requirements("pyspark", "mlflow") == [
        f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"]


def test_log_spark_model_round_trips_through_pyfunc(tmp_path: Path) -> None:
    code = (
        "import mlflow, helpers\n"
        "from helpers.tracking import log_spark_model, use_experiment\n"
        "from pyspark.ml import Pipeline\n"
        "from pyspark.ml.feature import VectorAssembler\n"
        "from pyspark.ml.regression import LinearRegression\n"
        "from helpers.spark import spark_session\n"
        "spark = spark_session('log-model-test')\n"
        "use_experiment('log-model-test')\n"
        "df = spark.createDataFrame([(float(x), 2.0 * x + 1) for x in range(20)], 'x double, label double')\n"
        "model = Pipeline(stages=[VectorAssembler(inputCols=['x'], outputCol='features'), "
        "LinearRegression()]).fit(df)\n"
        "with mlflow.start_run():\n"
        "    info = log_spark_model(model, input_example=df.select('x').limit(3).toPandas())\n"
        "loaded = mlflow.pyfunc.load_model(info.model_uri)\n"
        "print([round(v, 3) for v in loaded.predict(df.select('x').limit(2).toPandas())])\n"
        "print(info.signature.inputs.input_names())\n"
    )
    done = run_python(code, env={"CURRICULUM_WORK_DIR": str(tmp_path)}, remove=("MLFLOW_TRACKING_URI",))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["[1.0, 3.0]", "['x']"]
    assert done.stderr.strip() == ""


def test_log_dataset_records_the_input_quietly(tmp_path: Path) -> None:
    code = (
        "import mlflow, pandas as pd\n"
        "from helpers.tracking import log_dataset, use_experiment\n"
        "use_experiment('dataset-test')\n"
        "with mlflow.start_run() as run:\n"
        "    log_dataset(pd.DataFrame({'rooms': [3, 4], 'price': [1.5, 2.5]}), name='houses', targets='price')\n"
        "inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs\n"
        "print(inputs[0].dataset.name, inputs[0].tags[0].value)\n"
    )
    done = run_python(code, env={"CURRICULUM_WORK_DIR": str(tmp_path)}, remove=("MLFLOW_TRACKING_URI",))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["houses", "training"]
    assert done.stderr.strip() == ""
