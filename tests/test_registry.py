"""helpers.registry: the approval gate's decisions, and the whole lifecycle on a throw-away SQLite store
(never the project's .work/mlflow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import delays, registry
from helpers.registry import Decision, GatePolicy, decide
from tests.conftest import fresh_mlflow_store

MODEL = "unit_flight_delay"
# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


@pytest.fixture
def registry_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite tracking store and model registry in ``tmp_path``, with an active experiment
    (``registry-tests``); MLflow's global state is restored afterwards."""
    with fresh_mlflow_store(tmp_path / "work", "registry-tests", monkeypatch) as uri:
        yield uri


def synthetic_flights(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Flights with every model column, where lateness depends on the carrier and the hour together (an
    interaction a tree model finds and an additive logistic regression cannot)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "month": rng.integers(1, 7, rows), "day_of_week": rng.integers(1, 8, rows),
        "sched_hour": rng.integers(5, 23, rows), "distance": rng.integers(100, 2500, rows),
        **{c: rng.normal(size=rows) for c in delays.WEATHER},
        "carrier": rng.choice(["AA", "B6", "DL", "EV", "UA"], rows),
        "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
        "dest": rng.choice(["ATL", "BOS", "ORD", "SFO"], rows),
    })
    frame.loc[rng.random(rows) < 0.05, "pressure"] = np.nan  # missing weather, as in the real data
    late_carrier = frame["carrier"].isin(["EV", "B6"])
    hour = frame["sched_hour"]
    logit = -2.0 + 3.0 * (late_carrier & (hour >= 15)) + 2.0 * (~late_carrier & (hour < 9))
    frame[delays.LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return frame


def logged(candidate: delays.Candidate, train: pd.DataFrame, labels: pd.Series | None = None):
    """Train ``candidate`` (on ``labels`` instead of the real ones when given) and log it."""
    data = train if labels is None else train.assign(**{delays.LABEL: labels.to_numpy()})
    model = delays.train_candidate(candidate, data)
    return delays.log_candidate(model, candidate, data, run_name=f"test {candidate.kind}")


# ------------------------------------------------------------------------------------------ decide (pure)

GOOD = {"roc_auc": 0.74, "pr_auc": 0.52, "log_loss": 0.477, "brier": 0.153}


def test_first_version_is_promoted_when_it_reaches_the_floor() -> None:
    decision = decide(GOOD, None, GatePolicy(), version="1")
    assert decision.promoted and decision.label == "promoted"
    assert "no champion" in decision.reason
    assert decision.champion is None and decision.champion_version is None


def test_first_version_below_the_floor_is_refused() -> None:
    decision = decide({**GOOD, "roc_auc": 0.55}, None, GatePolicy(floor=0.6))
    assert not decision.promoted
    assert "floor" in decision.reason


def test_worse_primary_metric_is_refused_with_the_numbers_in_the_reason() -> None:
    decision = decide({**GOOD, "roc_auc": 0.73}, GOOD, GatePolicy(), version="3", champion_version="2")
    assert not decision.promoted
    assert decision.reason == ("roc_auc 0.7300 is worse than champion v2's 0.7400 by 0.0100 "
                               "(tolerance 0.0000)")


def test_equal_or_better_primary_metric_is_promoted() -> None:
    assert decide(dict(GOOD), GOOD).promoted  # "at least as good": a tie passes
    assert decide({**GOOD, "roc_auc": 0.75, "log_loss": 0.47}, GOOD).promoted


def test_tolerance_lets_a_tiny_drop_through() -> None:
    slightly_worse = {**GOOD, "roc_auc": 0.739}
    assert not decide(slightly_worse, GOOD, GatePolicy(tolerance=0.0)).promoted
    assert decide(slightly_worse, GOOD, GatePolicy(tolerance=0.002)).promoted


def test_guard_metric_refuses_badly_calibrated_probabilities() -> None:
    overconfident = {**GOOD, "roc_auc": 0.75, "log_loss": 0.9}
    decision = decide(overconfident, GOOD, GatePolicy(guard="log_loss", guard_tolerance=0.005))
    assert not decision.promoted
    assert "but log_loss 0.9000 is worse than 0.4770" in decision.reason
    assert decide(overconfident, GOOD, GatePolicy(guard=None)).promoted


def test_lower_is_better_metrics_as_primary() -> None:
    policy = GatePolicy(metric="log_loss", guard=None, floor=0.69)
    assert decide({**GOOD, "log_loss": 0.47}, GOOD, policy).promoted
    assert not decide({**GOOD, "log_loss": 0.48}, GOOD, policy).promoted
    assert not decide({**GOOD, "log_loss": 0.70}, None, policy).promoted  # above the floor of a coin flip


def test_policy_rejects_unknown_metrics_and_negative_tolerances() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        GatePolicy(metric="accuracy")
    with pytest.raises(ValueError, match="tolerances"):
        GatePolicy(tolerance=-0.1)


def test_positive_scores_and_metrics() -> None:
    two_columns = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert registry.positive_scores(two_columns).tolist() == [0.1, 0.8]
    assert registry.positive_scores(pd.DataFrame({"p": [0.3, 0.4]})).tolist() == [0.3, 0.4]
    assert registry.positive_scores([0.5, 0.6]).tolist() == [0.5, 0.6]
    metrics = registry.classification_metrics(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]))
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == 1.0
    assert set(metrics) == set(registry.HIGHER_IS_BETTER)


def test_git_commit_outside_a_checkout_is_none(tmp_path: Path) -> None:
    assert registry.git_commit(str(tmp_path)) == (None, None)


# ------------------------------------------------------------------------------------------ lifecycle


def test_lifecycle_first_registration_refused_and_promoted_challengers(registry_store: str) -> None:
    train, validation = synthetic_flights(seed=1), synthetic_flights(rows=800, seed=2)
    assert not registry.exists(MODEL) and registry.champion(MODEL) is None

    # First-ever registration: nothing to compare with, so the gate promotes it (it clears the floor).
    weak = delays.Candidate("logistic", {"C": 0.01}, "weak logistic")
    v1 = registry.register(logged(weak, train), MODEL, description="baseline", tags={"team": "tests"},
                           model_description="unit-test model")
    assert v1.version in (1, "1") and v1.run_id
    first = registry.gate(MODEL, v1.version, validation)
    assert isinstance(first, Decision) and first.promoted and first.champion_version is None
    assert registry.aliases(MODEL) == {"champion": "1"}

    # A challenger trained on shuffled labels learns nothing: refused, the champion stays.
    shuffled = train[delays.LABEL].sample(frac=1.0, random_state=0)
    v2 = registry.register(logged(delays.Candidate("lightgbm", {"n_estimators": 30}), train, shuffled), MODEL)
    refused = registry.gate(MODEL, v2.version, validation, policy=GatePolicy(floor=0.0))
    assert not refused.promoted and refused.champion_version == "1"
    assert registry.aliases(MODEL) == {"champion": "1"}  # the challenger alias is freed after the decision
    tags = registry.by_alias(MODEL, "champion").tags
    assert tags["gate.decision"] == "promoted" and tags.get("gate.superseded_by") is None
    refused_tags = registry._client().get_model_version(MODEL, str(v2.version)).tags
    assert refused_tags["gate.decision"] == "refused"
    assert refused_tags["gate.reason"] == refused.reason and refused_tags["gate.compared_with"] == "1"
    assert float(refused_tags["gate.roc_auc"]) == pytest.approx(refused.challenger["roc_auc"], abs=1e-6)

    # A better challenger: promoted, the champion alias moves, the old champion records who replaced it.
    boosted = delays.Candidate("lightgbm", {"n_estimators": 100, "num_leaves": 4, "learning_rate": 0.05})
    v3 = registry.register(logged(boosted, train), MODEL)
    promoted = registry.gate(MODEL, v3.version, validation)
    assert promoted.promoted, promoted.reason
    assert promoted.challenger["roc_auc"] >= promoted.champion["roc_auc"]
    assert registry.aliases(MODEL) == {"champion": "3"}
    assert str(registry.champion(MODEL).version) == "3"
    assert registry._client().get_model_version(MODEL, "1").tags["gate.superseded_by"] == "3"
    with pytest.raises(ValueError, match="already the champion"):
        registry.gate(MODEL, "3", validation)

    table = registry.versions(MODEL)
    assert table.index.tolist() == [1, 2, 3]
    assert table["gate"].tolist() == ["promoted", "refused", "promoted"]
    assert table.loc[3, "aliases"] == "champion" and table.loc[1, "description"] == "baseline"

    # Housekeeping: archive the old champion, delete the refused version, never delete the champion.
    registry.archive(MODEL, 1, reason="superseded by v3")
    registry.delete_version(MODEL, 2)
    with pytest.raises(ValueError, match="holds the alias champion"):
        registry.delete_version(MODEL, 3)
    table = registry.versions(MODEL)
    assert table.index.tolist() == [1, 3]
    assert table.loc[1, "lifecycle"] == "archived" and table.loc[3, "lifecycle"] == "active"

    # Lineage: version -> run -> code version and the dataset checksums of the manifest.
    trace = registry.lineage(MODEL, 3)
    assert trace["experiment"] == "registry-tests" and trace["run_name"] == "test lightgbm"
    assert trace["model_id"] and trace["model_id"].startswith("m-")
    assert set(trace["datasets"]) == set(delays.DATASETS) and all(trace["datasets_match"].values())
    assert trace["code_version"] == registry.git_commit()[0]

    assert registry.reset(MODEL) and not registry.exists(MODEL) and not registry.reset(MODEL)


def test_gate_logs_an_evaluation_run(registry_store: str) -> None:
    import mlflow

    train, validation = synthetic_flights(seed=3), synthetic_flights(rows=600, seed=4)
    candidate = delays.Candidate("lightgbm", {"n_estimators": 100, "num_leaves": 4, "learning_rate": 0.05})
    version = registry.register(logged(candidate, train), MODEL)
    decision = registry.gate(MODEL, version.version, validation, log_run=True)
    runs = mlflow.search_runs(filter_string=f"tags.model_name = '{MODEL}'")
    assert len(runs) == 1 and runs["tags.gate.decision"].iloc[0] == "promoted"
    assert runs["metrics.challenger_roc_auc"].iloc[0] == pytest.approx(decision.challenger["roc_auc"])
    assert runs["params.validation_rows"].iloc[0] == "600"


# ------------------------------------------------------------------------------------ regression policies


def test_regression_metrics_on_known_values() -> None:
    metrics = registry.regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert metrics["rmse"] == pytest.approx(1.0)  # sqrt(4 / 4)
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["r2"] == pytest.approx(1 - 4 / 5)


def test_a_regression_policy_promotes_a_lower_rmse_and_refuses_a_higher_one() -> None:
    policy = GatePolicy(metric="rmse", guard="mae", guard_tolerance=0.5, floor=30.0)
    assert policy.task == "regression"
    champion = {"rmse": 20.0, "mae": 14.0, "r2": 0.7}
    better = decide({"rmse": 18.0, "mae": 13.0, "r2": 0.75}, champion, policy, version="2", champion_version="1")
    worse = decide({"rmse": 21.0, "mae": 13.0, "r2": 0.68}, champion, policy, version="3", champion_version="1")
    assert better.promoted and not worse.promoted
    assert "rmse 21.0000 is worse than champion v1's 20.0000 by 1.0000" in worse.reason


def test_a_regression_floor_is_a_ceiling() -> None:
    policy = GatePolicy(metric="rmse", guard=None, floor=30.0)
    assert not decide({"rmse": 31.0, "mae": 20.0, "r2": 0.2}, None, policy).promoted
    assert decide({"rmse": 29.0, "mae": 20.0, "r2": 0.2}, None, policy).promoted


def test_a_policy_cannot_mix_regression_and_classification_metrics() -> None:
    with pytest.raises(ValueError, match="both regression"):
        GatePolicy(metric="rmse", guard="log_loss")
    with pytest.raises(ValueError, match="task must be"):
        registry.evaluate("models:/x@y", pd.DataFrame(), task="ranking")
