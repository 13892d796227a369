"""The checks of the Part III labs (helpers/labs/tuning.py, registry.py, monitoring.py, deployment.py): each fed a
correct answer (passes) and the typical wrong answers (fails with the specific feedback). The structure of the
committed lab notebooks is tested generically in tests/test_labs.py."""

from __future__ import annotations

import pytest

from tests.labs_support import fails_with

# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


# --------------------------------------------------------------------------------------------------------------
# Lab 17 · tuning and AutoML


def _cross_validate(train_features, reg_params, elastic_net=(0.0, 1.0), folds=3):
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.regression import LinearRegression
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    regression = LinearRegression(labelCol="log_price", solver="normal")
    grid = (ParamGridBuilder().addGrid(regression.regParam, list(reg_params))
            .addGrid(regression.elasticNetParam, list(elastic_net)).build())
    hashed = {"foldCol": "fold"} if folds == 3 else {}  # the lab's folds (0-2), or random ones
    return CrossValidator(estimator=regression, estimatorParamMaps=grid, numFolds=folds, seed=42, parallelism=2,
                          evaluator=RegressionEvaluator(labelCol="log_price"), **hashed).fit(train_features)


def test_tuning_sets_are_the_chapters(spark) -> None:
    from helpers.labs import tuning as lab

    data = lab.house_data(spark)
    assert {name: len(frame) for name, frame in data.items()} == {"train": 1843, "validate": 500, "test": 582}
    assert len(lab.automl_columns(spark)) == 73
    train_features, test_features = lab.feature_sets(spark)
    assert (train_features.count(), test_features.count()) == (2343, 582)


def test_tuning_cross_validation(spark, monkeypatch) -> None:
    from pyspark.ml.regression import LinearRegression
    from pyspark.ml.tuning import CrossValidator

    from helpers.labs import tuning as lab

    train_features, _ = lab.feature_sets(spark)
    good = _cross_validate(train_features, [0.001, 0.01])
    verdict = lab.test_cross_validation(good)
    assert verdict.passed and "4 settings × 3 folds" in verdict.message, verdict
    fails_with(lab.test_cross_validation(CrossValidator(estimator=LinearRegression())), "FITTED")
    fails_with(lab.test_cross_validation(_cross_validate(train_features, [0.001], [1.0], folds=2)),
                "1 setting(s)", "two values of regParam")
    fails_with(lab.test_cross_validation(good.bestModel), "CrossValidatorModel", "LinearRegressionModel")
    monkeypatch.setattr(lab, "MIN_FOLDS", 4)
    fails_with(lab.test_cross_validation(good), "numFolds=3", "at least 4 folds")
    monkeypatch.setattr(lab, "MIN_FOLDS", 3)
    monkeypatch.setattr(lab, "CV_RMSE_LIMIT", 0.05)  # a weak grid, without fitting one: raise the bar instead
    fails_with(lab.test_cross_validation(good), "above 0.05", "penalties", "regParam=0.001")


def _study(sampler=None, direction="minimize", values=None, in_spark=True):
    """A study of toy_objective's space with the given trial values (no objective runs: the trials are added)."""
    import optuna

    from helpers import tuning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = tuning.toy_space()
    study = optuna.create_study(direction=direction, sampler=sampler or optuna.samplers.TPESampler(seed=42))
    for number, value in enumerate(values if values is not None else [0.35] * 15 + [0.302]):
        study.add_trial(optuna.trial.create_trial(
            params={"log10_learning_rate": -1.3, "log10_l2": 0.0}, distributions=space, value=value,
            user_attrs={"spark_partition": number % 8} if in_spark else {}))
    return study


def test_tuning_study() -> None:
    import optuna

    from helpers.labs import tuning as lab

    verdict = lab.test_study(_study())
    assert verdict.passed and "0.0020 above the minimum" in verdict.message, verdict
    fails_with(lab.test_study(_study(direction="maximize")), "MAXIMISES", "minimize")
    fails_with(lab.test_study(_study(values=[0.31] * 8)), "8 finished trial(s)", "budget of 16")
    fails_with(lab.test_study(_study(in_spark=False)), "notebook's process", "optimize_on_spark")
    fails_with(lab.test_study(_study(sampler=optuna.samplers.RandomSampler(seed=42))), "RandomSampler", "TPE")
    fails_with(lab.test_study(_study(values=[0.35] * 15 + [0.3185])), "0.3185 is 0.0185 above", "n_startup_trials")
    fails_with(lab.test_study("study"), "optuna.Study")


def test_tuning_study_run_on_spark(spark) -> None:
    """The lab's own recipe passes: 16 TPE trials of the toy objective as Spark tasks, in one batch."""
    import optuna

    from helpers import tuning
    from helpers.labs import tuning as lab

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=42, n_startup_trials=5, constant_liar=True))
    tuning.optimize_on_spark(spark, study, tuning.toy_objective, tuning.toy_space(), n_trials=16, batch_size=16)
    assert lab.test_study(study).passed
    in_process = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=42))
    in_process.optimize(tuning.toy_objective, n_trials=16)
    fails_with(lab.test_study(in_process), "notebook's process")


def test_tuning_study_run_by_mlflow_spark_study(spark, mlflow_store) -> None:
    """MLflow's MlflowSparkStudy is another correct way to run the trials as Spark tasks (one task here, so its
    sampler keeps its seed and the search repeats)."""
    import mlflow
    import optuna
    from mlflow.optuna.storage import MlflowStorage
    from mlflow.pyspark.optuna.study import MlflowSparkStudy

    from helpers import tuning
    from helpers.labs import tuning as lab

    experiment_id = mlflow.create_experiment("lab-17-spark-study")
    study = MlflowSparkStudy("toy", MlflowStorage(experiment_id=experiment_id),
                             sampler=optuna.samplers.TPESampler(seed=42, n_startup_trials=5))
    study.optimize(lambda trial: tuning.toy_objective(trial), n_trials=16, n_jobs=1)
    verdict = lab.test_study(study)
    assert verdict.passed and "MlflowSparkStudy" in verdict.message, verdict


def _records(study):
    from helpers import tuning

    return [tuning.TrialRecord(number=t.number, params=t.params, state="COMPLETE", value=t.value, intermediate={},
                               user_attrs={}, partition=0, pid=1, start=1.0, end=2.0) for t in study.trials]


def test_tuning_tracking(mlflow_store) -> None:
    import mlflow

    from helpers import tuning
    from helpers.labs import tuning as lab

    study = _study()
    with mlflow.start_run() as parent:
        runs = tuning.log_trials(_records(study), parent_run_id=parent.info.run_id)
        mlflow.log_metric("best_loss", study.best_value)
    assert lab.test_tracking(parent.info.run_id, study).passed
    fails_with(lab.test_tracking(runs[0], study), "itself a nested run")
    fails_with(lab.test_tracking("0" * 32, study), "no run with id")
    fails_with(lab.test_tracking(parent, study), "should be the run's id")
    with mlflow.start_run() as lonely:
        mlflow.log_metric("best_loss", study.best_value)
    fails_with(lab.test_tracking(lonely.info.run_id, study), "no nested runs", "nested=True")
    with mlflow.start_run() as half:
        tuning.log_trials(_records(study)[:8], parent_run_id=half.info.run_id)
        mlflow.log_metric("best_loss", study.best_value)
    fails_with(lab.test_tracking(half.info.run_id, study), "8 nested runs for a study of 16 trials")
    with mlflow.start_run() as no_metric:
        tuning.log_trials(_records(study), parent_run_id=no_metric.info.run_id)
    fails_with(lab.test_tracking(no_metric.info.run_id, study), "no metric 'best_loss'")
    with mlflow.start_run() as wrong_metric:
        tuning.log_trials(_records(study), parent_run_id=wrong_metric.info.run_id)
        mlflow.log_metric("best_loss", 0.35)
    fails_with(lab.test_tracking(wrong_metric.info.run_id, study), "best_loss=0.3500", "0.3020")
    # Nested runs written by hand, as the lab's solution does, pass; without the trials' losses they do not.
    for log_loss, name in ((True, "by_hand"), (False, "no_losses")):
        with mlflow.start_run(run_name=name) as by_hand:
            for trial in study.trials:
                with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
                    mlflow.log_params(trial.params)
                    mlflow.log_metric("loss", trial.value if log_loss else trial.value + 1)
            mlflow.log_metric("best_loss", study.best_value)
        if log_loss:
            assert lab.test_tracking(by_hand.info.run_id, study).passed
        else:
            fails_with(lab.test_tracking(by_hand.info.run_id, study), "no nested run holds the loss", "record.value")
    running = mlflow.start_run()
    fails_with(lab.test_tracking(running.info.run_id, study), "RUNNING")
    mlflow.end_run()


def test_tuning_automl(spark, monkeypatch) -> None:
    from flaml import AutoML  # imported after the Spark session: FLAML looks for one on import

    from helpers import automl
    from helpers.labs import tuning as lab

    data = lab.house_data(spark)
    columns = lab.automl_columns(spark)

    def search(dollars=False, trials=10, **settings):
        def target(frame):
            return 10 ** frame["log_price"] if dollars else frame["log_price"]

        found = AutoML()
        found.fit(data["train"][columns], target(data["train"]), X_val=data["validate"][columns],
                  y_val=target(data["validate"]), task="regression", estimator_list=["lgbm"], max_iter=trials,
                  **{"metric": "rmse", **automl.DETERMINISTIC, **settings})
        return found

    good = search()
    verdict = lab.test_automl(good)
    assert verdict.passed and "lgbm" in verdict.message, verdict
    fails_with(lab.test_automl(search(dollars=True)), "that is dollars", "log_price")
    fails_with(lab.test_automl(search(trials=2, metric="mae")), "not the RMSE", 'metric="rmse"')
    cross_validated = AutoML()  # scored by 3-fold cross-validation on the training houses, not on the validation ones
    cross_validated.fit(data["train"][columns], data["train"]["log_price"], task="regression", estimator_list=["lgbm"],
                        max_iter=2, **{**automl.DETERMINISTIC, "metric": "rmse", "eval_method": "cv", "n_splits": 3})
    fails_with(lab.test_automl(cross_validated), "not the RMSE", "X_val/y_val")
    fails_with(lab.test_automl(AutoML()), "not fitted")
    fails_with(lab.test_automl(data["train"]), "should be a flaml.AutoML")
    monkeypatch.setattr(lab, "AUTOML_RMSE_LIMIT", 0.05)
    fails_with(lab.test_automl(good), "above 0.05", "lgbm")


# --------------------------------------------------------------------------------------------------------------
# Lab 18 · registry


def test_registry_lab(spark, mlflow_store, monkeypatch) -> None:
    """The four checks in the lab's order, on one fresh registry: a correct answer and the typical wrong ones."""
    from helpers import delays, registry
    from helpers.labs import registry as lab

    train, validation = lab.flight_frames(spark)
    logistic = delays.Candidate("logistic", {"C": 1.0}, "logistic regression")
    logistic_model = delays.train_candidate(logistic, train)
    info = delays.log_candidate(logistic_model, logistic, train, validation)
    assert lab.test_logged(info).passed
    fails_with(lab.test_logged(delays.log_candidate(logistic_model, logistic, train)), "no metric 'roc_auc'",
                "validation")
    fails_with(lab.test_logged(info.model_uri), "should be the ModelInfo")

    fails_with(lab.test_registered(registry.register(info, lab.MODEL_NAME), info), "no description")
    registry.reset(lab.MODEL_NAME)
    version = registry.register(info, lab.MODEL_NAME, description="logistic regression")
    verdict = lab.test_registered(version, info)
    assert verdict.passed and "lab_flight_delay version 1" in verdict.message, verdict
    fails_with(lab.test_registered(registry.register(info, delays.MODEL_NAME, description="x"), info),
                "shared 'flight_delay'", "lab.MODEL_NAME")
    fails_with(lab.test_registered(registry.register(info, "my_model", description="x"), info), "'my_model'")
    other = delays.log_candidate(logistic_model, logistic, train, validation)
    fails_with(lab.test_registered(version, other), "not linked")
    fails_with(lab.test_registered("1", info), "should be the ModelVersion")

    first = registry.gate(lab.MODEL_NAME, version.version, validation, features=delays.FEATURES, label=delays.LABEL)
    fails_with(lab.test_gate(first), "no champion to beat", "gate the first candidate")
    fails_with(lab.test_gate(True), "Decision")
    monkeypatch.setattr(lab, "CHAMPION_AUC_LIMIT", 0.70)  # the logistic champion (0.68) is below it
    weaker = delays.Candidate("logistic", {"C": 0.001}, "over-penalised logistic regression")
    weak_info = delays.log_candidate(delays.train_candidate(weaker, train), weaker, train, validation)
    refused = registry.gate(lab.MODEL_NAME, registry.register(weak_info, lab.MODEL_NAME, description="weak").version,
                            validation, features=delays.FEATURES, label=delays.LABEL)
    fails_with(lab.test_gate(refused), "below 0.7", "delays.REFERENCE")
    monkeypatch.setattr(lab, "CHAMPION_AUC_LIMIT", 0.6)
    fails_with(lab.test_gate(refused), "the gate refused version 2")
    monkeypatch.setattr(lab, "CHAMPION_AUC_LIMIT", 0.72)

    lightgbm = delays.train_candidate(delays.REFERENCE, train)
    lightgbm_info = delays.log_candidate(lightgbm, delays.REFERENCE, train, validation)
    second = registry.register(lightgbm_info, lab.MODEL_NAME, description=delays.REFERENCE.description)
    decision = registry.gate(lab.MODEL_NAME, second.version, validation, features=delays.FEATURES,
                             label=delays.LABEL)
    assert lab.test_gate(decision).passed

    auc = lab._auc(f"models:/{lab.MODEL_NAME}@champion")
    assert auc > 0.72
    assert lab.test_alias_score(auc).passed
    fails_with(lab.test_alias_score(1 - auc), "below 0.5", "SECOND column")
    logistic_auc = lab._auc(f"models:/{lab.MODEL_NAME}/1")
    fails_with(lab.test_alias_score(logistic_auc), f"you report {logistic_auc:.4f}", "alias")
    fails_with(lab.test_alias_score(73.65), "not a ROC AUC")
    fails_with(lab.test_alias_score("0.7"), "should be a number")


# --------------------------------------------------------------------------------------------------------------
# Lab 22 · monitoring


@pytest.fixture
def toy_inference(monkeypatch):
    """A small made-up inference table in place of the champion's scoring of 2013: 400 flights per window, the
    temperature 25 degrees warmer from 2013-07 on, and the model's scores weaker from 2013-10 on."""
    import numpy as np
    import pandas as pd

    from helpers.labs import monitoring as lab

    rng = np.random.default_rng(7)
    parts = []
    for window in (lab.REFERENCE, lab.SCORE_REFERENCE, *lab.MONTHS):
        n = 400
        part = pd.DataFrame({c: rng.normal(50, 10, n).round(1) for c in lab.monitored()})
        part["day_of_week"] = rng.integers(1, 8, n)
        if window.startswith("2013"):
            part["temp"] += 25
        label = rng.integers(0, 2, n)
        signal = 1.0 if window < "2013-10" or not window.startswith("2013") else 0.3
        part["p_late"] = 1 / (1 + np.exp(-(signal * (label - 0.5) * 2 + rng.normal(0, 1, n))))
        part["label"] = label
        part.insert(0, "window", window)
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    monkeypatch.setattr(lab, "reference_inference", lambda scale="default": rows)
    return rows


def test_monitoring_inference(spark, toy_inference) -> None:
    from pyspark.sql import functions as F

    from helpers.labs import monitoring as lab

    inference = spark.createDataFrame(toy_inference)
    assert lab.test_inference(inference).passed
    fails_with(lab.test_inference(inference.withColumn("p_late", 1 - F.col("p_late"))), "P(on time)",
                "second")
    fails_with(lab.test_inference(inference.where(F.col("window") != "2013-12")), "['2013-12']", "missing")
    fails_with(lab.test_inference(inference.withColumn("p_late", F.col("p_late") * 0.9)),
                "differs from the champion's")
    fails_with(lab.test_inference(inference.drop("p_late")), "lacks the column(s) ['p_late']")
    fails_with(lab.test_inference(toy_inference), "should be a Spark DataFrame")


def test_monitoring_psi(spark, toy_inference) -> None:
    from pyspark.sql import functions as F

    from helpers import drift
    from helpers.labs import monitoring as lab

    inference = spark.createDataFrame(toy_inference)
    edges = drift.quantile_edges(inference.where(F.col("window") == "training"), lab.monitored(), bins=10)
    counts = drift.bin_counts(inference, edges)
    right = drift.psi_by_window(counts, "training")  # Spark's count agrees with the check's own (pandas) count
    verdict = lab.test_psi(right)
    assert verdict.passed and "['temp']" in verdict.message, verdict
    fails_with(lab.test_psi(drift.psi_by_window(counts, "validation")), "compared with 'validation'", "TRAINING")
    fails_with(lab.test_psi(right.assign(psi=0.001)), "almost nothing", "deciles of the training window")
    fails_with(lab.test_psi(right[right["feature"] != "visib"]), "missing", "lab.monitored()")
    fails_with(lab.test_psi(right.assign(psi=right["psi"] * 1.5)), "expected")
    fails_with(lab.test_psi(right.drop(columns="psi")), "lacks the column(s) ['psi']")


def test_monitoring_auc(spark, toy_inference) -> None:
    from helpers import drift
    from helpers.labs import monitoring as lab

    auc = drift.performance_by_window(drift.score_counts(spark.createDataFrame(toy_inference), "p_late", "label"))
    assert lab.test_auc(auc).passed
    fails_with(lab.test_auc(1 - auc), "reversed")
    fails_with(lab.test_auc(auc.drop("validation")), "['validation']")
    fails_with(lab.test_auc(auc - 0.02), "expected")
    fails_with(lab.test_auc(auc.to_dict()), "pandas Series")


def test_monitoring_alerts(spark, toy_inference, tmp_path, monkeypatch) -> None:
    import pandas as pd

    from helpers import drift
    from helpers.labs import monitoring as lab

    monkeypatch.setattr(lab, "alerts_path", lambda: tmp_path / "alerts")
    psi = lab.expected_psi(toy_inference).pivot(index="feature", columns="window", values="psi")
    auc = lab.expected_auc(toy_inference)

    def table(psi_threshold=0.2, sign=1.0, windows=lab.MONTHS, rules=("psi", "auc_drop")):
        chosen = [r for r in (drift.AlertRule("psi", psi_threshold), drift.AlertRule("auc_drop", 0.03))
                  if r.rule in rules]
        return pd.concat([drift.check_rules(w, {"psi": psi[w].to_dict(),
                                                "auc_drop": {"roc_auc": sign * (auc["validation"] - auc[w])}},
                                            chosen) for w in windows], ignore_index=True)

    right = table()
    fails_with(lab.test_alerts(right), "not written", "lab.alerts_path()")
    drift.write_alerts(right, lab.alerts_path())
    verdict = lab.test_alerts(right)
    assert verdict.passed and "retrain: True" in verdict.message, verdict
    fails_with(lab.test_alerts(table(rules=("psi",))), "needs 'psi' and 'auc_drop'")
    fails_with(lab.test_alerts(table(windows=("validation", *lab.MONTHS))), "six months")
    fails_with(lab.test_alerts(table(psi_threshold=0.1)), "thresholds are psi 0.1")
    fails_with(lab.test_alerts(table(sign=-1.0)), "VALIDATION window")
    fails_with(lab.test_alerts(right[right["fired"]]), "record every check, fired or not")
    fails_with(lab.test_alerts(right.assign(fired=~right["fired"])), "value > threshold")
    drift.write_alerts(right.head(5), lab.alerts_path())  # the file holds another table than the one shown
    fails_with(lab.test_alerts(right), "is not this one")
    fails_with(lab.test_alerts(right.drop(columns="run_id")), "lacks the column(s) ['run_id']")


# --------------------------------------------------------------------------------------------------------------
# Lab 21 · deployment


@pytest.fixture
def champion_store(spark, mlflow_store):
    """A fresh tracking store holding a flight_delay champion (the reference model, trained once here)."""
    from helpers import delays

    return delays.ensure_champion(spark, quiet=True)


def test_deployment_batch_and_table(spark, champion_store, tmp_path) -> None:
    import datetime as dt

    from pyspark.sql import functions as F

    from helpers import batch, delays
    from helpers.labs import deployment as lab

    flights = lab.new_flights(spark)
    uri = batch.version_uri(delays.MODEL_NAME, champion_store.version)
    scored = batch.score_with_spark_udf(spark, flights, uri, delays.FEATURES).cache()
    assert lab.test_scored(scored).passed
    fails_with(lab.test_scored(scored.withColumn("p_late", 1 - F.col("p_late"))), "P(on time)", "second")
    fails_with(lab.test_scored(scored.limit(100)), "holds 100 rows", "every row")
    fails_with(lab.test_scored(scored.unionByName(scored)), "twice", "APPENDED")
    fails_with(lab.test_scored(scored.withColumn("p_late", F.col("p_late") * 0.9)), "differs from the champion's")
    fails_with(lab.test_scored(flights), "no column p_late")
    fails_with(lab.test_scored(scored.toPandas()), "should be a Spark DataFrame")

    at = dt.datetime(2026, 1, 1)
    stamped = batch.stamp(scored, delays.MODEL_NAME, champion_store.version, at)
    table = tmp_path / "scores"
    batch.write_partitions(stamped, table, ["month"])
    batch.write_partitions(stamped, table, ["month"])  # a re-run replaces its months
    verdict = lab.test_table(table)
    assert verdict.passed and "month=7, month=8" in verdict.message, verdict
    fails_with(lab.test_table(str(tmp_path / "nothing")), "nothing is written")
    stamped.write.parquet(str(tmp_path / "flat"))
    fails_with(lab.test_table(tmp_path / "flat"), "no month=", "partition it by month")
    for _ in range(2):
        stamped.write.mode("append").partitionBy("month").parquet(str(tmp_path / "appended"))
    fails_with(lab.test_table(tmp_path / "appended"), "twice", "batch.write_partitions")
    batch.write_partitions(scored, tmp_path / "unstamped", ["month"])
    fails_with(lab.test_table(tmp_path / "unstamped"), "lacks the column(s)", "batch.stamp")
    batch.write_partitions(batch.stamp(scored, delays.MODEL_NAME, "99", at), tmp_path / "other", ["month"])
    fails_with(lab.test_table(tmp_path / "other"), "model_version ['99']")
    batch.write_partitions(stamped.where(F.col("month") == 7), tmp_path / "july", ["month"])
    fails_with(lab.test_table(tmp_path / "july"), "['month=7']")
    fails_with(lab.test_table(3), "should be the table's folder")


def test_deployment_served(spark, champion_store, tmp_path) -> None:
    import os
    import subprocess

    import mlflow

    from helpers import delays, serving
    from helpers.labs import deployment as lab

    sample = lab.request_rows(spark)
    answer = mlflow.pyfunc.load_model(delays.CHAMPION_URI).predict(sample[delays.FEATURES])

    def server(pid: int) -> serving.ModelServer:
        return serving.ModelServer(url="http://127.0.0.1:9", model_uri=delays.CHAMPION_URI,
                                   version=str(champion_store.version), pid=pid, log=tmp_path / "log",
                                   startup_s=0.0)

    ended = subprocess.Popen(["true"])  # a process that has ended: a stopped server's pid
    ended.wait()
    stopped = server(ended.pid)
    verdict = lab.test_served(stopped, answer)
    assert verdict.passed and "server stopped" in verdict.message, verdict
    fails_with(lab.test_served(server(os.getpid()), answer), "still running", "with")
    fails_with(lab.test_served(stopped, answer[:, 1]), "shape (5,)", "two probabilities")
    fails_with(lab.test_served(stopped, answer[:, ::-1]), "differs from the champion's")
    fails_with(lab.test_served("http://127.0.0.1:5100", answer), "should be the ModelServer")


def test_deployment_stream(spark, champion_store, tmp_path) -> None:
    import shutil

    from helpers import batch, delays, streaming
    from helpers.labs import deployment as lab

    udf = streaming.model_udf(spark, batch.version_uri(delays.MODEL_NAME, champion_store.version))

    def stream(name: str) -> streaming.StreamPaths:
        return streaming.StreamPaths.fresh(tmp_path / name)

    fails_with(lab.test_stream(str(tmp_path)), "should be STREAM")
    empty = stream("empty")
    fails_with(lab.test_stream(empty), "nothing has landed", "lab.land(STREAM, 1)")
    right = stream("right")
    lab.land(right, 1)
    streaming.process_available(spark, right, udf)
    fails_with(lab.test_stream(right), "2 of the 4 files", "lab.land(STREAM, 2)")
    lab.land(right, 2)
    fails_with(lab.test_stream(right), "were not scored", "run streaming.process_available again")
    unrun = stream("unrun")
    lab.land(unrun, 1)
    lab.land(unrun, 2)
    fails_with(lab.test_stream(unrun), "no commit log", "process_available")
    twice = stream("twice")  # a day's file landed again under another name
    lab.land(twice, 1)
    lab.land(twice, 2)
    shutil.copy(twice.landing / "flights-2013-07-01.json", twice.landing / "resent-2013-07-01.json")
    streaming.process_available(spark, twice, udf)
    fails_with(lab.test_stream(twice), "twice", "land each part once")

    streaming.process_available(spark, right, udf)  # the restart
    verdict = lab.test_stream(right)
    assert verdict.passed and "no flight twice" in verdict.message, verdict
    shutil.rmtree(twice.quarantine)
    fails_with(lab.test_stream(twice), "quarantine sink has no commit log", "process_available")

    other = batch.version_uri(delays.MODEL_NAME, champion_store.version)
    wrong = stream("wrong")
    lab.land(wrong, 1)
    lab.land(wrong, 2)
    from pyspark.sql import functions as F

    def halved(*columns):  # a stand-in for another model: the champion's UDF, its probabilities halved
        return F.transform(streaming.model_udf(spark, other)(*columns), lambda p: p / 2)
    streaming.process_available(spark, wrong, halved)
    fails_with(lab.test_stream(wrong), "differs from the champion's")
    with pytest.raises(ValueError, match="part must be 1 or 2"):
        lab.land(wrong, 3)
