"""Hyperparameter search: grid, random and Bayesian search side by side on a surface whose optimum is
known, and Optuna trials that run as Spark tasks.

Optuna's own loop (``study.optimize``) runs every trial in the calling process. Here the **driver**
keeps the study and runs a batched *ask-and-tell* loop, and the trials run in **Spark tasks**, one
trial per task, so a cluster's cores all work at once::

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=42, constant_liar=True),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=4))
    records = optimize_on_spark(spark, study, lightgbm_objective, lightgbm_space(), n_trials=32, batch_size=4,
                                data=LightGBMData.from_frames(fit, valid, TARGET, CATEGORICAL, NUMERIC))
    log_trials(records, parent_run_id=parent.info.run_id)      # one nested MLflow run per trial

Each batch is one Spark job: the driver asks the sampler for ``batch_size`` settings, the tasks train
and score them, and the driver tells the study the results in trial order, so a seeded sampler gives
the same trials on every machine. Pruning still works inside a task: the trial reports its
intermediate values to a private copy of the study that holds every trial finished so far, and the
study's pruner decides against those.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from pyspark.sql import SparkSession

    Objective = Callable[[optuna.Trial, Any], float]

# --------------------------------------------------------------------------------------------------
# 1. Grid, random and Bayesian search on a surface whose optimum is known (the chapter's picture)
# --------------------------------------------------------------------------------------------------

#: The toy problem's two parameters and their ranges: log10 of a learning rate (it matters a lot) and
#: log10 of an L2 penalty (it matters little).
TOY_RANGES: dict[str, tuple[float, float]] = {"log10_learning_rate": (-3.0, 0.0), "log10_l2": (-3.0, 1.0)}
#: Where ``toy_loss`` is lowest, and its value there.
TOY_OPTIMUM: dict[str, float] = {"log10_learning_rate": -1.33, "log10_l2": 0.2}
TOY_MINIMUM = 0.30


def toy_loss(log10_learning_rate: float | np.ndarray, log10_l2: float | np.ndarray) -> float | np.ndarray:
    """A made-up validation loss over two hyperparameters, shaped like a real one: a narrow valley in
    the learning rate, tilted slightly by the penalty, and almost flat along the penalty.

    Its minimum is ``TOY_MINIMUM`` at ``TOY_OPTIMUM``. Works on NumPy arrays (for contour plots).
    """
    valley = log10_learning_rate + 1.3 + 0.15 * log10_l2
    return TOY_MINIMUM + 0.25 * valley**2 + 0.01 * (log10_l2 - 0.2) ** 2


def grid_points(levels: int, ranges: Mapping[str, tuple[float, float]] = TOY_RANGES) -> pd.DataFrame:
    """Every combination of ``levels`` evenly spaced values per parameter (a full grid, edges included)."""
    if levels < 2:
        raise ValueError("A grid needs at least 2 levels per parameter.")
    axes = [np.linspace(low, high, levels) for low, high in ranges.values()]
    mesh = np.meshgrid(*axes, indexing="ij")
    return pd.DataFrame({name: values.ravel() for name, values in zip(ranges, mesh, strict=True)})


def toy_space(ranges: Mapping[str, tuple[float, float]] = TOY_RANGES) -> dict[str, BaseDistribution]:
    """``ranges`` as Optuna distributions (uniform floats)."""
    from optuna.distributions import FloatDistribution

    return {name: FloatDistribution(low, high) for name, (low, high) in ranges.items()}


def toy_objective(trial: optuna.Trial, data: Mapping[str, Any] | None = None) -> float:
    """``toy_loss`` as an Optuna objective over ``TOY_RANGES``, for demonstrations and tests.

    It pretends to train for ``data["steps"]`` steps (default 5), reporting ``loss + 1/step`` after
    each, and stops with ``TrialPruned`` when the study's pruner says so. With ``data["fail_above"]``
    set, a setting whose loss is above it raises ``ValueError`` instead of returning (a failing trial).
    """
    import optuna

    settings = dict(data or {})
    loss = float(toy_loss(**suggest(trial, toy_space())))
    for step in range(1, int(settings.get("steps", 5)) + 1):
        trial.report(loss + 1.0 / step, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")
    if settings.get("fail_above") is not None and loss > settings["fail_above"]:
        raise ValueError(f"deliberate failure: loss {loss:.3f} is above {settings['fail_above']}")
    return loss


def _toy_study(sampler: optuna.samplers.BaseSampler, budget: int) -> pd.DataFrame:
    import optuna

    study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.NopPruner())
    study.optimize(toy_objective, n_trials=budget)
    return pd.DataFrame([t.params for t in study.trials])


def search_strategies(budget: int = 16, seed: int = 42, tpe_startup: int = 5) -> pd.DataFrame:
    """The points grid, random and Bayesian (TPE) search evaluate on ``toy_loss`` with the same budget.

    ``budget`` must be a square (the grid has √budget levels per parameter). Returns one row per
    evaluation: ``method``, ``order`` (0, 1, ... in the order evaluated), the two parameters, ``loss``
    and ``best_so_far``. TPE's first ``tpe_startup`` points are random; the rest follow its model.
    """
    import optuna

    levels = math.isqrt(budget)
    if levels * levels != budget:
        raise ValueError(f"budget must be a square number (the grid is √budget × √budget), not {budget}.")
    frames = {
        "grid": grid_points(levels),
        "random": _toy_study(optuna.samplers.RandomSampler(seed=seed), budget),
        "Bayesian (TPE)": _toy_study(optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup,
                                                                multivariate=True), budget),
    }
    rows = []
    for method, points in frames.items():
        loss = toy_loss(points["log10_learning_rate"].to_numpy(), points["log10_l2"].to_numpy())
        rows.append(points.assign(method=method, order=np.arange(len(points)), loss=loss,
                                  best_so_far=np.minimum.accumulate(loss)))
    columns = ["method", "order", *TOY_RANGES, "loss", "best_so_far"]
    return pd.concat(rows, ignore_index=True)[columns]


def repeated_best(budget: int = 16, seeds: Sequence[int] = tuple(range(10)),
                  tpe_startup: int = 5) -> pd.DataFrame:
    """Best ``toy_loss`` found by each method within ``budget`` evaluations, for every seed in ``seeds``
    (the grid has no randomness, so it scores the same for every seed). One row per (method, seed)."""
    rows = []
    for seed in seeds:
        points = search_strategies(budget, seed, tpe_startup)
        for method, part in points.groupby("method", sort=False):
            rows.append({"method": method, "seed": seed, "best_loss": float(part["loss"].min())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# 2. Optuna trials in Spark tasks: a batched ask-and-tell loop on the driver
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """What one trial did, where it ran, and how long it took (``start``/``end`` are Unix seconds)."""

    number: int
    params: dict[str, Any]
    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    value: float | None
    intermediate: dict[int, float]
    user_attrs: dict[str, Any]
    partition: int  # the Spark partition, so the task, that ran the trial
    pid: int  # the Python worker process that ran it
    start: float
    end: float
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def as_json(self) -> str:
        return json.dumps({**self.__dict__, "intermediate": {str(k): v for k, v in self.intermediate.items()}})

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        raw = json.loads(text)
        raw["intermediate"] = {int(k): float(v) for k, v in raw["intermediate"].items()}
        return cls(**raw)


def run_trial(objective: Objective, data: Any, number: int, params: Mapping[str, Any],
              space: Mapping[str, BaseDistribution], history: Sequence[optuna.trial.FrozenTrial],
              direction: str, pruner: optuna.pruners.BasePruner, partition: int = -1) -> TrialRecord:
    """Run one trial of ``objective`` with fixed ``params``, wherever this is called (a Spark task).

    The trial belongs to a private in-memory copy of the study that holds ``history`` (the trials the
    driver has finished so far), so ``trial.report`` and ``trial.should_prune()`` inside the objective
    work as usual: the study's ``pruner`` compares this trial with those finished trials. A
    ``TrialPruned`` exception ends the trial as PRUNED; any other exception as FAIL (with its message).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    replica = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=number),
                                  pruner=pruner)
    replica.add_trials(history)
    replica.enqueue_trial(dict(params))
    trial = replica.ask(dict(space))  # the enqueued values, not new samples
    start, value, state, error = time.time(), None, "COMPLETE", ""
    try:
        value = float(objective(trial, data))
    except optuna.TrialPruned:
        state = "PRUNED"
    except Exception as exc:  # a failing setting must not stop the other trials of the batch
        state, error = "FAIL", "".join(traceback.format_exception_only(type(exc), exc)).strip()
    end = time.time()
    frozen = replica.get_trials(deepcopy=False)[-1]  # this trial, with what it reported and set
    intermediate = {int(step): float(v) for step, v in frozen.intermediate_values.items()}
    return TrialRecord(number=number, params=dict(trial.params), state=state, value=value,
                       intermediate=intermediate, user_attrs=dict(frozen.user_attrs), partition=partition,
                       pid=os.getpid(), start=start, end=end, error=error)


def _run_batch(spark: SparkSession, objective: Objective, shared: Any, trials: Sequence[optuna.Trial],
               space: Mapping[str, BaseDistribution], study: optuna.Study) -> list[TrialRecord]:
    """One Spark job: trial ``i`` of the batch runs in partition ``i`` (one task each)."""
    from optuna.trial import TrialState
    from pyspark import TaskContext

    from helpers.distributed import shared_value

    jobs = [(t.number, dict(t.params)) for t in trials]
    history = study.get_trials(deepcopy=True, states=(TrialState.COMPLETE, TrialState.PRUNED))
    direction, pruner, space = study.direction.name.lower(), study.pruner, dict(space)
    # range() splits its ids evenly over numPartitions: exactly one trial per partition, so one per task.
    tasks = spark.range(0, len(jobs), 1, numPartitions=len(jobs))

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        data = shared_value(shared)
        context = TaskContext.get()
        partition = context.partitionId() if context is not None else -1
        for batch in batches:
            for index in batch["id"]:
                number, params = jobs[int(index)]
                record = run_trial(objective, data, number, params, space, history, direction, pruner,
                                   partition)
                yield pd.DataFrame({"number": [number], "record": [record.as_json()]})

    rows = tasks.mapInPandas(run, "number int, record string").toPandas().sort_values("number")
    return [TrialRecord.from_json(text) for text in rows["record"]]


def optimize_on_spark(spark: SparkSession, study: optuna.Study, objective: Objective,
                      space: Mapping[str, BaseDistribution], n_trials: int, batch_size: int,
                      data: Any = None) -> list[TrialRecord]:
    """Run ``n_trials`` trials of ``objective`` as Spark tasks, ``batch_size`` at a time, and record
    them in ``study`` (which stays on the driver). Returns every trial's record, in trial order.

    ``objective(trial, data)`` is a normal Optuna objective: it asks for its settings with
    ``trial.suggest_*`` over the ranges of ``space`` (``suggest`` does that for a whole space), may
    call ``trial.report`` / ``trial.should_prune()`` and ``trial.set_user_attr``, and returns the
    value to optimise. It runs on the executors; PySpark ships it there with cloudpickle (a notebook
    function works), so only the libraries it imports must be installed on every node; ``data`` reaches
    each executor once (a broadcast on a classic session, inside the task's closure over Spark Connect).

    Each batch is one Spark job of ``batch_size`` tasks: the driver asks the sampler for the
    settings (a sampler with ``constant_liar=True`` spreads a batch out instead of proposing one
    point several times), the tasks run them, and the driver tells the study the results in trial
    order, so a seeded sampler proposes the same trials on every run and every cluster.
    """
    import optuna

    from helpers.distributed import share

    if n_trials < 1 or batch_size < 1:
        raise ValueError("n_trials and batch_size must both be at least 1.")
    shared = share(data, spark)
    records: list[TrialRecord] = []
    while len(records) < n_trials:
        trials = [study.ask(dict(space)) for _ in range(min(batch_size, n_trials - len(records)))]
        results = _run_batch(spark, objective, shared, trials, space, study)
        for trial, record in zip(trials, results, strict=True):
            for step, value in sorted(record.intermediate.items()):
                trial.report(value, step)
            for key, value in {**record.user_attrs, "spark_partition": record.partition}.items():
                trial.set_user_attr(key, value)
            if record.state == "COMPLETE":
                study.tell(trial, record.value)
            elif record.state == "PRUNED":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                trial.set_user_attr("error", record.error)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        records.extend(results)
    return records


def trials_frame(records: Sequence[TrialRecord]) -> pd.DataFrame:
    """One row per trial, in trial order: number, state, value, the last step reached, the Spark
    partition that ran it, then the parameters (machine-independent columns only)."""
    rows = [{"trial": r.number, "state": r.state, "value": r.value,
             "last_step": max(r.intermediate) if r.intermediate else None, "spark_partition": r.partition,
             **r.params} for r in records]
    return pd.DataFrame(rows).sort_values("trial").set_index("trial")


# --------------------------------------------------------------------------------------------------
# 3. One nested MLflow run per trial
# --------------------------------------------------------------------------------------------------


#: A trial's state as an MLflow run status (the mapping ``mlflow.optuna.MlflowStorage`` uses too).
_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def log_trials(records: Sequence[TrialRecord], parent_run_id: str, metric: str = "valid_rmse",
               client: Any = None) -> dict[int, str]:
    """Log every trial as a nested MLflow run under ``parent_run_id`` (in the parent's experiment):
    its parameters, its intermediate values as the steps of ``metric``, its final value as
    ``metric`` + "_best", its state and where it ran as tags, with the trial's own start and end times.
    Completed trials end FINISHED, pruned ones KILLED and failed ones FAILED.

    The driver logs from the records the tasks returned, so the tracking store need not be reachable
    from the executors. Returns {trial number: run id}.
    """
    import mlflow
    from mlflow.entities import Metric, Param

    client = client or mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run_ids = {}
    for record in sorted(records, key=lambda r: r.number):
        start_ms, end_ms = int(record.start * 1000), int(record.end * 1000)
        tags = {"mlflow.parentRunId": parent_run_id, "optuna.trial_number": str(record.number),
                "optuna.state": record.state, "spark.partition": str(record.partition),
                "spark.python_worker_pid": str(record.pid)}
        if record.error:
            tags["optuna.error"] = record.error[:5000]
        run = client.create_run(experiment_id, start_time=start_ms, tags=tags,
                                run_name=f"trial {record.number:03d}")
        metrics = [Metric(metric, value, start_ms, step) for step, value in sorted(record.intermediate.items())]
        if record.value is not None:
            metrics.append(Metric(f"{metric}_best", record.value, end_ms, 0))
        metrics.append(Metric("trial_seconds", record.seconds, end_ms, 0))
        params = [Param(k, str(v)) for k, v in sorted(record.params.items())]
        params += [Param(k, str(v)) for k, v in sorted(record.user_attrs.items())]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, status=_RUN_STATUS[record.state], end_time=end_ms)
        run_ids[record.number] = run.info.run_id
    return run_ids


# --------------------------------------------------------------------------------------------------
# 4. The chapter's objective: LightGBM on a validation set, with pruning on the boosting rounds
# --------------------------------------------------------------------------------------------------

#: LightGBM settings every trial shares: reproducible (one thread, deterministic), quiet, rows subsampled
#: per tree, and 63 bins per feature (smaller histograms, faster trials on a few thousand rows).
LIGHTGBM_FIXED: dict[str, Any] = {"subsample": 0.8, "subsample_freq": 1, "max_bin": 63, "verbose": -1,
                                  "random_state": 42, "deterministic": True, "force_row_wise": True, "n_jobs": 1}


@dataclass(frozen=True)
class LightGBMData:
    """A fit/validation pair ready for LightGBM: numeric columns as floats, text columns as pandas
    categories with the categories fixed from the fitting rows (so every frame encodes them alike)."""

    X_fit: pd.DataFrame
    y_fit: pd.Series
    X_valid: pd.DataFrame
    y_valid: pd.Series
    categories: dict[str, list[str]] = field(default_factory=dict)
    max_rounds: int = 400
    report_every: int = 20
    early_stopping: int = 40

    @classmethod
    def from_frames(cls, fit: pd.DataFrame, valid: pd.DataFrame, target: str, categorical: Sequence[str],
                    numeric: Sequence[str], **settings: int) -> LightGBMData:
        categories = categories_of(fit, categorical)
        return cls(model_frame(fit, categories, numeric), fit[target].astype("float64"),
                   model_frame(valid, categories, numeric), valid[target].astype("float64"), categories,
                   **settings)


def categories_of(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """The sorted distinct values of each text column: the categories a LightGBM model is trained with."""
    return {c: sorted(frame[c].dropna().unique().tolist()) for c in columns}


def model_frame(frame: pd.DataFrame, categories: Mapping[str, Sequence[str]],
                numeric: Sequence[str]) -> pd.DataFrame:
    """LightGBM's input: ``numeric`` columns as float64, then each column of ``categories`` as a pandas
    category with exactly those categories (a value not among them becomes missing)."""
    out = frame[list(numeric)].astype("float64")
    for column, values in categories.items():
        out[column] = pd.Categorical(frame[column], categories=list(values))
    return out


def category_codes(numeric: Sequence[str], categorical: Sequence[str]) -> Any:
    """A scikit-learn step for LightGBM inside a logged pipeline: ``numeric`` columns passed through, each
    ``categorical`` column as integer codes (an unseen or missing category becomes NaN), output as a pandas frame
    with the original column names — so LightGBM can split the codes as categories
    (``categorical_feature=...``), and the logged model needs no code from this repository."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    return ColumnTransformer(
        [("numeric", "passthrough", list(numeric)),
         ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                       encoded_missing_value=np.nan), list(categorical))],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def lightgbm_regressor(params: Mapping[str, Any], n_estimators: int) -> Any:
    """An ``LGBMRegressor`` with the tuned ``params`` and the shared ``LIGHTGBM_FIXED`` settings."""
    import lightgbm as lgb

    return lgb.LGBMRegressor(n_estimators=n_estimators, **LIGHTGBM_FIXED, **dict(params))


def lightgbm_pipeline(params: Mapping[str, Any], n_estimators: int, categories: Mapping[str, Sequence[str]],
                      numeric: Sequence[str]) -> Any:
    """A scikit-learn ``Pipeline`` that takes raw columns (numbers, and text for ``categories``), turns
    them into ``model_frame``'s input and applies ``lightgbm_regressor(params, n_estimators)``."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    prepare = FunctionTransformer(model_frame, kw_args={"categories": {k: list(v) for k, v in categories.items()},
                                                         "numeric": list(numeric)})
    return Pipeline([("prepare", prepare), ("lgbm", lightgbm_regressor(params, n_estimators))])


def lightgbm_space() -> dict[str, BaseDistribution]:
    """The chapter's search space for LightGBM: five settings, the scale-like ones on a log scale."""
    from optuna.distributions import FloatDistribution, IntDistribution

    return {
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "num_leaves": IntDistribution(4, 64, log=True),
        "min_child_samples": IntDistribution(5, 50),
        "colsample_bytree": FloatDistribution(0.3, 1.0),
        "reg_lambda": FloatDistribution(1e-3, 10.0, log=True),
    }


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """``trial.suggest_*`` for every parameter of ``space``: the sampler's choice in a normal study, the
    fixed value in a trial whose parameters were set beforehand (as ``run_trial`` does)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, list(dist.choices))
        else:
            raise TypeError(f"suggest: no suggest_* method for {type(dist).__name__} ({name}).")
    return params


def lightgbm_objective(trial: optuna.Trial, data: LightGBMData) -> float:
    """Validation RMSE of an ``LGBMRegressor`` with settings from ``lightgbm_space``: an Optuna objective.

    The model boosts up to ``data.max_rounds`` rounds with early stopping. Every ``data.report_every``
    rounds it reports the validation RMSE to the trial, and stops with ``TrialPruned`` when the
    study's pruner says this trial is doing worse than the finished ones did at the same round.
    Returns the best validation RMSE; the round it was reached is kept as user attribute ``best_rounds``.
    """
    import lightgbm as lgb
    import optuna

    params = suggest(trial, lightgbm_space())

    def report(env: lgb.callback.CallbackEnv) -> None:
        step = env.iteration + 1
        if step % data.report_every == 0:
            trial.report(float(env.evaluation_result_list[0][2]), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after {step} rounds")

    model = lightgbm_regressor(params, data.max_rounds)
    model.fit(data.X_fit, data.y_fit, eval_X=(data.X_valid,), eval_y=(data.y_valid,), eval_metric="rmse",
              callbacks=[report, lgb.early_stopping(data.early_stopping, first_metric_only=True, verbose=False)])
    trial.set_user_attr("best_rounds", int(model.best_iteration_ or data.max_rounds))
    return float(model.best_score_["valid_0"]["rmse"])
