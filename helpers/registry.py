"""Model-registry lifecycle: register versions, judge a challenger against the champion on a fixed
validation set (the approval gate), move the ``champion``/``challenger`` aliases, trace a version's
lineage, and archive or delete old versions.

Works on any MLflow registry (the curriculum's SQLite store, an MLflow server, Databricks). Aliases are
read with ``MlflowClient.get_model_version_by_alias`` / ``get_registered_model(...).aliases``: on the
SQLite store ``search_model_versions`` returns versions without their aliases.

    version = registry.register(model_info, "flight_delay", description="...")
    decision = registry.gate("flight_delay", version.version, validation)  # evaluate, decide, tag, aliases
    print(decision.reason)
    registry.lineage("flight_delay", version.version)                      # run, code, data checksums
    registry.archive("flight_delay", "1", reason="superseded")              # or registry.delete_version(...)

Version tags written by the gate (all strings): ``gate.decision`` (``promoted``/``refused``),
``gate.reason``, ``gate.<metric>`` for each metric, ``gate.compared_with`` (the champion's version, or
``none``); on a replaced champion ``gate.superseded_by``. ``archive`` writes ``lifecycle=archived`` and
``lifecycle.reason``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Direction of every metric ``classification_metrics`` returns: True when higher is better.
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False}
#: The same for ``regression_metrics``.
REGRESSION_HIGHER_IS_BETTER = {"rmse": False, "mae": False, "r2": True}
REGRESSION_METRICS = tuple(REGRESSION_HIGHER_IS_BETTER)
#: Every metric a gate policy may use, with its direction.
DIRECTIONS = {**HIGHER_IS_BETTER, **REGRESSION_HIGHER_IS_BETTER}
CODE_VERSION_TAG = "code.git_commit"
CODE_DIRTY_TAG = "code.git_dirty"
DATASET_TAG = "dataset.{name}.sha256"


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


# ------------------------------------------------------------------------------------------ metrics


def positive_scores(output: Any) -> np.ndarray:
    """The positive-class score per row from a pyfunc model's output: column 1 of a two-column
    ``predict_proba`` result, or the only column / the vector as it is."""
    values = np.asarray(output.to_numpy() if hasattr(output, "to_numpy") else output, dtype="float64")
    if values.ndim == 2:
        return values[:, 1] if values.shape[1] == 2 else values[:, 0]
    return values


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log-loss and Brier score of probabilities ``scores`` for 0/1
    ``labels`` (see ``HIGHER_IS_BETTER`` for their directions)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    labels = np.asarray(labels)
    scores = np.clip(np.asarray(scores, dtype="float64"), 1e-15, 1 - 1e-15)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "log_loss": float(log_loss(labels, scores, labels=[0, 1])),
        "brier": float(brier_score_loss(labels, scores)),
    }


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of ``predictions`` for numeric ``labels`` (see ``REGRESSION_HIGHER_IS_BETTER``)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    labels = np.asarray(labels, dtype="float64")
    predictions = np.asarray(predictions, dtype="float64").reshape(len(labels), -1)[:, 0]
    return {
        "rmse": float(np.sqrt(mean_squared_error(labels, predictions))),
        "mae": float(mean_absolute_error(labels, predictions)),
        "r2": float(r2_score(labels, predictions)),
    }


def evaluate(model_uri: str, frame: pd.DataFrame, label: str = "label",
             features: Sequence[str] | None = None, task: str = "classification") -> dict[str, float]:
    """Load ``model_uri`` as a generic pyfunc model — what batch jobs and servers load — score ``frame``
    and return ``classification_metrics`` (``task="classification"``, the model returns probabilities) or
    ``regression_metrics`` (``task="regression"``). ``features`` defaults to the input columns of the
    model's signature."""
    import mlflow

    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
    model = mlflow.pyfunc.load_model(model_uri)
    columns = list(features) if features is not None else model.metadata.get_input_schema().input_names()
    output = model.predict(frame[columns])
    if task == "regression":
        values = output.to_numpy() if hasattr(output, "to_numpy") else output
        return regression_metrics(frame[label].to_numpy(), values)
    return classification_metrics(frame[label].to_numpy(), positive_scores(output))


# ------------------------------------------------------------------------------------------ the gate


@dataclass(frozen=True)
class GatePolicy:
    """When a challenger may replace the champion.

    ``metric`` (the primary metric) must be at least as good as the champion's, give or take
    ``tolerance``; ``guard`` (a second metric, optional) may be at most ``guard_tolerance`` worse; and
    ``metric`` must reach ``floor`` even when there is no champion yet (so the first version is not
    promoted blindly).
    """

    metric: str = "roc_auc"
    tolerance: float = 0.0
    guard: str | None = "log_loss"
    guard_tolerance: float = 0.005
    floor: float = 0.6

    def __post_init__(self) -> None:
        for name in (self.metric, self.guard):
            if name is not None and name not in DIRECTIONS:
                raise ValueError(f"unknown metric {name!r}; known: {', '.join(DIRECTIONS)}")
        if self.guard is not None and (self.guard in REGRESSION_METRICS) != (self.metric in REGRESSION_METRICS):
            raise ValueError(f"metric {self.metric!r} and guard {self.guard!r} must both be classification "
                             "metrics or both regression metrics")
        if self.tolerance < 0 or self.guard_tolerance < 0:
            raise ValueError("tolerances must be zero or positive")

    @property
    def task(self) -> str:
        """``"regression"`` when the policy judges by a regression metric, else ``"classification"``."""
        return "regression" if self.metric in REGRESSION_METRICS else "classification"


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on one version, with the numbers it was based on."""

    version: str
    promoted: bool
    reason: str
    challenger: Mapping[str, float]
    champion: Mapping[str, float] | None = None
    champion_version: str | None = None
    policy: GatePolicy = field(default_factory=GatePolicy)

    @property
    def label(self) -> str:
        return "promoted" if self.promoted else "refused"


def _worse_by(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is (positive) or better (negative), in the metric's units."""
    return champion - challenger if DIRECTIONS[metric] else challenger - champion


def decide(challenger: Mapping[str, float], champion: Mapping[str, float] | None,
           policy: GatePolicy | None = None, version: str = "",
           champion_version: str | None = None) -> Decision:
    """Promote or refuse, and why — a pure function of the two sets of metrics and the policy (the default
    ``GatePolicy()`` when None)."""
    policy = policy or GatePolicy()
    metric, value = policy.metric, challenger[policy.metric]
    meets_floor = value >= policy.floor if DIRECTIONS[metric] else value <= policy.floor
    if not meets_floor:
        reason = f"{metric} {value:.4f} does not reach the floor {policy.floor:.4f}"
        return Decision(version, False, reason, dict(challenger), None if champion is None else dict(champion),
                        champion_version, policy)
    if champion is None:
        reason = (f"first version with a {metric} of {value:.4f} (floor {policy.floor:.4f}): "
                  "no champion to compare with")
        return Decision(version, True, reason, dict(challenger), None, None, policy)
    who = f"champion v{champion_version}" if champion_version else "the champion"
    gap = _worse_by(metric, value, champion[metric])
    if gap > policy.tolerance:
        reason = (f"{metric} {value:.4f} is worse than {who}'s {champion[metric]:.4f} "
                  f"by {gap:.4f} (tolerance {policy.tolerance:.4f})")
        return Decision(version, False, reason, dict(challenger), dict(champion), champion_version, policy)
    reason = f"{metric} {value:.4f} vs {who}'s {champion[metric]:.4f} (tolerance {policy.tolerance:.4f})"
    if policy.guard is not None:
        guard_gap = _worse_by(policy.guard, challenger[policy.guard], champion[policy.guard])
        if guard_gap > policy.guard_tolerance:
            reason = (f"{reason}, but {policy.guard} {challenger[policy.guard]:.4f} is worse than "
                      f"{champion[policy.guard]:.4f} by {guard_gap:.4f} "
                      f"(tolerance {policy.guard_tolerance:.4f})")
            return Decision(version, False, reason, dict(challenger), dict(champion), champion_version,
                            policy)
        reason += f" and {policy.guard} {challenger[policy.guard]:.4f} vs {champion[policy.guard]:.4f}"
    return Decision(version, True, reason, dict(challenger), dict(champion), champion_version, policy)


# ------------------------------------------------------------------------------------------ registry


def exists(name: str) -> bool:
    """Whether registered model ``name`` exists."""
    return bool(_client().search_registered_models(filter_string=f"name = '{name}'"))


class SharedRegistryError(RuntimeError):
    """The notebooks were about to delete a registered model on a shared tracking server without being told to."""


def reset(name: str) -> bool:
    """Delete registered model ``name`` with all its versions and aliases (the runs and logged models stay
    in their experiments). Returns whether there was one to delete.

    On a shared server (``tracking.is_shared_store``) it deletes only when ``$CURRICULUM_RESET_MODELS`` is 1: a
    registry others use is never emptied by a notebook that was merely re-run."""
    import os

    from helpers import tracking

    if not exists(name):
        return False
    if tracking.is_shared_store() and os.environ.get(tracking.RESET_ENV) != "1":
        raise SharedRegistryError(
            f"Registered model {name!r} already exists on the shared tracking server {tracking.tracking_uri()}, and "
            f"this notebook starts by deleting it. Notebooks never delete on a shared server unless told to. Either "
            f"set {tracking.RESET_ENV}=1 to let them delete the models they name for you (yours end in "
            f"'__{tracking.learner()}'), set {tracking.LEARNER_ENV} to another name to start afresh under new names, "
            f"or delete {name!r} yourself in the MLflow UI. Nothing was deleted.")
    _client().delete_registered_model(name)
    return True


def register(model: ModelInfo | str, name: str, description: str = "", tags: Mapping[str, str] | None = None,
             model_description: str | None = None) -> ModelVersion:
    """A new version of ``name`` (created if new, with ``model_description``) from a logged model — a
    ``ModelInfo`` or a model URI — linked to the run that logged it, with a description and tags.

    The same as ``mlflow.register_model(uri, name)``, without its messages on stderr."""
    client = _client()
    if not exists(name):
        client.create_registered_model(name, description=model_description)
    if isinstance(model, str):
        source, run_id, model_id = model, None, None
        logged = re.fullmatch(r"models:/(m-[0-9a-f]+)", model)
        if logged:  # MLflow 3's logged-model URI: a tracking server wants the model id with it (SQLite does not)
            model_id = logged.group(1)
            run_id = client.get_logged_model(model_id).source_run_id
    else:
        source, run_id, model_id = model.model_uri, model.run_id, getattr(model, "model_id", None)
    return client.create_model_version(name, source, run_id=run_id, tags=dict(tags or {}),
                                       description=description or None, model_id=model_id)


def aliases(name: str) -> dict[str, str]:
    """Every alias of ``name`` and the version it points to."""
    return {alias: str(version) for alias, version in _client().get_registered_model(name).aliases.items()}


def by_alias(name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points to, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion(name: str) -> ModelVersion | None:
    """The ``champion`` version of ``name``, or None."""
    return by_alias(name, CHAMPION)


def _tag_value(value: float) -> str:
    return f"{value:.6f}"


def gate(name: str, version: str | int, validation: pd.DataFrame, label: str = "label",
         features: Sequence[str] | None = None, policy: GatePolicy | None = None,
         log_run: bool = True) -> Decision:
    """The approval gate. Marks ``version`` as ``challenger``, scores it and the current ``champion`` (both
    loaded by alias) on the same ``validation`` frame, decides with ``policy``, records the decision as
    version tags, moves ``champion`` to the challenger when it wins, and frees the ``challenger`` alias.
    With ``log_run``, the evaluation is also an MLflow run in the active experiment. ``policy`` defaults to
    ``GatePolicy()``."""
    import mlflow

    policy = policy or GatePolicy()
    client, version = _client(), str(version)
    incumbent = champion(name)
    if incumbent is not None and str(incumbent.version) == version:
        raise ValueError(f"version {version} of {name!r} is already the champion")
    client.set_registered_model_alias(name, CHALLENGER, version)
    challenger_metrics = evaluate(f"models:/{name}@{CHALLENGER}", validation, label, features, policy.task)
    champion_metrics = (None if incumbent is None
                        else evaluate(f"models:/{name}@{CHAMPION}", validation, label, features, policy.task))
    champion_version = None if incumbent is None else str(incumbent.version)
    decision = decide(challenger_metrics, champion_metrics, policy, version, champion_version)

    tags = {"gate.decision": decision.label, "gate.reason": decision.reason,
            "gate.compared_with": champion_version or "none", "gate.policy": _describe(policy),
            **{f"gate.{k}": _tag_value(v) for k, v in challenger_metrics.items()}}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        if champion_version is not None:
            client.set_model_version_tag(name, champion_version, "gate.superseded_by", version)
    client.delete_registered_model_alias(name, CHALLENGER)

    if log_run:
        with mlflow.start_run(run_name=f"gate: {name} v{version}"):
            mlflow.set_tags({"model_name": name, "model_version": version, "gate.decision": decision.label,
                             "gate.reason": decision.reason,
                             "gate.compared_with": champion_version or "none"})
            mlflow.log_params({"metric": policy.metric, "tolerance": policy.tolerance, "guard": policy.guard,
                               "guard_tolerance": policy.guard_tolerance, "floor": policy.floor,
                               "validation_rows": len(validation)})
            mlflow.log_metrics({f"challenger_{k}": v for k, v in challenger_metrics.items()})
            if champion_metrics is not None:
                mlflow.log_metrics({f"champion_{k}": v for k, v in champion_metrics.items()})
    return decision


def _describe(policy: GatePolicy) -> str:
    sign = ">= champion -" if DIRECTIONS[policy.metric] else "<= champion +"
    text = f"{policy.metric} {sign} {policy.tolerance}, floor {policy.floor}"
    if policy.guard is not None:
        text += f"; {policy.guard} within {policy.guard_tolerance} of champion"
    return text


# ------------------------------------------------------------------------------------------ lineage


def git_commit(folder: str | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``folder`` (the project root by default): the HEAD commit
    and whether tracked files have uncommitted changes; (None, None) outside a git checkout or without git."""
    from helpers.paths import project_root

    where = folder or str(project_root())
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (commit or None), (bool(status) if commit else None)


def lineage_tags(datasets: Sequence[str] = ()) -> dict[str, str]:
    """Run tags that tie a model to what produced it: the code version (git commit, and whether the checkout
    had uncommitted changes — only when in a git checkout) and the checksum of each dataset in
    ``datasets/manifest.json``. Also sets MLflow's own ``mlflow.source.git.commit``, which its UI shows."""
    from helpers.datasets import dataset

    tags = {DATASET_TAG.format(name=name): dataset(name).sha256 for name in datasets}
    commit, dirty = git_commit()
    if commit is not None:
        tags.update({CODE_VERSION_TAG: commit, "mlflow.source.git.commit": commit,
                     CODE_DIRTY_TAG: str(dirty).lower()})
    return tags


def lineage(name: str, version: str | int) -> dict[str, Any]:
    """Follow version → run → code version and dataset checksums. Returns the version's ``run_id``, its
    ``experiment`` and ``run_name``, the ``model_id`` of the logged model, ``code_version`` (a commit or
    None), ``code_dirty``, ``datasets`` (name → checksum recorded at training) and ``datasets_match``
    (name → whether the committed file still has that checksum)."""
    from helpers.datasets import dataset

    client = _client()
    model_version = client.get_model_version(name, str(version))
    run = client.get_run(model_version.run_id)
    tags = run.data.tags
    prefix, suffix = DATASET_TAG.split("{name}")
    recorded = {key[len(prefix):-len(suffix)]: value for key, value in tags.items()
                if key.startswith(prefix) and key.endswith(suffix)}
    return {
        "version": str(model_version.version),
        "run_id": model_version.run_id,
        "experiment": client.get_experiment(run.info.experiment_id).name,
        "run_name": run.info.run_name,
        "model_id": getattr(model_version, "model_id", None) or _model_id(model_version.source),
        "code_version": tags.get(CODE_VERSION_TAG),
        "code_dirty": None if CODE_DIRTY_TAG not in tags else tags[CODE_DIRTY_TAG] == "true",
        "datasets": recorded,
        "datasets_match": {key: dataset(key).sha256 == value for key, value in recorded.items()},
    }


def _model_id(source: str | None) -> str | None:
    """The logged model's id from a version's source (``models:/m-<id>``, MLflow 3), else None."""
    if source and source.startswith("models:/m-"):
        return source[len("models:/"):].split("/")[0]
    return None


# ------------------------------------------------------------------------------------------ housekeeping


def versions(name: str) -> pd.DataFrame:
    """One row per version of ``name``, oldest first: its aliases, lifecycle state, the gate's decision and
    primary metric, and the first line of its description."""
    client = _client()
    current = aliases(name)
    rows = []
    for mv in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        tags = mv.tags or {}
        rows.append({
            "version": int(mv.version),
            "aliases": ", ".join(sorted(a for a, v in current.items() if v == str(mv.version))),
            "lifecycle": tags.get("lifecycle", "active"),
            "gate": tags.get("gate.decision", ""),
            "roc_auc": float(tags["gate.roc_auc"]) if "gate.roc_auc" in tags else np.nan,
            "description": (mv.description or "").split("\n")[0],
        })
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame(
        columns=["aliases", "lifecycle", "gate", "roc_auc", "description"])


def archive(name: str, version: str | int, reason: str) -> None:
    """Retire a version without deleting it: remove every alias pointing to it and tag it
    ``lifecycle=archived`` with the reason. (MLflow's stages, ``Archived`` among them, are deprecated
    and absent from Unity Catalog; a tag plus "no alias" is the modern equivalent.)"""
    client, version = _client(), str(version)
    for alias, target in aliases(name).items():
        if target == version:
            client.delete_registered_model_alias(name, alias)
    client.set_model_version_tag(name, version, "lifecycle", "archived")
    client.set_model_version_tag(name, version, "lifecycle.reason", reason)


def delete_version(name: str, version: str | int) -> None:
    """Delete a version for good (its number is never reused). Refuses a version that an alias points to:
    something may be loading it."""
    version = str(version)
    held = [alias for alias, target in aliases(name).items() if target == version]
    if held:
        raise ValueError(f"version {version} of {name!r} holds the alias {', '.join(held)}: move it first")
    _client().delete_model_version(name, version)
