"""Checks for Lab 18 · The model registry (chapter 18) on the flight-delay model of Part III.

The lab's tasks: log a candidate model with its signature and validation metrics, register it under the lab's OWN
registered model (``MODEL_NAME``, never the shared ``flight_delay``, whose champion the deployment chapters use),
run two candidates through the approval gate so the better one holds the ``champion`` alias, and score the
validation flights with the model loaded by that alias. The checks read the tracking store and the registry
(whatever ``MLFLOW_TRACKING_URI`` is active) and re-score models on the fixed validation flights themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from helpers.labs import active_spark, check, require
from helpers.tracking import registered_name

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

#: The lab's own registered model: the lab registers, gates and moves aliases here only.
MODEL_NAME = registered_name("lab_flight_delay")  # "lab_flight_delay" on a personal store
#: Chapter 18: the logistic regression reaches a validation ROC AUC of 0.680, the reference LightGBM
#: (``delays.REFERENCE``) 0.7365; the gate's floor is 0.6.
CHAMPION_AUC_LIMIT = 0.72

_cache: dict[tuple[str, int], Any] = {}


def flight_frames(spark: SparkSession, scale: str = "default") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation): chapter 18's flights of January–June 2013 as pandas frames
    (``delays.training_frames``), computed once per Spark session and scale."""
    key = (scale, id(spark))
    if key not in _cache:
        from helpers import delays

        _cache[key] = delays.training_frames(spark, scale)
    return _cache[key]


def _validation() -> pd.DataFrame:
    return flight_frames(active_spark())[1]


def _auc(model_uri: str) -> float:
    import mlflow

    from helpers import delays, registry

    validation = _validation()
    scores = delays.delay_probability(mlflow.pyfunc.load_model(model_uri).predict(validation[delays.FEATURES]))
    return registry.classification_metrics(validation[delays.LABEL].to_numpy(), scores)["roc_auc"]


def _client() -> Any:
    import mlflow

    return mlflow.MlflowClient()


@check("Log: a candidate with its signature and validation metrics")
def test_logged(model_info: Any) -> str:
    """``model_info``: the ``ModelInfo`` of a logged flight-delay candidate — a finished run with the metric
    ``roc_auc``, a signature naming every feature, and a model that returns two probabilities per flight."""
    import mlflow
    from mlflow.models.model import ModelInfo

    from helpers import delays

    require(isinstance(model_info, ModelInfo), f"model_info should be the ModelInfo that log_candidate (or "
                                               f"mlflow.sklearn.log_model) returns, not {type(model_info).__name__}")
    run = mlflow.get_run(model_info.run_id)
    require(run.info.status == "FINISHED", f"the run that logged the model is {run.info.status}: end it")
    require("roc_auc" in run.data.metrics, "the run has no metric 'roc_auc': pass the validation flights to "
                                           "delays.log_candidate(model, candidate, train, validation)")
    signature = model_info.signature
    require(signature is not None, "the model was logged without a signature: the registry's users need the "
                                   "contract (delays.signature())")
    names = signature.inputs.input_names()
    missing = [c for c in delays.FEATURES if c not in names]
    require(not missing, f"the signature lacks the feature(s) {missing}")
    output = mlflow.pyfunc.load_model(model_info.model_uri).predict(_validation()[delays.FEATURES].head(5))
    shape = getattr(output, "shape", ())
    require(len(shape) == 2 and shape[1] == 2, f"the model returns {shape} for 5 flights, expected (5, 2): "
                                               "two probabilities (on time, late) — log it with "
                                               "pyfunc_predict_fn=\"predict_proba\"")
    return f"run {run.info.run_name!r}: validation ROC AUC {run.data.metrics['roc_auc']:.4f}, {len(names)} inputs"


@check("Register: a version of the lab's model, linked to its run")
def test_registered(version: Any, model_info: Any) -> str:
    """``version``: the ``ModelVersion`` registering ``model_info`` under ``MODEL_NAME``, with a description."""
    from mlflow.entities.model_registry import ModelVersion

    from helpers import delays

    require(isinstance(version, ModelVersion), f"version should be the ModelVersion that registry.register "
                                               f"returns, not {type(version).__name__}")
    require(version.name != delays.MODEL_NAME, f"you registered into the shared {delays.MODEL_NAME!r}, whose "
                                               "champion the deployment chapters use: register into "
                                               f"lab.MODEL_NAME ({MODEL_NAME!r})")
    require(version.name == MODEL_NAME, f"the version belongs to {version.name!r}: register into lab.MODEL_NAME "
                                        f"({MODEL_NAME!r})")
    require(version.run_id == model_info.run_id, "the version is not linked to the run that logged model_info: "
                                                 "register the ModelInfo itself (registry.register(model_info, ...))")
    current = _client().get_model_version(version.name, version.version)
    require(current.description, "the version has no description: say what the model is "
                                 "(registry.register(..., description=\"...\"))")
    return f"{MODEL_NAME} version {current.version}: {current.description}"


@check("Gate: the better candidate won the champion alias")
def test_gate(decision: Any) -> str:
    """``decision``: the gate's ``Decision`` on the second candidate, judged against the first (the champion)."""
    from helpers import registry

    require(isinstance(decision, registry.Decision), f"decision should be what registry.gate returns (a "
                                                     f"Decision), not {type(decision).__name__}")
    require(decision.champion_version is not None,
            f"version {decision.version} had no champion to beat ({decision.reason}): gate the first candidate, "
            "then register and gate the second, which is compared with it")
    champion = registry.champion(MODEL_NAME)
    require(champion is not None, f"{MODEL_NAME} has no champion alias: promote a version through registry.gate")
    auc = _auc(f"models:/{MODEL_NAME}@{registry.CHAMPION}")
    require(auc >= CHAMPION_AUC_LIMIT,
            f"the champion (version {champion.version}) has a validation ROC AUC of {auc:.4f}, below "
            f"{CHAMPION_AUC_LIMIT}: the second candidate should be the stronger LightGBM (delays.REFERENCE, 0.737), "
            "which the gate promotes over the logistic regression (0.680)")
    require(decision.promoted and str(champion.version) == str(decision.version),
            f"the gate refused version {decision.version} ({decision.reason})")
    return (f"version {decision.version} promoted over version {decision.champion_version}: "
            f"validation ROC AUC {auc:.4f}")


@check("Use: the validation flights scored by the model behind the champion alias")
def test_alias_score(validation_auc: float) -> str:
    """``validation_auc``: the ROC AUC on the validation flights of the model loaded as
    ``models:/lab_flight_delay@champion``."""
    require(isinstance(validation_auc, (int, float)), f"validation_auc should be a number, not "
                                                      f"{type(validation_auc).__name__}")
    require(0.0 <= validation_auc <= 1.0, f"{validation_auc} is not a ROC AUC (between 0 and 1)")
    expected = _auc(f"models:/{MODEL_NAME}@champion")
    require(validation_auc > 0.5 or expected <= 0.5,
            f"ROC AUC {validation_auc:.4f} is below 0.5: score with P(late), the SECOND column of what predict "
            "returns (delays.delay_probability(output))")
    require(abs(validation_auc - expected) < 1e-4,
            f"you report {validation_auc:.4f}, but the model behind models:/{MODEL_NAME}@champion scores "
            f"{expected:.4f} on the validation flights — load it by that alias (not a version number, not the "
            "shared flight_delay) and score every validation flight")
    return f"models:/{MODEL_NAME}@champion: validation ROC AUC {expected:.4f}"
