"""helpers.automl: trials, the data snapshot, and the generated trial notebook — which is executed here."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from helpers import automl, houses, load_pandas, loans

# The fixed split below leaves a few rare Ames categories out of the training rows; FLAML warns that it maps
# them to "__NAN__", which is what this module reproduces.
pytestmark = pytest.mark.filterwarnings("ignore:Column .* contains values unseen at fit time:UserWarning")

LOAN_CONFIG = {"n_estimators": 12, "num_leaves": 8, "min_child_samples": 20, "learning_rate": 0.1,
               "log_max_bin": 8, "colsample_bytree": 0.8, "reg_alpha": 0.001, "reg_lambda": 1.0}
HOUSE_CONFIG = {"n_estimators": 20, "max_features": 0.5, "max_leaves": 64}


def _sets(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A fixed train / validate / test split by row position (3 : 1 : 1)."""
    position = np.arange(len(frame)) % 5
    return tuple(frame[mask].reset_index(drop=True) for mask in (position < 3, position == 3, position == 4))


def _loan_sets() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _sets(loans.to_pandas(load_pandas(loans.DATASET)))


def _house_sets() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frame = load_pandas("ames")
    return _sets(frame.assign(**{houses.TARGET: np.log10(frame["sale_price"])}).drop(columns="sale_price"))


def _trial(**changes) -> automl.Trial:
    values = dict(dataset="lending_club", task="classification", target=loans.LABEL,
                  categorical=loans.CATEGORICAL, numeric=loans.NUMERIC, learner="lgbm", config=LOAN_CONFIG,
                  params={"n_estimators": 12}, metric="roc_auc", value=0.75, experiment="automl-tests")
    return automl.Trial(**{**values, **changes})


def _configured_trial(tmp_path: Path, task: str, learner: str, config: dict, sets, target: str,
                      dataset: str) -> automl.Trial:
    """The configuration evaluated by FLAML's own ``fit``, as the first trial of a search that starts from it
    (FLAML's search log records every trial with its validation loss)."""
    import json

    from flaml import AutoML

    train, validate, _ = sets
    features = [c for c in train.columns if c != target]
    metric = "roc_auc" if task == "classification" else "rmse"
    log = tmp_path / "search.log"
    search = AutoML()
    search.fit(train[features], train[target], X_val=validate[features], y_val=validate[target], task=task,
               metric=metric, estimator_list=[learner], max_iter=2, starting_points={learner: config},
               log_file_name=str(log), log_type="all", **automl.DETERMINISTIC)
    first = json.loads(log.read_text().splitlines()[0])
    assert first["learner"] == learner and first["config"] == pytest.approx(config)
    transformer = search.feature_transformer
    return automl.Trial(dataset=dataset, task=task, target=target,
                        categorical=tuple(transformer._cat_columns), numeric=tuple(transformer._num_columns),
                        learner=learner, config=first["config"],
                        params=automl.library_params(task, learner, first["config"]), metric=metric,
                        value=automl.metric_value(metric, first["validation_loss"]),
                        experiment="automl-tests", search_run_id="run-0")


def test_a_trial_checks_its_learner_and_task() -> None:
    with pytest.raises(ValueError, match="does not do regression"):
        _trial(task="regression", learner="lrl1")
    with pytest.raises(ValueError, match="Unknown FLAML learner"):
        _trial(learner="catboost")
    with pytest.raises(ValueError, match="task must be"):
        _trial(task="ranking")
    trial = _trial()
    assert automl.Trial.from_json(trial.to_json()) == trial
    assert trial.features == [*loans.CATEGORICAL, *loans.NUMERIC]


def test_metric_values_and_names() -> None:
    assert automl.metric_value("roc_auc", 0.25) == 0.75
    assert automl.metric_value("rmse", 0.07) == 0.07
    assert automl.METRIC_NAMES["roc_auc"] == "ROC AUC"


def test_snapshot_keeps_the_sets_and_the_search_order(tmp_path: Path) -> None:
    train, validate, test = _loan_sets()
    path = automl.save_snapshot(train, validate, test, tmp_path / "data.parquet")
    loaded = automl.load_snapshot(path)
    pd.testing.assert_frame_equal(loaded[0], automl.search_order(train))
    pd.testing.assert_frame_equal(loaded[1], validate)
    pd.testing.assert_frame_equal(loaded[2], test)
    kept = automl.load_snapshot(automl.save_snapshot(train, validate, test, tmp_path / "kept.parquet",
                                                     in_search_order=False))
    pd.testing.assert_frame_equal(kept[0], train)
    # the order is a fixed permutation of the rows
    shuffled = automl.search_order(train)
    assert not shuffled.equals(train)
    pd.testing.assert_frame_equal(shuffled.sort_values(list(train.columns)).reset_index(drop=True),
                                  train.sort_values(list(train.columns)).reset_index(drop=True))


def test_flaml_constants_and_translation(spark) -> None:
    from flaml.config import RANDOM_SEED

    assert automl.FLAML_RANDOM_SEED == RANDOM_SEED
    params = automl.library_params("classification", "lgbm", LOAN_CONFIG)
    assert params["max_bin"] == 2**8 - 1 and "log_max_bin" not in params
    assert params["n_jobs"] == 1 and params["verbose"] == -1 and isinstance(params["learning_rate"], float)
    forest = automl.library_params("regression", "rf", HOUSE_CONFIG)
    assert forest["max_leaf_nodes"] == 64 and "max_leaves" not in forest and "random_state" in forest


def test_the_notebook_meets_the_chapter_shape(tmp_path: Path) -> None:
    trial = _trial(params={"n_estimators": 12, "max_bin": 255, "n_jobs": 1, "verbose": -1})
    book = automl.notebook(trial, tmp_path / "data.parquet")
    assert book.cells[0].cell_type == "markdown"
    assert book.cells[0].source.startswith("# AutoML trial: LightGBM")
    parameters = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and "data_path" in parameters[0].source
    assert sum("result" in c.metadata.get("tags", []) for c in book.cells) == 1
    code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert "import flaml" not in code and "from flaml" not in code  # the notebook does not need FLAML
    assert "LGBMClassifier(**PARAMS)" in code and "mlflow.start_run" in code
    # every code cell after the set-up is introduced by a markdown cell
    kinds = [c.cell_type for c in book.cells]
    assert kinds.count("markdown") >= 7
    path = automl.write_notebook(trial, tmp_path / "data.parquet", tmp_path / "trial.ipynb")
    assert automl.outline(path)[0] == "# AutoML trial: LightGBM on `lending_club`"
    assert "## 4 · Evaluation" in automl.outline(path)
    nbformat.validate(nbformat.read(path, as_version=4))
    with pytest.raises(ValueError, match="no output"):
        automl.result(path)


def test_refitting_a_trial_matches_flaml(spark, tmp_path: Path) -> None:
    sets = _house_sets()
    trial = _configured_trial(tmp_path, "regression", "rf", HOUSE_CONFIG, sets, houses.TARGET, "ames")
    assert trial.params["max_leaf_nodes"] == 64 and math.isfinite(trial.value)
    train, validate, _ = sets
    model = automl.fit(trial, automl.search_order(train))
    assert math.isclose(automl.evaluate(trial, model, validate, digits=10)["rmse"], trial.value, rel_tol=1e-9)
    # without FLAML's row order the forest's bootstrap samples differ, and so does the score
    unordered = automl.fit(trial, train)
    unordered_rmse = automl.evaluate(trial, unordered, validate, digits=10)["rmse"]
    assert unordered_rmse != pytest.approx(trial.value, rel=1e-9)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_generated_notebook_runs_and_reproduces_the_trial(spark, tmp_path: Path, monkeypatch,
                                                              task: str) -> None:
    """The issue's acceptance test: a notebook generated from a fixed configuration is executed with
    papermill, and the metric it reports on the validation rows is the one the AutoML search measured for
    that configuration."""
    if task == "classification":
        sets, target, learner, config, metric = _loan_sets(), loans.LABEL, "lgbm", LOAN_CONFIG, "roc_auc"
    else:
        sets, target, learner, config, metric = _house_sets(), houses.TARGET, "rf", HOUSE_CONFIG, "rmse"
    trial = _configured_trial(tmp_path, task, learner, config, sets, target,
                              "lending_club" if task == "classification" else "ames")
    monkeypatch.setenv("CURRICULUM_WORK_DIR", str(tmp_path / "work"))  # the notebook's MLflow store goes here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    snapshot = automl.save_snapshot(*sets, tmp_path / "data.parquet")
    path = automl.write_notebook(trial, snapshot, tmp_path / "trial.ipynb")

    executed = automl.execute(path)

    result = automl.result(executed)
    assert result["learner"] == learner and result["metric"] == metric
    assert result["search"] == round(trial.value, 6)
    assert result[f"validation_{metric}"] == pytest.approx(trial.value, abs=1e-6)
    assert (tmp_path / "work" / "mlflow" / "mlflow.db").exists()
