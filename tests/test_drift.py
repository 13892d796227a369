"""helpers.drift: drift statistics on known distributions (checked against scipy), alert rules, the alert
table and the retraining trigger (on tmp_path, never the project's .work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import drift


def alert_rows() -> pd.DataFrame:
    """Two windows: one quiet, one where the PSI of ``temp`` and the AUC drop fire."""
    psi = drift.AlertRule("psi", 0.2)
    auc = drift.AlertRule("auc_drop", 0.03)
    return pd.concat([
        psi.check("2013-07", {"temp": 0.05, "carrier": 0.01}, run_id="run-07"),
        auc.check("2013-07", {"roc_auc": 0.01}, run_id="run-07"),
        psi.check("2013-08", {"temp": 0.31, "carrier": 0.02}, run_id="run-08"),
        auc.check("2013-08", {"roc_auc": 0.045}, run_id=None),
    ], ignore_index=True)


# ------------------------------------------------------------------------------------------ alert rules


def test_alert_rule_fires_above_its_threshold_and_not_at_or_below() -> None:
    rows = drift.AlertRule("psi", 0.2).check("2013-09", {"a": 0.21, "b": 0.2, "c": 0.19, "d": float("nan")},
                                             run_id="r")
    assert list(rows.columns) == drift.ALERT_COLUMNS
    assert rows.set_index("subject")["fired"].to_dict() == {"a": True, "b": False, "c": False, "d": False}
    assert set(rows["window"]) == {"2013-09"} and set(rows["run_id"]) == {"r"}
    assert rows["threshold"].tolist() == [0.2] * 4


# ------------------------------------------------------------------------------------------ alert table


def test_read_alerts_is_empty_with_the_columns_before_anything_is_recorded(tmp_path: Path) -> None:
    alerts = drift.read_alerts(tmp_path / "nothing-here")
    assert alerts.empty and list(alerts.columns) == drift.ALERT_COLUMNS
    assert drift.retraining_trigger(alerts) == (False, "no alerts recorded: nothing to retrain on")


def test_alerts_round_trip_through_parquet(tmp_path: Path) -> None:
    written = alert_rows()
    path = drift.write_alerts(written, tmp_path / "monitoring" / "alerts")
    back = drift.read_alerts(path)
    pd.testing.assert_frame_equal(back, written)
    assert back["run_id"].tolist()[-1] is None and back["fired"].dtype == bool


def test_alerts_path_is_below_the_work_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURRICULUM_WORK_DIR", str(tmp_path))
    assert drift.alerts_path() == tmp_path / "monitoring" / "alerts"
    drift.write_alerts(alert_rows())
    assert len(drift.read_alerts()) == 6


def test_retraining_trigger_names_what_fired() -> None:
    retrain, reason = drift.retraining_trigger(alert_rows())
    assert retrain
    assert reason == "2 alert(s) fired — 2013-08: auc_drop on roc_auc, psi on temp"


def test_retraining_trigger_says_why_not_when_nothing_fired() -> None:
    quiet = alert_rows().query("window == '2013-07'")
    assert drift.retraining_trigger(quiet) == (False, "no alert fired in 3 rule checks over 1 window(s) "
                                                      "(2013-07 to 2013-07)")


# ------------------------------------------------------------------------------------------ statistics on counts


def counts_of(sample: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin as `bin_counts` defines the bins: bin i holds (edges[i-1], edges[i]]."""
    return np.bincount(np.searchsorted(edges, sample, side="left"), minlength=len(edges) + 1)


def test_psi_is_zero_for_identical_samples_and_large_for_shifted_normals() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, 20_000)
    edges = np.quantile(reference, np.arange(1, 10) / 10)
    same = counts_of(rng.normal(0.0, 1.0, 20_000), edges)
    assert drift.psi(counts_of(reference, edges), counts_of(reference, edges)) == pytest.approx(0.0, abs=1e-12)
    assert drift.psi(counts_of(reference, edges), same) < 0.01  # another sample of the same distribution
    shifted = counts_of(rng.normal(1.0, 1.0, 20_000), edges)
    assert drift.psi(counts_of(reference, edges), shifted) > 0.25  # one standard deviation: a large shift
    assert drift.psi([1, 2, 3], [3, 2, 1]) == pytest.approx(drift.psi([3, 2, 1], [1, 2, 3]))  # symmetric


def test_psi_by_hand_and_an_empty_bin_is_floored() -> None:
    e, a = np.array([0.5, 0.5]), np.array([0.75, 0.25])
    expected = float(np.sum((a - e) * np.log(a / e)))
    assert drift.psi([50, 50], [75, 25]) == pytest.approx(expected)
    assert np.isfinite(drift.psi([10, 10, 0], [10, 0, 10]))
    with pytest.raises(ValueError):
        drift.psi([1, 2], [1, 2, 3])


def test_ks_statistic_from_value_counts_matches_scipy_on_the_rows() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(1)
    reference = np.round(rng.normal(50, 10, 3000))  # whole numbers: many ties, like a temperature reading
    window = np.round(rng.normal(53, 12, 800))
    values = np.union1d(reference, window)
    ref_counts = pd.Series(reference).value_counts().reindex(values, fill_value=0)
    win_counts = pd.Series(window).value_counts().reindex(values, fill_value=0)
    statistic, p_value = drift.ks_statistic(values[::-1], ref_counts.to_numpy()[::-1], win_counts.to_numpy()[::-1])
    expected = ks_2samp(reference, window, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_matches_scipy_and_cramers_v_measures_the_size() -> None:
    from scipy.stats import chi2_contingency

    reference, window = np.array([500, 300, 200, 0]), np.array([90, 60, 40, 0])
    statistic, p_value, v = drift.chi_square(reference, window)
    expected = chi2_contingency(np.vstack([reference[:3], window[:3]]), correction=False)
    assert statistic == pytest.approx(expected.statistic) and p_value == pytest.approx(expected.pvalue)
    assert v < 0.05 and p_value > 0.5  # the same mix
    _, p_big, v_big = drift.chi_square([500, 300, 200], [100, 300, 500])
    assert p_big < 1e-10 and v_big > 0.3


def test_roc_auc_from_counts_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 2000)
    scores = np.round(np.clip(0.3 + 0.2 * labels + rng.normal(0, 0.2, 2000), 0, 1), 2)  # tied scores
    table = pd.crosstab(scores, labels).sort_index()
    assert drift.roc_auc_from_counts(table[1], table[0]) == pytest.approx(roc_auc_score(labels, scores),
                                                                          abs=1e-12)
    assert np.isnan(drift.roc_auc_from_counts([0, 0], [1, 2]))


# ------------------------------------------------------------------------------------------ counting in Spark


def test_spark_counts_agree_with_pandas_and_feed_the_window_statistics(spark) -> None:
    rng = np.random.default_rng(3)
    rows = 600
    frame = pd.DataFrame({
        "window": np.where(np.arange(rows) < 400, "training", "2013-07"),
        "x": np.round(np.r_[rng.normal(0, 1, 400), rng.normal(2, 1, 200)], 1),
        "c": rng.choice(["a", "b", None], rows),
        "p": rng.random(rows), "y": rng.integers(0, 2, rows),
    })
    frame.loc[5, "x"] = np.nan
    sdf = spark.createDataFrame(frame)

    edges = drift.quantile_edges(sdf.where("window = 'training'"), ["x"], bins=4)
    expected_edges = np.quantile(frame.loc[:399, "x"].dropna(), [0.25, 0.5, 0.75], method="inverted_cdf")
    assert edges["x"] == pytest.approx(sorted(set(expected_edges)))
    bins = drift.bin_counts(sdf, edges)
    training = bins.query("window == 'training'").set_index("bin")["count"]
    assert training[-1] == 1 and training.sum() == 400
    assert training.drop(-1).tolist() == counts_of(frame.loc[:399, "x"].dropna(), np.array(edges["x"])).tolist()
    psi = drift.psi_by_window(bins, "training")
    assert psi["window"].tolist() == ["2013-07"] and psi["psi"].iloc[0] > 0.25

    values = drift.value_counts(sdf, ["x"])
    ks = drift.ks_by_window(values, "training")
    from scipy.stats import ks_2samp

    x = frame["x"]
    assert ks["ks"].iloc[0] == pytest.approx(ks_2samp(x[:400].dropna(), x[400:].dropna()).statistic)

    categories = drift.category_counts(sdf, ["c"])
    assert set(categories["value"]) == {"a", "b", drift.MISSING}
    chi = drift.chi_square_by_window(categories, "training")
    assert chi["chi2_p_value"].iloc[0] > 0.001  # the same random mix in both windows

    from sklearn.metrics import log_loss, roc_auc_score

    auc = drift.performance_by_window(drift.score_counts(sdf, "p", "y", decimals=6))
    summary = drift.window_summary(sdf, "p", "y").set_index("window")
    for window, part in frame.groupby("window"):
        assert auc[window] == pytest.approx(roc_auc_score(part["y"], part["p"]), abs=1e-9)
        assert summary.loc[window, "log_loss"] == pytest.approx(log_loss(part["y"], part["p"]))
        assert summary.loc[window, "rows"] == len(part)
        assert summary.loc[window, "q50"] == pytest.approx(part["p"].median(), abs=0.01)


def test_check_rules_keeps_every_outcome() -> None:
    rules = [drift.AlertRule("psi", 0.2), drift.AlertRule("auc_drop", 0.03), drift.AlertRule("unused", 1.0)]
    rows = drift.check_rules("2013-10", {"psi": {"temp": 1.9, "carrier": 0.01}, "auc_drop": {"roc_auc": 0.1}},
                             rules, run_id="abc")
    assert rows[["rule", "subject", "fired"]].values.tolist() == [
        ["psi", "temp", True], ["psi", "carrier", False], ["auc_drop", "roc_auc", True]]
