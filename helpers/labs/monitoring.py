"""Checks for Lab 22 · Monitoring and drift (chapter 22) on the flight-delay champion.

The lab's tasks: build an inference table (every 2013 flight that arrived, scored by the champion loaded by
alias, with its window: ``training``, ``validation``, ``2013-07`` … ``2013-12``), measure the drift of the numeric
features with the population stability index against the training window, measure the model's ROC AUC per
window, and turn both into alert rules recorded in the lab's own alert table. The checks recompute every expected
value from their own scoring of the same flights (``reference_inference``), with ``helpers.drift``.

The lab only READS the shared champion (``models:/flight_delay@champion``) and writes its alert table under
``<work>/labs/monitoring``, never over chapter 22's table (which chapter 23's retraining job reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.labs import active_spark, check, require

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

#: The monitoring windows (months of "production") and the two reference windows.
MONTHS = tuple(f"2013-{m:02d}" for m in range(7, 13))
REFERENCE, SCORE_REFERENCE = "training", "validation"
#: Chapter 22's alert rules: PSI of a feature above 0.2, ROC AUC more than 0.03 below the validation score.
PSI_THRESHOLD, AUC_DROP_THRESHOLD = 0.2, 0.03
BINS = 10

_cache: dict[tuple[str, int], Any] = {}


def monitored() -> list[str]:
    """The numeric features whose drift the lab measures: ``delays.NUMERIC`` without the month (each window is
    a month)."""
    from helpers import delays

    return [c for c in delays.NUMERIC if c != "month"]


def alerts_path() -> Path:
    """Where the lab writes its alert table: ``<work>/labs/monitoring/alerts`` (not chapter 22's)."""
    from helpers.paths import work_dir

    return work_dir("labs", "monitoring") / "alerts"


def flight_windows(spark: SparkSession, scale: str = "default") -> pd.DataFrame:
    """Every 2013 flight that arrived as pandas, with ``window``: the champion's training and validation flights
    (January–June, its own split) and one window per later month — chapter 22's rows, before scoring. One Spark
    job, once per session and scale."""
    key = (f"windows-{scale}", id(spark))
    if key not in _cache:
        from pyspark.sql import functions as F

        from helpers import delays

        flights = delays.model_flights(spark, scale, months=None)
        early = F.col("month").isin(list(delays.TRAINING_MONTHS))
        train, validation = delays.split_flights(flights.where(early))
        windows = (train.withColumn("window", F.lit(REFERENCE))
                   .unionByName(validation.withColumn("window", F.lit(SCORE_REFERENCE)))
                   .unionByName(flights.where(~early).withColumn("window", F.format_string("2013-%02d", "month"))))
        rows = delays.to_pandas(windows)
        _cache[key] = rows[["window", *delays.FEATURES, delays.LABEL]]
    return _cache[key]


def reference_inference(scale: str = "default") -> pd.DataFrame:
    """The inference table as the checks expect it: ``flight_windows`` with ``p_late`` from the champion
    (``delays.CHAMPION_URI``). Computed once per session."""
    spark = active_spark()
    key = (f"inference-{scale}", id(spark))
    if key not in _cache:
        import mlflow

        from helpers import delays

        rows = flight_windows(spark, scale).copy()
        model = mlflow.pyfunc.load_model(delays.CHAMPION_URI)
        rows["p_late"] = delays.delay_probability(model.predict(rows[delays.FEATURES]))
        _cache[key] = rows
    return _cache[key]


def expected_psi(rows: pd.DataFrame) -> pd.DataFrame:
    """PSI of every ``monitored`` feature in every window against the training window, bins at the training
    deciles (chapter 22's method, computed in pandas): columns ``window``, ``feature``, ``psi``."""
    import numpy as np
    import pandas as pd

    from helpers import drift

    reference = rows[rows["window"] == REFERENCE]
    out = []
    for feature in monitored():
        edges = sorted({float(q) for q in reference[feature].quantile([i / BINS for i in range(1, BINS)],
                                                                       interpolation="lower")})
        binned = np.where(rows[feature].isna(), -1, np.searchsorted(edges, rows[feature].to_numpy(), side="left"))
        table = pd.crosstab(binned, rows["window"].to_numpy())
        for window in table.columns:
            if window != REFERENCE:
                out.append({"window": window, "feature": feature, "psi": drift.psi(table[REFERENCE], table[window])})
    return pd.DataFrame(out)


def expected_auc(rows: pd.DataFrame) -> pd.Series:
    """ROC AUC of ``p_late`` per window (exact, from the rows)."""
    from sklearn.metrics import roc_auc_score

    from helpers import delays

    return rows.groupby("window").apply(lambda part: roc_auc_score(part[delays.LABEL], part["p_late"]),
                                        include_groups=False).rename("roc_auc")


def _is_spark_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "groupBy")


@check("Inference table: every flight scored by the champion, with its window")
def test_inference(inference: DataFrame) -> str:
    """``inference``: a Spark DataFrame with ``window``, the features, ``label`` and ``p_late`` = P(late) from
    ``models:/flight_delay@champion`` for every flight of ``flight_windows``."""
    from pyspark.sql import functions as F

    from helpers import delays

    require(_is_spark_frame(inference), f"inference should be a Spark DataFrame (spark.createDataFrame(rows)), "
                                        f"not {type(inference).__name__}")
    missing = [c for c in ("window", "p_late", delays.LABEL) if c not in inference.columns]
    require(not missing, f"the inference table lacks the column(s) {missing}")
    rows = reference_inference()
    expected = rows.groupby("window").agg(flights=("p_late", "size"), mean=("p_late", "mean"))
    got = (inference.groupBy("window").agg(F.count(F.lit(1)).alias("flights"), F.avg("p_late").alias("mean"))
           .toPandas().set_index("window"))
    absent = [w for w in expected.index if w not in got.index]
    require(not absent, f"the window(s) {absent} are missing: score the training, validation and July–December "
                        "flights")
    flights = got["flights"].reindex(expected.index)
    wrong = flights[flights != expected["flights"]]
    if not wrong.empty:
        require(False, f"window {wrong.index[0]} has {int(wrong.iloc[0]):,} flights, expected "
                       f"{int(expected.loc[wrong.index[0], 'flights']):,}: keep every row of `rows`")
    overall = float(got["mean"].mul(got["flights"]).sum() / got["flights"].sum())
    truth = float(rows["p_late"].mean())
    require(abs(overall - (1 - truth)) > 1e-3 or abs(overall - truth) < 1e-6,
            f"the mean p_late is {overall:.3f}: that is P(on time), the FIRST column of predict's output — take "
            "the second (delays.delay_probability)")
    gap = (got["mean"].reindex(expected.index) - expected["mean"]).abs().max()
    require(gap < 1e-6, f"p_late differs from the champion's P(late) (mean gap {gap:.4f} in a window): score "
                        "with the model loaded from models:/flight_delay@champion")
    return f"{int(expected['flights'].sum()):,} flights in {len(expected)} windows, mean P(late) {truth:.3f}"


@check("Feature drift: PSI of each numeric feature against the training window")
def test_psi(psi_frame: pd.DataFrame) -> str:
    """``psi_frame``: pandas with ``window``, ``feature``, ``psi`` for every monitored feature and window —
    bins at the deciles of the TRAINING window."""
    import pandas as pd

    require(isinstance(psi_frame, pd.DataFrame), f"psi_frame should be a pandas DataFrame (what "
                                                 f"drift.psi_by_window returns), not {type(psi_frame).__name__}")
    missing = [c for c in ("window", "feature", "psi") if c not in psi_frame.columns]
    require(not missing, f"psi_frame lacks the column(s) {missing}")
    expected = expected_psi(reference_inference()).set_index(["window", "feature"])["psi"]
    got = psi_frame.set_index(["window", "feature"])["psi"]
    require(REFERENCE not in set(psi_frame["window"]) or SCORE_REFERENCE in set(psi_frame["window"]),
            "the windows are compared with 'validation': the reference of the inputs is the TRAINING window")
    absent = [key for key in expected.index if key not in got.index]
    require(not absent, f"{len(absent)} (window, feature) pair(s) are missing, e.g. {absent[:1]}: measure every "
                        f"feature of lab.monitored() in every window but the training one")
    july_temp = float(got.loc[("2013-07", "temp")])
    truth = float(expected.loc[("2013-07", "temp")])
    require(not (july_temp < 0.05 < truth), f"PSI of temp in 2013-07 is {july_temp:.3f}, almost nothing: were the "
                                             "bins cut at each window's own quantiles? Cut them once, at the deciles "
                                             "of the training window (drift.quantile_edges on the training rows)")
    gap = (got.reindex(expected.index) - expected).abs()
    require(gap.max() < 0.02, f"PSI of {gap.idxmax()[1]} in {gap.idxmax()[0]} is {got.loc[gap.idxmax()]:.3f}, "
                              f"expected {expected.loc[gap.idxmax()]:.3f} — bins at the training deciles "
                              f"({BINS} bins), reference 'training'")
    fired = expected[expected > PSI_THRESHOLD]
    return (f"PSI of temp in 2013-07: {truth:.2f}; {len(fired)} (month, feature) pairs above {PSI_THRESHOLD}, "
            f"{sorted(set(fired.index.get_level_values('feature')))}")


@check("Model quality: ROC AUC per window")
def test_auc(auc: pd.Series) -> str:
    """``auc``: a pandas Series of ROC AUC indexed by window (every window of the inference table)."""
    import pandas as pd

    require(isinstance(auc, pd.Series), f"auc should be a pandas Series indexed by window (what "
                                        f"drift.performance_by_window returns), not {type(auc).__name__}")
    expected = expected_auc(reference_inference())
    absent = [w for w in expected.index if w not in auc.index]
    require(not absent, f"the window(s) {absent} are missing from auc's index")
    got = auc.reindex(expected.index).astype(float)
    require(not ((1 - got) - expected).abs().max() < 0.005,
            "every ROC AUC is 1 minus the right one: the labels or the score are reversed (score = p_late, label = "
            "label, 1 = late)")
    gap = (got - expected).abs()
    require(gap.max() < 0.005, f"ROC AUC in {gap.idxmax()} is {got[gap.idxmax()]:.4f}, expected "
                               f"{expected[gap.idxmax()]:.4f} — count with drift.score_counts(inference, \"p_late\", "
                               "\"label\") and drift.performance_by_window")
    worst = expected[list(MONTHS)].idxmin()
    return (f"validation {expected[SCORE_REFERENCE]:.4f}; months {expected[list(MONTHS)].min():.4f}–"
            f"{expected[list(MONTHS)].max():.4f} (lowest {worst})")


@check("Alerts: the rules' outcomes, recorded in the lab's alert table")
def test_alerts(alerts: pd.DataFrame) -> str:
    """``alerts``: the alert table (``drift.ALERT_COLUMNS``) of rules ``psi`` (each monitored feature, > 0.2) and
    ``auc_drop`` (validation ROC AUC minus the window's, > 0.03) for the six months, written to
    ``alerts_path()``."""
    import pandas as pd

    from helpers import drift

    require(isinstance(alerts, pd.DataFrame), f"alerts should be a pandas DataFrame, not {type(alerts).__name__}")
    missing = [c for c in drift.ALERT_COLUMNS if c not in alerts.columns]
    require(not missing, f"the alert table lacks the column(s) {missing}: build it with drift.check_rules")
    rows = reference_inference()
    psi = expected_psi(rows)
    auc = expected_auc(rows)
    expected_checks = len(MONTHS) * (len(monitored()) + 1)
    require(set(alerts["rule"]) >= {"psi", "auc_drop"}, f"the table has the rules {sorted(set(alerts['rule']))}; "
                                                        "it needs 'psi' and 'auc_drop'")
    windows = sorted(set(alerts["window"]))
    require(windows == list(MONTHS), f"the table covers the windows {windows}; it should cover the six months "
                                     f"{MONTHS[0]} to {MONTHS[-1]} (not the reference windows)")
    require(len(alerts) == expected_checks, f"{len(alerts)} rule checks, expected {expected_checks}: one per "
                                            f"month and monitored feature (psi) and one per month (auc_drop) — "
                                            "record every check, fired or not")
    thresholds = alerts.groupby("rule")["threshold"].first()
    require(float(thresholds["psi"]) == PSI_THRESHOLD and float(thresholds["auc_drop"]) == AUC_DROP_THRESHOLD,
            f"thresholds are psi {thresholds['psi']} and auc_drop {thresholds['auc_drop']}; chapter 22 uses "
            f"{PSI_THRESHOLD} and {AUC_DROP_THRESHOLD}")
    drops = auc[SCORE_REFERENCE] - auc[list(MONTHS)]
    got_drops = alerts[alerts["rule"] == "auc_drop"].set_index("window")["value"]
    require((got_drops.reindex(list(MONTHS)) - drops).abs().max() < 0.005,
            "the auc_drop values are not the validation ROC AUC minus the month's: measure the drop against the "
            "VALIDATION window (the score the gate saw), positive when the month is worse")
    expected = psi[psi["window"].isin(MONTHS)].set_index(["window", "feature"])["psi"]
    got_psi = alerts[alerts["rule"] == "psi"].set_index(["window", "subject"])["value"]
    require((got_psi.reindex(expected.index) - expected).abs().max() < 0.02,
            "the psi values are not each month's PSI of the feature (from task 2's psi_frame)")
    consistent = (alerts["value"] > alerts["threshold"]) == alerts["fired"].astype(bool)
    require(consistent.all(), "some rows' `fired` does not say value > threshold: let drift.check_rules decide")
    fired = int(alerts["fired"].astype(bool).sum())
    path = alerts_path()
    require(path.exists(), "the table is not written: drift.write_alerts(alerts, lab.alerts_path()) — the lab's "
                           "own path, not chapter 22's")
    written = drift.read_alerts(path)
    require(len(written) == len(alerts) and int(written["fired"].sum()) == fired,
            "the table at lab.alerts_path() is not this one: write it again after building it")
    retrain, _ = drift.retraining_trigger(written)
    return f"{fired} of {len(alerts)} checks fired; retrain: {retrain}"
