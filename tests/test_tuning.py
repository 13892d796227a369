from __future__ import annotations

import math
import os

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from helpers import tuning

optuna.logging.set_verbosity(optuna.logging.WARNING)

OPTIMUM = tuning.TOY_OPTIMUM
NEAR_OPTIMUM = {"log10_learning_rate": -1.3, "log10_l2": 0.1}
BAD = {"log10_learning_rate": 0.0, "log10_l2": 1.0}


def _study(seed: int = 42, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
                               pruner=pruner or optuna.pruners.NopPruner())


# --- the toy problem and the three search strategies -------------------------------------------------


def test_toy_loss_is_lowest_at_its_stated_optimum() -> None:
    assert tuning.toy_loss(**OPTIMUM) == pytest.approx(tuning.TOY_MINIMUM, abs=1e-4)
    grid = tuning.grid_points(101)
    values = tuning.toy_loss(grid["log10_learning_rate"].to_numpy(), grid["log10_l2"].to_numpy())
    assert values.min() >= tuning.TOY_MINIMUM - 1e-4
    best = grid.iloc[int(np.argmin(values))]
    assert best["log10_learning_rate"] == pytest.approx(OPTIMUM["log10_learning_rate"], abs=0.05)
    assert best["log10_l2"] == pytest.approx(OPTIMUM["log10_l2"], abs=0.1)


def test_grid_points_cover_every_combination_edges_included() -> None:
    grid = tuning.grid_points(4)
    assert len(grid) == 16 and list(grid.columns) == list(tuning.TOY_RANGES)
    for name, (low, high) in tuning.TOY_RANGES.items():
        assert sorted(grid[name].unique()) == pytest.approx(np.linspace(low, high, 4))
    with pytest.raises(ValueError, match="at least 2"):
        tuning.grid_points(1)


def test_search_strategies_spend_the_same_budget_and_differ_as_described() -> None:
    points = tuning.search_strategies(budget=16, seed=42)
    assert points.groupby("method", sort=False).size().to_dict() == {"grid": 16, "random": 16, "Bayesian (TPE)": 16}
    distinct = points.groupby("method", sort=False)["log10_learning_rate"].nunique()
    assert distinct["grid"] == 4 and distinct["random"] == 16 and distinct["Bayesian (TPE)"] == 16
    best = points.groupby("method", sort=False)["loss"].min()
    assert best["Bayesian (TPE)"] < best["grid"]
    part = points[points["method"] == "random"]
    assert (part["best_so_far"].diff().dropna() <= 0).all()  # a running minimum never rises
    with pytest.raises(ValueError, match="square"):
        tuning.search_strategies(budget=10)


def test_search_strategies_are_reproducible_for_a_seed() -> None:
    pd.testing.assert_frame_equal(tuning.search_strategies(16, seed=3), tuning.search_strategies(16, seed=3))


def test_bayesian_search_finds_the_known_optimum() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, multivariate=True),
                                pruner=optuna.pruners.NopPruner())
    study.optimize(tuning.toy_objective, n_trials=40)
    assert study.best_value < tuning.TOY_MINIMUM + 0.005
    assert study.best_params["log10_learning_rate"] == pytest.approx(OPTIMUM["log10_learning_rate"], abs=0.2)


def test_repeated_best_has_one_row_per_method_and_seed() -> None:
    repeats = tuning.repeated_best(budget=9, seeds=(0, 1))
    assert len(repeats) == 6
    assert repeats.groupby("method")["best_loss"].min().min() >= tuning.TOY_MINIMUM - 1e-9


# --- one trial, as a task runs it ---------------------------------------------------------------------


def test_run_trial_uses_the_given_settings_and_records_where_it_ran() -> None:
    record = tuning.run_trial(tuning.toy_objective, {"steps": 3}, 7, NEAR_OPTIMUM, tuning.toy_space(), [],
                              "minimize", optuna.pruners.NopPruner(), partition=2)
    assert record.state == "COMPLETE" and record.number == 7 and record.partition == 2
    assert record.params == NEAR_OPTIMUM
    assert record.value == pytest.approx(float(tuning.toy_loss(**NEAR_OPTIMUM)))
    assert sorted(record.intermediate) == [1, 2, 3]
    assert record.pid == os.getpid() and record.seconds >= 0
    assert tuning.TrialRecord.from_json(record.as_json()) == record


def test_run_trial_prunes_against_the_history_it_is_given() -> None:
    history_study = _study()
    for params in (OPTIMUM, NEAR_OPTIMUM):
        history_study.enqueue_trial(params)
        history_study.optimize(tuning.toy_objective, n_trials=1)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    record = tuning.run_trial(tuning.toy_objective, None, 2, BAD, tuning.toy_space(), history_study.trials,
                              "minimize", pruner)
    assert record.state == "PRUNED" and record.value is None
    assert max(record.intermediate) == 1  # stopped at the first step the pruner may act on


def test_run_trial_turns_an_exception_into_a_failed_trial() -> None:
    record = tuning.run_trial(tuning.toy_objective, {"fail_above": 0.5}, 0, BAD, tuning.toy_space(), [],
                              "minimize", optuna.pruners.NopPruner())
    assert record.state == "FAIL" and record.value is None
    assert "deliberate failure" in record.error


# --- trials in Spark tasks ----------------------------------------------------------------------------


def test_trials_run_in_spark_tasks_and_find_the_optimum(spark) -> None:
    study = _study()
    records = tuning.optimize_on_spark(spark, study, tuning.toy_objective, tuning.toy_space(), n_trials=24,
                                       batch_size=4)
    assert [r.number for r in records] == list(range(24))
    assert {r.partition for r in records} == {0, 1, 2, 3}  # one trial per task of each batch
    assert all(r.pid != os.getpid() for r in records)  # none ran in the driver's process
    assert len(study.trials) == 24 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.best_value < tuning.TOY_MINIMUM + 0.02
    assert [t.user_attrs["spark_partition"] for t in study.trials[:4]] == [0, 1, 2, 3]
    frame = tuning.trials_frame(records)
    assert list(frame.index) == list(range(24)) and frame["state"].eq("COMPLETE").all()


def test_the_search_is_reproducible_with_a_seeded_sampler(spark) -> None:
    runs = [tuning.optimize_on_spark(spark, _study(seed=5), tuning.toy_objective, tuning.toy_space(), n_trials=6,
                                     batch_size=3) for _ in range(2)]
    assert [r.params for r in runs[0]] == [r.params for r in runs[1]]
    assert len({math.fsum(r.params.values()) for r in runs[0]}) == 6  # constant_liar: a batch spreads out


def test_pruning_stops_a_bad_trial_in_a_task(spark) -> None:
    study = _study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    for params in (OPTIMUM, NEAR_OPTIMUM, BAD):
        study.enqueue_trial(params)
    records = tuning.optimize_on_spark(spark, study, tuning.toy_objective, tuning.toy_space(), n_trials=3,
                                       batch_size=2, data={"steps": 5})
    assert [r.state for r in records] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert max(records[2].intermediate) < 5  # it stopped before the last step
    pruned = study.trials[2]
    assert pruned.state == TrialState.PRUNED and pruned.params == BAD
    assert pruned.intermediate_values == records[2].intermediate


def test_a_failing_trial_is_recorded_and_the_others_finish(spark) -> None:
    study = _study()
    for params in (OPTIMUM, BAD):
        study.enqueue_trial(params)
    records = tuning.optimize_on_spark(spark, study, tuning.toy_objective, tuning.toy_space(), n_trials=2,
                                       batch_size=2, data={"fail_above": 0.5})
    assert [r.state for r in records] == ["COMPLETE", "FAIL"]
    assert study.trials[1].state == TrialState.FAIL and "deliberate" in study.trials[1].user_attrs["error"]


def test_optimize_on_spark_checks_its_counts(spark) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        tuning.optimize_on_spark(spark, _study(), tuning.toy_objective, tuning.toy_space(), n_trials=0, batch_size=2)


# --- nested MLflow runs -------------------------------------------------------------------------------


# A fresh SQLite store makes MLflow's SQLAlchemy layer warn about its own loader options, not about this code.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_log_trials_creates_one_nested_run_per_trial_under_the_parent(tmp_path) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("tuning-test", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id, run_name="search")
    records = [
        tuning.run_trial(tuning.toy_objective, {"steps": 3}, n, params, tuning.toy_space(), [], "minimize",
                         optuna.pruners.NopPruner(), partition=n)
        for n, params in enumerate((OPTIMUM, NEAR_OPTIMUM))
    ] + [tuning.run_trial(tuning.toy_objective, {"fail_above": 0.5}, 2, BAD, tuning.toy_space(), [], "minimize",
                          optuna.pruners.NopPruner(), partition=2)]
    records.append(tuning.TrialRecord(number=3, params=BAD, state="PRUNED", value=None, intermediate={1: 1.8},
                                      user_attrs={}, partition=3, pid=1, start=0.0, end=1.0))
    run_ids = tuning.log_trials(records, parent.info.run_id, metric="loss", client=client)
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.info.run_id for c in children} == set(run_ids.values()) and len(children) == 4
    by_trial = {int(c.data.tags["optuna.trial_number"]): c for c in children}
    assert by_trial[0].data.metrics["loss_best"] == pytest.approx(records[0].value)
    assert by_trial[0].data.params["log10_l2"] == str(OPTIMUM["log10_l2"])
    assert by_trial[1].data.tags["spark.partition"] == "1" and by_trial[1].info.status == "FINISHED"
    assert by_trial[2].data.tags["optuna.state"] == "FAIL" and by_trial[2].info.status == "FAILED"
    assert by_trial[3].info.status == "KILLED" and "loss_best" not in by_trial[3].data.metrics
    history = client.get_metric_history(run_ids[0], "loss")
    assert sorted(m.step for m in history) == [1, 2, 3]


# --- the LightGBM objective ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def houses() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    size = rng.uniform(50, 250, n)
    kind = rng.choice(["a", "b", "c"], n)
    price = 2 + 0.004 * size + np.where(kind == "a", 0.2, 0.0) + rng.normal(scale=0.05, size=n)
    return pd.DataFrame({"size": size.round(), "kind": kind, "price": price})


def test_model_frame_fixes_categories_and_numeric_types() -> None:
    frame = pd.DataFrame({"size": [1, 2], "kind": ["a", "z"]})
    out = tuning.model_frame(frame, {"kind": ["a", "b"]}, ["size"])
    assert out["size"].dtype == "float64" and list(out["kind"].cat.categories) == ["a", "b"]
    assert out["kind"].isna().tolist() == [False, True]  # an unseen category becomes missing
    assert tuning.categories_of(frame, ["kind"]) == {"kind": ["a", "z"]}


def test_suggest_handles_every_distribution_kind() -> None:
    space = {"x": FloatDistribution(0.1, 1.0, log=True), "n": IntDistribution(1, 5),
             "kind": CategoricalDistribution(["a", "b"])}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = tuning.suggest(study.ask(), space)
    assert set(params) == {"x", "n", "kind"} and 0.1 <= params["x"] <= 1.0 and params["kind"] in ("a", "b")
    with pytest.raises(TypeError, match="no suggest"):
        tuning.suggest(study.ask(), {"bad": object()})


def test_lightgbm_objective_prunes_and_runs_in_tasks(spark, houses) -> None:
    data = tuning.LightGBMData.from_frames(houses.iloc[:300], houses.iloc[300:], "price", ["kind"], ["size"],
                                           max_rounds=60, report_every=10, early_stopping=20)
    study = _study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=10))
    records = tuning.optimize_on_spark(spark, study, tuning.lightgbm_objective, tuning.lightgbm_space(),
                                       n_trials=6, batch_size=3, data=data)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(0 < t.value < 0.5 for t in complete)
    assert all(1 <= t.user_attrs["best_rounds"] <= 60 for t in complete)
    assert all(set(r.params) == set(tuning.lightgbm_space()) for r in records)
    assert all(max(r.intermediate) <= 60 and min(r.intermediate) == 10 for r in records)


def test_lightgbm_pipeline_takes_raw_columns(houses) -> None:
    categories = tuning.categories_of(houses, ["kind"])
    pipeline = tuning.lightgbm_pipeline({"num_leaves": 7}, 30, categories, ["size"])
    pipeline.fit(houses[["size", "kind"]], houses["price"])
    direct = tuning.lightgbm_regressor({"num_leaves": 7}, 30).fit(
        tuning.model_frame(houses, categories, ["size"]), houses["price"])
    np.testing.assert_allclose(pipeline.predict(houses[["size", "kind"]].head(20)),
                               direct.predict(tuning.model_frame(houses.head(20), categories, ["size"])))
