"""AutoML with FLAML, and the best trial written out as a notebook that trains it again from scratch.

An AutoML search tries many *trials* — a learner (LightGBM, a random forest, ...) with one setting of its
hyperparameters — and keeps the best. Databricks AutoML also hands you, for every trial, a notebook with the
code that trained it, to read, edit and re-run. FLAML gives the search but not the notebook; this module
writes it:

    trial = automl_trial(automl, "lending_club", target="label", experiment="17-automl")
    path = write_notebook(trial, data_path)      # an ordinary, editable notebook (nbformat)
    executed = execute(path)                     # papermill, in a kernel of its own
    result(executed)["validation_roc_auc"]       # the trial's metric, reproduced

The notebook depends on pandas, scikit-learn and the learner's own library only (not on FLAML), and
prepares the data exactly as FLAML did during the search: text columns become categories fixed at
training time (missing and unseen values go to FLAML's ``"__NAN__"`` slot), missing numbers get the
training median; LightGBM splits on the categories natively, the scikit-learn and XGBoost learners get
each category's number, FLAML's k-nearest-neighbours learner leaves text columns out.

Importing FLAML starts a Spark session (``flaml.tune`` checks for Spark on import), so FLAML is only
imported inside the functions that need it, after the notebook's own ``helpers.start``.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.paths import display_path, project_root, work_dir

if TYPE_CHECKING:
    import nbformat
    import pandas as pd
    from matplotlib.figure import Figure
    from pyspark.sql import DataFrame
    from sklearn.pipeline import Pipeline

#: The column of a data snapshot that says which set a row belongs to (as Databricks AutoML's split column).
SPLIT_COLUMN = "_automl_split"
SPLITS = ("train", "validate", "test")
#: FLAML's category for missing values and for values not seen in training.
NAN_CATEGORY = "__NAN__"
#: FLAML's fixed random seed (``flaml.config.RANDOM_SEED``), with which it shuffles the training rows once.
FLAML_RANDOM_SEED = 1
#: Metrics where larger is better; FLAML minimises ``1 - metric`` for them.
MAXIMISED = ("roc_auc", "accuracy", "ap", "f1", "r2", "micro_f1", "macro_f1", "roc_auc_ovr", "roc_auc_ovo")
#: How the metrics are written for people.
METRIC_NAMES = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "rmse": "RMSE", "mae": "MAE", "r2": "R²"}
#: The search settings that make a FLAML search repeat exactly: learners tried in turn instead of by their
#: measured cost, no time budget (a trial count instead), one thread per model, and a fixed validation set.
DETERMINISTIC = {"learner_selector": "roundrobin", "time_budget": -1, "n_jobs": 1, "seed": 42,
                 "eval_method": "holdout", "retrain_full": False, "verbose": 0}


@dataclass(frozen=True)
class Learner:
    """How one FLAML learner maps onto its library: the classes it trains and how its input is prepared."""

    name: str  # FLAML's name, as in ``estimator_list``
    family: str  # what a person calls it
    module: str
    classifier: str | None
    regressor: str | None
    #: "category" (pandas categories), "codes" (category numbers) or "numeric" (text columns left out)
    input: str
    package: str  # the distribution to pin when the model is logged

    def estimator_class(self, task: str) -> str:
        """The class name for ``task`` ("classification" or "regression")."""
        name = self.classifier if task == "classification" else self.regressor
        if name is None:
            raise ValueError(f"FLAML's {self.name!r} learner does not do {task}.")
        return name


LEARNERS = {
    learner.name: learner
    for learner in (
        Learner("lgbm", "LightGBM", "lightgbm", "LGBMClassifier", "LGBMRegressor", "category", "lightgbm"),
        Learner("xgboost", "XGBoost (leaf-wise)", "xgboost", "XGBClassifier", "XGBRegressor", "codes",
                "xgboost-cpu"),
        Learner("xgb_limitdepth", "XGBoost (depth-wise)", "xgboost", "XGBClassifier", "XGBRegressor", "codes",
                "xgboost-cpu"),
        Learner("rf", "random forest", "sklearn.ensemble", "RandomForestClassifier", "RandomForestRegressor",
                "codes", "scikit-learn"),
        Learner("extra_tree", "extra trees", "sklearn.ensemble", "ExtraTreesClassifier",
                "ExtraTreesRegressor", "codes", "scikit-learn"),
        Learner("lrl1", "logistic regression (L1)", "sklearn.linear_model", "LogisticRegression", None,
                "codes", "scikit-learn"),
        Learner("lrl2", "logistic regression (L2)", "sklearn.linear_model", "LogisticRegression", None,
                "codes", "scikit-learn"),
        Learner("kneighbor", "k nearest neighbours", "sklearn.neighbors", "KNeighborsClassifier",
                "KNeighborsRegressor", "numeric", "scikit-learn"),
    )
}


@dataclass(frozen=True)
class Trial:
    """One AutoML trial, with everything needed to train it again: the data's columns, the learner, FLAML's
    hyperparameters (``config``), the library's constructor arguments they translate to (``params``), and the
    metric the trial reached on the validation set (``value``)."""

    dataset: str
    task: str  # "classification" (binary) or "regression"
    target: str
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    learner: str
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metric: str = "roc_auc"
    value: float = math.nan
    experiment: str = ""
    search_run_id: str = ""

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', not {self.task!r}.")
        if self.learner not in LEARNERS:
            raise ValueError(f"Unknown FLAML learner {self.learner!r}; known: {', '.join(LEARNERS)}.")
        LEARNERS[self.learner].estimator_class(self.task)  # raises for a classifier asked to do regression

    @property
    def features(self) -> list[str]:
        """The model's input columns, in FLAML's order: text columns first, then numbers."""
        return [*self.categorical, *self.numeric]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Trial:
        values = json.loads(text)
        values.update(categorical=tuple(values["categorical"]), numeric=tuple(values["numeric"]))
        return cls(**values)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so it prints as a literal and logs cleanly)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    return value


def library_params(task: str, learner: str, config: Mapping[str, Any], n_jobs: int = 1) -> dict[str, Any]:
    """The constructor arguments FLAML gives the library for a trial's ``config`` (its search-space names):
    e.g. LightGBM's ``log_max_bin`` becomes ``max_bin = 2**log_max_bin - 1``, and fixed settings such as
    ``random_state`` or ``verbose`` are added."""
    from flaml.automl.task.factory import task_factory

    flaml_task = task_factory("binary" if task == "classification" else "regression")
    learner_class = flaml_task.estimator_class_from_str(learner)
    estimator = learner_class(task=flaml_task.name, n_jobs=n_jobs, **dict(config))
    return {name: _plain(value) for name, value in estimator.params.items()}


def metric_value(metric: str, loss: float) -> float:
    """A FLAML validation loss as the metric it stands for (``1 - loss`` where larger is better)."""
    return 1.0 - loss if metric in MAXIMISED else loss


def automl_trial(automl: Any, dataset: str, target: str, learner: str | None = None, experiment: str = "",
                 search_run_id: str = "", n_jobs: int = 1) -> Trial:
    """The best trial of a fitted ``flaml.AutoML`` — overall, or of one ``learner`` — as a :class:`Trial`."""
    learner = learner or automl.best_estimator
    config = automl.best_config_per_estimator[learner]
    if config is None:
        raise ValueError(f"The search has no finished trial of {learner!r}.")
    metric = automl._state.metric if isinstance(automl._state.metric, str) else "custom"
    task = "classification" if automl._state.task.is_classification() else "regression"
    transformer = automl.feature_transformer
    return Trial(
        dataset=dataset,
        task=task,
        target=target,
        categorical=tuple(transformer._cat_columns),
        numeric=tuple(transformer._num_columns),
        learner=learner,
        config={name: _plain(value) for name, value in config.items()},
        params=library_params(task, learner, config, n_jobs=n_jobs),
        metric=metric,
        value=float(metric_value(metric, automl.best_loss_per_estimator[learner])),
        experiment=experiment,
        search_run_id=search_run_id,
    )


def to_pandas(frame: DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of a Spark DataFrame as pandas, rows sorted by all of them so that the order (which some
    learners depend on) does not depend on how Spark partitioned the data."""
    from helpers.tables import ordered_pandas

    return ordered_pandas(frame.select(*columns), columns)


# --- re-training a trial in Python (the notebook below writes the same steps out as code) -------------------


def _prepare(frame: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str],
             categories: Mapping[str, list[str]], medians: pd.Series, kind: str) -> pd.DataFrame:
    import pandas as pd

    out = frame[[*categorical, *numeric]].copy()
    for column in categorical:
        values = out[column].astype(object).where(out[column].isin(categories[column]), NAN_CATEGORY)
        out[column] = pd.Categorical(values, categories=categories[column])
    out[list(numeric)] = out[list(numeric)].astype("float64").fillna(medians)
    if kind == "codes":
        out[list(categorical)] = out[list(categorical)].apply(lambda column: column.cat.codes)
    elif kind == "numeric":
        out = out[list(numeric)]
    return out


def search_order(train: pd.DataFrame) -> pd.DataFrame:
    """The training rows in the order FLAML's search trains on them: before the first trial it shuffles them
    once, with its fixed seed. The order matters to some learners — a random forest's bootstrap samples, the
    stochastic solver of the L1 logistic regression — so a trial is reproduced only on rows in this order."""
    from sklearn.utils import shuffle

    return shuffle(train, random_state=FLAML_RANDOM_SEED).reset_index(drop=True)


def training_categories(train: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Each text column's categories as FLAML fixes them at training time: the values seen, sorted, plus
    ``"__NAN__"`` for missing and unseen values."""
    categories = {}
    for column in categorical:
        seen = sorted(train[column].fillna(NAN_CATEGORY).unique())
        categories[column] = seen if NAN_CATEGORY in seen else [*seen, NAN_CATEGORY]
    return categories


def pipeline(trial: Trial, train: pd.DataFrame) -> Pipeline:
    """An unfitted scikit-learn pipeline for ``trial``: FLAML's data preparation (its categories and medians
    taken from ``train``), then the learner's library class with the trial's ``params``."""
    import importlib
    from functools import partial

    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    learner = LEARNERS[trial.learner]
    categories = training_categories(train, trial.categorical)
    medians = train[list(trial.numeric)].astype("float64").median()
    prepare = partial(_prepare, categorical=trial.categorical, numeric=trial.numeric, categories=categories,
                      medians=medians, kind=learner.input)
    estimator = getattr(importlib.import_module(learner.module), learner.estimator_class(trial.task))
    return Pipeline([("prepare", FunctionTransformer(prepare)), ("model", estimator(**trial.params))])


def fit(trial: Trial, train: pd.DataFrame) -> Pipeline:
    """``trial`` trained again on ``train`` (in the order given: see :func:`search_order`)."""
    return pipeline(trial, train).fit(train, train[trial.target])


def evaluate(trial: Trial, model: Pipeline, frame: pd.DataFrame, digits: int = 4) -> dict[str, float]:
    """Classification: ROC AUC and PR AUC (area under the precision-recall curve); regression: RMSE, MAE and
    R². Computed on ``frame`` with scikit-learn, as FLAML computes its metric."""
    import numpy as np
    from sklearn import metrics

    actual = frame[trial.target].to_numpy()
    if trial.task == "classification":
        score = model.predict_proba(frame)[:, 1]
        precision, recall, _ = metrics.precision_recall_curve(actual, score)
        values = {"roc_auc": metrics.roc_auc_score(actual, score), "pr_auc": metrics.auc(recall, precision)}
    else:
        predicted = model.predict(frame)
        values = {"rmse": float(np.sqrt(metrics.mean_squared_error(actual, predicted))),
                  "mae": metrics.mean_absolute_error(actual, predicted),
                  "r2": metrics.r2_score(actual, predicted)}
    return {name: round(float(value), digits) for name, value in values.items()}


# --- the search's trials, as MLflow recorded them ------------------------------------------------------


def trials(search_run_id: str, metric: str) -> pd.DataFrame:
    """Every trial of a FLAML search run inside MLflow run ``search_run_id``, read back from the tracking
    store (FLAML logs each one as a nested run): ``trial`` (0, 1, ...), ``learner``, ``family``, the trial's
    ``metric`` and the best value so far (``best_so_far``), ordered by trial."""
    import mlflow

    runs = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{search_run_id}'",
                              search_all_experiments=True, max_results=10_000)
    if runs.empty:
        raise ValueError(f"Run {search_run_id} has no nested trial runs: was the search fitted inside it, "
                         "with FLAML's mlflow_logging on?")
    frame = (runs[["metrics.iter_counter", "params.learner", "metrics.validation_loss"]]
             .rename(columns={"metrics.iter_counter": "trial", "params.learner": "learner",
                              "metrics.validation_loss": "loss"})
             .astype({"trial": int}).sort_values("trial").reset_index(drop=True))
    frame[metric] = [metric_value(metric, loss) for loss in frame["loss"]]
    best = frame[metric].cummax() if metric in MAXIMISED else frame[metric].cummin()
    frame["family"] = frame["learner"].map(lambda name: LEARNERS[name].family if name in LEARNERS else name)
    frame = frame.assign(best_so_far=best)
    return frame[["trial", "learner", "family", metric, "best_so_far"]]


def family_results(automl: Any, history: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, dataset: str,
                   target: str) -> dict[str, dict[str, float]]:
    """The leaderboard's rows, one per learner family (for ``helpers.evaluation.leaderboard``): its number
    of trials, the best trial's validation metric, and that trial trained again on ``train`` (the rows given
    to the search, which this puts in the search's order) and scored on ``test``."""
    ordered = search_order(train)
    results = {}
    for learner, config in automl.best_config_per_estimator.items():
        if config is None:
            continue
        trial = automl_trial(automl, dataset, target, learner=learner)
        row = {"trials": float((history["learner"] == learner).sum()),
               f"validation {trial.metric}": round(trial.value, 4)}
        scores = evaluate(trial, fit(trial, ordered), test)
        row.update({f"test {name}": value for name, value in scores.items()})
        results[f"{LEARNERS[learner].family} ({learner})"] = row
    return results


def plot_search(history: pd.DataFrame, metric: str, title: str) -> Figure:
    """Every trial's validation metric, one colour per learner family, and the best value so far (from
    :func:`trials`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 5))
    for index, (family, part) in enumerate(history.groupby("family", sort=False)):
        ax.scatter(part["trial"], part[metric], s=24, color=f"C{index}", alpha=0.85, label=family, zorder=3)
    ax.step(history["trial"], history["best_so_far"], where="post", color="black", linewidth=1.5,
            label="best so far", zorder=4)
    ax.set_xlabel("trial (the learners take turns)")
    ax.set_ylabel(f"validation {METRIC_NAMES.get(metric, metric)}")
    ax.legend(frameon=False, fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_leaderboard(board: pd.DataFrame, metric: str, references: Mapping[str, float], title: str) -> Figure:
    """Each family's best trial: its validation metric (what the search compared) and its test metric (new
    data), with dashed lines for ``references`` (other models' test metrics, published figures)."""
    import matplotlib.pyplot as plt
    import numpy as np

    name = METRIC_NAMES.get(metric, metric)
    rows = board.iloc[::-1]  # the best at the top
    position = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9.5, 0.55 * len(rows) + 1.8))
    ax.barh(position + 0.2, rows[f"validation {metric}"], height=0.38, color="C0", label=f"validation {name}")
    ax.barh(position - 0.2, rows[f"test {metric}"], height=0.38, color="C1", label=f"test {name}")
    for index, (label, value) in enumerate(references.items()):
        ax.axvline(value, color=f"C{index + 2}", linestyle="--", linewidth=1.2, label=f"{label}: {value:.4f}")
    values = np.concatenate([rows[f"validation {metric}"], rows[f"test {metric}"], list(references.values())])
    span = float(values.max() - values.min())
    ax.set_xlim(max(0.0, float(values.min()) - 0.1 * span), float(values.max()) + 0.05 * span)
    ax.set_yticks(position, rows.index)
    ax.set_xlabel(name)
    ax.legend(frameon=False, fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title)
    fig.tight_layout()
    return fig


# --- the data snapshot the trial notebooks read -------------------------------------------------------


def save_snapshot(train: pd.DataFrame, validate: pd.DataFrame, test: pd.DataFrame, path: Path | str,
                  in_search_order: bool = True) -> Path:
    """The three sets in one Parquet file, with :data:`SPLIT_COLUMN` saying which set each row is in, so a
    trial notebook trains and scores on exactly the rows the search used. ``train`` is the frame given to the
    search; with ``in_search_order`` its rows are stored in the order the search trained on them
    (:func:`search_order`)."""
    import pandas as pd

    path = Path(path)
    train = search_order(train) if in_search_order else train
    path.parent.mkdir(parents=True, exist_ok=True)
    sets = zip(SPLITS, (train, validate, test), strict=True)
    parts = [frame.assign(**{SPLIT_COLUMN: name}) for name, frame in sets]
    pd.concat(parts, ignore_index=True).to_parquet(path, index=False)
    return path


def load_snapshot(path: Path | str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(train, validate, test)`` from a snapshot written by :func:`save_snapshot`; a relative ``path`` is
    read from the project's root folder."""
    import pandas as pd

    path = Path(path)
    frame = pd.read_parquet(path if path.is_absolute() else project_root() / path)
    return tuple(frame[frame[SPLIT_COLUMN] == name].drop(columns=SPLIT_COLUMN).reset_index(drop=True)
                 for name in SPLITS)


# --- the trial notebook -------------------------------------------------------------------------------


def _portable(path: Path) -> str:
    """``path`` relative to the project's root when it lies inside it (so the notebook runs on any checkout),
    else as it is."""
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return path.as_posix()


def _literal(value: Any, indent: int = 4) -> str:
    """``value`` as Python source: a dict or list one item per line, everything else by ``repr``."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + "".join(f"{pad}{key!r}: {_literal(item)},\n" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        lines, line = [], pad
        for item in value:
            piece = f"{item!r}, "
            if len(line) + len(piece) > 110:
                lines.append(line.rstrip())
                line = pad
            line += piece
        lines.append(line.rstrip())
        return "[\n" + "\n".join(lines) + "\n]"
    return repr(value)


def _hyperparameter_table(trial: Trial) -> str:
    rows = ["| FLAML searched | the library gets |", "|---|---|"]
    searched = set(trial.config)
    for name, value in trial.config.items():
        shown = f"{value:.6g}" if isinstance(value, float) else repr(value)
        if name in trial.params:
            rows.append(f"| `{name}` = {shown} | `{name}` (the same) |")
        elif name == "log_max_bin":
            max_bin = trial.params.get("max_bin")
            rows.append(f"| `log_max_bin` = {shown} | `max_bin` = 2^{value} − 1 = {max_bin} |")
        elif name == "max_leaves" and "max_leaf_nodes" in trial.params:
            rows.append(f"| `max_leaves` = {shown} | `max_leaf_nodes` = {trial.params['max_leaf_nodes']} |")
        else:
            rows.append(f"| `{name}` = {shown} | (translated by FLAML) |")
    fixed = [f"`{name}` = {value!r}" for name, value in trial.params.items()
             if name not in searched and name not in ("max_bin", "max_leaf_nodes")]
    if fixed:
        rows.append(f"| (fixed by FLAML) | {', '.join(fixed)} |")
    return "\n".join(rows)


_INPUT_STEP = {
    "category": (
        "    # LightGBM splits on pandas categories itself: nothing more to do.\n",
        "LightGBM splits on the categories natively (a split can send any group of categories left or "
        "right).",
    ),
    "codes": (
        "    # each category's number (its position in CATEGORIES)\n"
        "    out[CATEGORICAL] = out[CATEGORICAL].apply(lambda column: column.cat.codes)\n",
        "this learner needs numbers, so each category is replaced by its position in the sorted list — "
        "FLAML's choice; trees cope, but a linear model or a distance then treats the codes as quantities.",
    ),
    "numeric": (
        "    out = out[NUMERIC]  # FLAML's k-nearest-neighbours learner leaves the text columns out\n",
        "FLAML's k-nearest-neighbours learner leaves the text columns out, and measures distances on the "
        "unscaled numbers.",
    ),
}


def notebook(trial: Trial, data_path: Path | str) -> nbformat.NotebookNode:
    """The trial notebook: title, a ``parameters`` cell, then load → prepare → train → evaluate → track, each
    step explained, ending with a cell tagged ``result`` whose output is a dict of the metrics it reached."""
    import nbformat

    learner = LEARNERS[trial.learner]
    estimator = learner.estimator_class(trial.task)
    classification = trial.task == "classification"
    metric_name = {"roc_auc": "ROC AUC", "rmse": "RMSE"}.get(trial.metric, trial.metric)
    data = _portable(Path(data_path))
    prepare_extra, prepare_words = _INPUT_STEP[learner.input]
    packages = dict.fromkeys(("scikit-learn", "pandas", learner.package))  # in order, without repeats
    requirements = ", ".join(repr(name) for name in packages)
    cells: list[tuple[str, str, list[str]]] = []

    def add(kind: str, text: str, tags: Sequence[str] = ()) -> None:
        cells.append((kind, text.strip("\n"), list(tags)))

    add("md", f"""
# AutoML trial: {learner.family} on `{trial.dataset}`

This notebook was **generated** from the best trial of an AutoML search (FLAML, experiment
`{trial.experiment or "-"}`, search run `{trial.search_run_id or "-"}`) by `helpers.automl.write_notebook`.
It trains that model again **from scratch** — the same rows, the same data preparation, the same
hyperparameters — with nothing but pandas, scikit-learn and `{learner.module.split(".")[0]}`: no AutoML
library is needed to run it. Read it, change it, re-run it: it is yours now.

| | |
|---|---|
| task | {"binary classification" if classification else "regression"} of `{trial.target}` |
| model | `{learner.module}.{estimator}` (FLAML learner `{trial.learner}`) |
| search's result | validation {metric_name} **{trial.value:.4f}** |

Steps: 1 · load the rows the search used · 2 · prepare them as FLAML did · 3 · train · 4 · evaluate on the
same validation rows (and, once, on the test rows) · 5 · track the run and the model in MLflow.
""")
    add("code", f"""
data_path = {data!r}  # the AutoML data snapshot: train, validate and test rows in one file
experiment = {trial.experiment or "automl-trials"!r}  # the MLflow experiment to log the re-trained model to
""", ["parameters"])
    add("code", f"""
import logging

import helpers
import mlflow
import numpy as np
import pandas as pd
from helpers import automl, plots
from helpers.tracking import pinned_requirements, use_experiment
from {learner.module} import {estimator}
from sklearn import metrics
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

plots.use_style()
use_experiment(experiment)
LEARNER, METRIC, SEARCH_VALUE = {trial.learner!r}, {trial.metric!r}, {trial.value!r}
""")
    add("md", f"""
## 1 · The rows the search used

The AutoML run saved its data with a column `{SPLIT_COLUMN}` saying which set each row was in, as Databricks
AutoML does: **train** (the models learn from it), **validate** (the search compared its trials on it) and
**test** (held out; the search never saw it). The training rows are stored in the order the search trained
on them (FLAML shuffles them once, with a fixed seed): a random forest's bootstrap samples depend on it.
""")
    add("code", f"""
train, validate, test = automl.load_snapshot(data_path)
TARGET = {trial.target!r}
print(f"train {{len(train):,}} · validate {{len(validate):,}} · test {{len(test):,}} rows")
""")
    add("md", f"""
## 2 · Preparing the data as FLAML did

FLAML prepared the columns before every trial; here the same steps are written out, for you to change:

- **text columns** become categories, their values fixed from the training rows (sorted); a missing or unseen
  value goes to the extra category `"{NAN_CATEGORY}"`;
- **missing numbers** are replaced by the training median (this data may have none: the step is kept so
  that new data with gaps still works);
- {prepare_words}

The function goes first in a scikit-learn `Pipeline`, so the model takes raw rows — the same thing a serving
endpoint will hand it.
""")
    add("code", f"""
CATEGORICAL = {_literal(list(trial.categorical))}
NUMERIC = {_literal(list(trial.numeric))}
NAN = {NAN_CATEGORY!r}
CATEGORIES = {{}}
for column in CATEGORICAL:
    seen = sorted(train[column].fillna(NAN).unique())
    CATEGORIES[column] = seen if NAN in seen else seen + [NAN]
MEDIANS = train[NUMERIC].astype("float64").median()


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    \"\"\"The model's input, prepared as FLAML prepared it during the search.\"\"\"
    out = frame[CATEGORICAL + NUMERIC].copy()
    for column in CATEGORICAL:
        values = out[column].astype(object).where(out[column].isin(CATEGORIES[column]), NAN)
        out[column] = pd.Categorical(values, categories=CATEGORIES[column])
    out[NUMERIC] = out[NUMERIC].astype("float64").fillna(MEDIANS)
{prepare_extra}    return out


prepare(validate).head(3)
""")
    add("md", f"""
## 3 · The model and its hyperparameters

FLAML searched the hyperparameters below (its names on the left) and passed them to `{estimator}` as on the
right; it also fixes a few settings itself (one thread, a seed, quiet output):

{_hyperparameter_table(trial)}
""")
    add("code", f"""
PARAMS = {_literal(trial.params)}
model = Pipeline([("prepare", FunctionTransformer(prepare)), ("model", {estimator}(**PARAMS))])
_ = model.fit(train, train[TARGET])
""")
    if classification:
        add("md", """
## 4 · Evaluation

First the **validation** rows, where the search measured this trial: the ROC AUC must come out the same,
which shows that this notebook is the trial. Then the **test** rows, which no part of the search has seen:
their ROC AUC is the honest estimate for new data, because the search chose this trial *for* its validation
score.
""")
        add("code", """
scores = {"validation": model.predict_proba(validate)[:, 1], "test": model.predict_proba(test)[:, 1]}
actual = {"validation": validate[TARGET], "test": test[TARGET]}
results = {f"{name}_roc_auc": metrics.roc_auc_score(actual[name], scores[name]) for name in scores}
precision, recall, _ = metrics.precision_recall_curve(actual["test"], scores["test"])
results["test_pr_auc"] = metrics.auc(recall, precision)
print(f"validation ROC AUC {results['validation_roc_auc']:.4f} here, {SEARCH_VALUE:.4f} in the AutoML search")
print(f"test ROC AUC {results['test_roc_auc']:.4f}, test PR AUC {results['test_pr_auc']:.4f}")
curves = {}
for name in scores:
    fpr, tpr, _ = metrics.roc_curve(actual[name], scores[name])
    curves[name] = (fpr, tpr, results[f"{name}_roc_auc"])
figure = plots.roc_curve(curves, "ROC curve of the re-trained trial")
""")
        model_kwargs = '\n                             pyfunc_predict_fn="predict_proba",'
        figure_file = "roc_curve.png"
    else:
        add("md", f"""
## 4 · Evaluation

First the **validation** rows, where the search measured this trial: the RMSE must come out the same, which
shows that this notebook is the trial. Then the **test** rows, which no part of the search has seen: their
metrics are the honest estimate for new data, because the search chose this trial *for* its validation
score. The target is `{trial.target}`, so the errors are in its units.
""")
        add("code", """
predicted = {"validation": model.predict(validate), "test": model.predict(test)}
actual = {"validation": validate[TARGET].to_numpy(), "test": test[TARGET].to_numpy()}
results = {f"{name}_rmse": float(np.sqrt(metrics.mean_squared_error(actual[name], predicted[name])))
           for name in predicted}
results["test_mae"] = metrics.mean_absolute_error(actual["test"], predicted["test"])
results["test_r2"] = metrics.r2_score(actual["test"], predicted["test"])
print(f"validation RMSE {results['validation_rmse']:.4f} here, {SEARCH_VALUE:.4f} in the AutoML search")
print(f"test RMSE {results['test_rmse']:.4f}, MAE {results['test_mae']:.4f}, R² {results['test_r2']:.3f}")
figure = plots.predicted_vs_actual(actual["test"], predicted["test"], "Re-trained trial: test rows",
                                   unit=TARGET)
""")
        model_kwargs = ""
        figure_file = "predicted_vs_actual.png"
    add("md", """
## 5 · Tracking

One MLflow run in the experiment named by the `experiment` parameter: the hyperparameters, the metrics, the
figure, and the whole pipeline as a model. The pipeline contains the `prepare` function written above, so it
is saved with **cloudpickle** (MLflow's default format outside Databricks, skops, refuses code); load such a
model only from a registry you trust. The run is tagged with the search run it came from.
""")
    add("code", f"""
# MLflow warns on every cloudpickle save that unpickling can run code; the choice is explained above.
logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
example = validate[CATEGORICAL + NUMERIC].head(3).astype({{column: "float64" for column in NUMERIC}})
with mlflow.start_run(run_name=f"{{LEARNER}}: re-trained from the AutoML trial notebook") as run:
    mlflow.set_tags({{"automl.search_run_id": {trial.search_run_id!r}, "automl.learner": LEARNER}})
    mlflow.log_params(PARAMS)
    mlflow.log_metrics(results)
    mlflow.log_figure(figure, {figure_file!r})
    mlflow.sklearn.log_model(model, name="model", input_example=example,{model_kwargs}
                             serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                             pip_requirements=pinned_requirements({requirements}))
print(f"logged to experiment {{experiment!r}}")
""")
    add("md", """
## Result

The metrics this notebook reached, next to the search's (a notebook that runs this one reads this cell).
""")
    add("code", """
result = {"learner": LEARNER, "metric": METRIC, "search": round(SEARCH_VALUE, 6),
          **{name: round(float(value), 6) for name, value in results.items()}}
result
""", ["result"])

    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                   "language": "python"}
    book.metadata["language_info"] = {"name": "python"}
    book.metadata["automl_trial"] = json.loads(trial.to_json())
    for kind, text, tags in cells:
        cell = nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        book.cells.append(cell)
    return book


def write_notebook(trial: Trial, data_path: Path | str, path: Path | str | None = None) -> Path:
    """Write the trial notebook (default: ``.work/automl/<dataset>/<dataset>-<learner>-trial.ipynb``)."""
    import nbformat

    name = f"{trial.dataset}-{trial.learner}-trial.ipynb"
    path = Path(path) if path else work_dir("automl", trial.dataset) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook(trial, data_path), path)
    return path


def outline(path: Path | str) -> list[str]:
    """The notebook's headings (markdown lines starting with ``#``), in order."""
    import nbformat

    book = nbformat.read(path, as_version=4)
    return [line.strip() for cell in book.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def execute(path: Path | str, output: Path | str | None = None, parameters: Mapping[str, Any] | None = None,
            timeout: int = 600) -> Path:
    """Run the notebook with papermill in a fresh ``python3`` kernel (as ``helpers.runner`` does) and return
    the executed copy (default: ``<name>.executed.ipynb`` beside it; the kernel's own messages go to
    ``<name>.executed.stderr.log``)."""
    import papermill as pm

    path = Path(path)
    output = Path(output) if output else path.with_suffix(".executed.ipynb")
    with _stderr_to(output.with_suffix(".stderr.log")):
        pm.execute_notebook(str(path), str(output), parameters=dict(parameters or {}),
                            kernel_name="python3", cwd=str(path.parent), progress_bar=False,
                            log_output=False, execution_timeout=timeout)
    return output


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point this process's standard error (file descriptor 2) at ``path`` while the block runs, so that a
    kernel started inside it writes its start-up notices there — not into the output of the notebook that
    called it."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "w") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def result(path: Path | str) -> dict[str, Any]:
    """The dict an executed trial notebook shows in its cell tagged ``result``."""
    import nbformat

    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if "result" in cell.metadata.get("tags", []):
            for out in cell.get("outputs", []):
                if "text/plain" in out.get("data", {}):
                    return ast.literal_eval(out["data"]["text/plain"])
    raise ValueError(f"{display_path(path)} has no output in a cell tagged 'result': was it executed?")
