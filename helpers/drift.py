"""Monitoring a deployed model for drift: statistics that compare a window of production data with the
training window, alert rules with thresholds, and the alert table that a retraining job reads.

Notebook 22 scores the flight-delay champion month by month on the flights it never saw, measures drift
with these functions and records every alert rule's outcome (fired or not) in a Parquet table; notebook 23
reads that table to decide whether to retrain::

    from helpers import drift

    alerts = drift.read_alerts()                   # every recorded rule outcome, ALERT_COLUMNS
    retrain, reason = drift.retraining_trigger(alerts)

The statistics (`psi`, `ks_statistic`, `chi_square`, `roc_auc_from_counts`) take **counts**, not rows: Spark
does the binning and counting with DataFrame aggregations (`bin_counts`, `value_counts`, `score_counts`), so
only a small table of counts ever reaches the driver, whatever the data's size. The p-values come from
``scipy.stats`` (the same distributions that ``ks_2samp`` and ``chi2_contingency`` use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The alert table's columns: the monitoring window (``"2013-08"``), the rule (``"psi"``, ``"auc_drop"``...),
#: what it was measured on (a feature or a metric), the measured value, the rule's threshold, whether the rule
#: fired (value above threshold) and the MLflow run that recorded the window (or ``None``).
ALERT_COLUMNS = ["window", "rule", "subject", "value", "threshold", "fired", "run_id"]



# ------------------------------------------------------------------------------------------ alert table


def alerts_path() -> Path:
    """Where the alert table lives: ``<work>/monitoring/alerts`` (a Parquet file, overwritten by notebook 22
    on each run)."""
    from helpers.paths import work_dir

    return work_dir("monitoring") / "alerts"


def empty_alerts() -> pd.DataFrame:
    """An alert table with no rows and the ``ALERT_COLUMNS``."""
    return _typed(pd.DataFrame({c: [] for c in ALERT_COLUMNS}))


def _typed(alerts: pd.DataFrame) -> pd.DataFrame:
    """``alerts`` with exactly the ``ALERT_COLUMNS``, in order, with their types (text, floats, a bool, and
    ``run_id`` as text or ``None``)."""
    missing = [c for c in ALERT_COLUMNS if c not in alerts.columns]
    if missing:
        raise ValueError(f"alert table lacks the columns {missing}; it needs {ALERT_COLUMNS}")
    frame = alerts[ALERT_COLUMNS].copy()
    for column in ("window", "rule", "subject"):
        frame[column] = frame[column].astype(str).astype(object)
    frame = frame.astype({"value": "float64", "threshold": "float64", "fired": "bool"})
    frame["run_id"] = pd.Series([None if pd.isna(v) else str(v) for v in frame["run_id"]], dtype=object,
                                index=frame.index)
    return frame.reset_index(drop=True)


def write_alerts(alerts: pd.DataFrame, path: Path | None = None) -> Path:
    """Write (overwrite) the alert table at ``path`` (default ``alerts_path()``) as one Parquet file and
    return its path."""
    target = Path(path) if path is not None else alerts_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    _typed(alerts).to_parquet(target, index=False)
    return target


def read_alerts(path: Path | None = None) -> pd.DataFrame:
    """The recorded alerts at ``path`` (default ``alerts_path()``): every rule outcome, fired or not, with the
    ``ALERT_COLUMNS`` — an empty table with those columns when nothing has been recorded yet."""
    source = Path(path) if path is not None else alerts_path()
    if not source.exists() or (source.is_dir() and not any(source.glob("*.parquet"))):
        return empty_alerts()
    return _typed(pd.read_parquet(source))


#: The rules that need the true outcomes and say the model got worse (notebook 22's ``auc_drop`` and
#: ``calibration_gap``): what a retraining job acts on. Input drift alone (``psi``) is an early warning, not a
#: reason to retrain — weather against a winter baseline drifts every summer month.
QUALITY_RULES = ("auc_drop", "calibration_gap")


def retraining_trigger(alerts: pd.DataFrame) -> tuple[bool, str]:
    """Whether any alert in ``alerts`` fired, and a one-line reason naming the windows, rules and subjects
    that fired (or saying why nothing should be retrained)."""
    if alerts.empty:
        return False, "no alerts recorded: nothing to retrain on"
    fired = alerts[alerts["fired"].astype(bool)]
    if fired.empty:
        windows = sorted(alerts["window"].astype(str).unique())
        return False, (f"no alert fired in {len(alerts)} rule checks over {len(windows)} window(s) "
                       f"({windows[0]} to {windows[-1]})")
    parts = []
    for window, rows in fired.groupby(fired["window"].astype(str), sort=True):
        by_rule = rows.groupby(rows["rule"].astype(str), sort=True)["subject"]
        parts.append(f"{window}: " + ", ".join(f"{rule} on {', '.join(sorted(map(str, subjects)))}"
                                               for rule, subjects in by_rule))
    return True, f"{len(fired)} alert(s) fired — " + "; ".join(parts)


# ------------------------------------------------------------------------------------------ alert rules


@dataclass(frozen=True)
class AlertRule:
    """A rule that fires when a measured value is **above** ``threshold`` (e.g. ``AlertRule("psi", 0.2)``:
    population stability index above 0.2; ``AlertRule("auc_drop", 0.03)``: ROC AUC more than 0.03 below the
    validation score)."""

    rule: str
    threshold: float
    description: str = ""

    def check(self, window: str, values: Mapping[str, float], run_id: str | None = None) -> pd.DataFrame:
        """One alert-table row per subject of ``values`` (subject -> measured value) in ``window``; a row
        fires when its value is above the threshold (a missing value never fires)."""
        rows = [{"window": window, "rule": self.rule, "subject": subject, "value": float(value),
                 "threshold": float(self.threshold),
                 "fired": bool(np.isfinite(value) and value > self.threshold), "run_id": run_id}
                for subject, value in values.items()]
        return _typed(pd.DataFrame(rows, columns=ALERT_COLUMNS)) if rows else empty_alerts()


def check_rules(window: str, measured: Mapping[str, Mapping[str, float]], rules: Sequence[AlertRule],
                run_id: str | None = None) -> pd.DataFrame:
    """Every rule of ``rules`` checked on ``measured[rule.rule]`` (subject -> value) for one window: the
    alert-table rows, fired or not. A rule with nothing measured adds no rows."""
    rows = [rule.check(window, measured.get(rule.rule, {}), run_id) for rule in rules]
    rows = [r for r in rows if not r.empty]
    return _typed(pd.concat(rows, ignore_index=True)) if rows else empty_alerts()


# ------------------------------------------------------------------------------------------ statistics on counts


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = 1e-4) -> float:
    """Population stability index of ``actual`` against ``expected``: counts (or shares) of the **same bins**,
    in the same order. ``sum((a - e) * ln(a / e))`` over the bins' shares, each share floored at ``epsilon`` so
    that an empty bin counts as very rare rather than infinitely surprising.

    Rule of thumb (credit scoring, where PSI comes from): below 0.1 stable, 0.1-0.25 a moderate shift, above
    0.25 a large one. PSI is symmetric in its two arguments (it is the Jeffreys divergence of the binned
    distributions)."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError("expected and actual must be counts of the same, non-empty list of bins")
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(values: Sequence[float], reference: Sequence[float], window: Sequence[float]
                 ) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test from **counts per distinct value**: ``values`` (any order, no
    duplicates) and how many rows of the reference and of the window hold each value. Returns the statistic
    — the largest gap between the two empirical distribution functions, exactly as
    ``scipy.stats.ks_2samp`` computes it on the rows — and its asymptotic two-sided p-value (``method="asymp"``
    of ``ks_2samp``: the ``scipy.stats.kstwo`` distribution at ``n*m/(n+m)``)."""
    from scipy.stats import kstwo

    order = np.argsort(np.asarray(values, dtype="float64"), kind="stable")
    r = np.asarray(reference, dtype="float64")[order]
    w = np.asarray(window, dtype="float64")[order]
    n, m = r.sum(), w.sum()
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    statistic = float(np.max(np.abs(np.cumsum(r) / n - np.cumsum(w) / m)))
    effective = round(n * m / (n + m))
    return statistic, float(np.clip(kstwo.sf(statistic, effective), 0.0, 1.0))


def chi_square(reference: Sequence[float], window: Sequence[float]) -> tuple[float, float, float]:
    """Chi-square test of homogeneity for one categorical feature: counts per category (same categories, same
    order) in the reference and in the window, through ``scipy.stats.chi2_contingency`` (categories absent from
    both are dropped). Returns (statistic, p-value, Cramér's V) — V, between 0 and 1, is the **size** of the
    difference, which the p-value is not: with thousands of rows a tiny shift is already "significant"."""
    from scipy.stats import chi2_contingency

    table = np.vstack([np.asarray(reference, dtype="float64"), np.asarray(window, dtype="float64")])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0.0
    result = chi2_contingency(table, correction=False)
    cramers_v = float(np.sqrt(result.statistic / table.sum() / min(table.shape[0] - 1, table.shape[1] - 1)))
    return float(result.statistic), float(result.pvalue), cramers_v


def roc_auc_from_counts(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """ROC AUC from a table of counts: ``positives[i]`` and ``negatives[i]`` are the numbers of positive and
    negative rows whose score falls in the i-th score value, **in increasing order of score**. The chance that
    a random positive outscores a random negative, ties counted as one half (the Mann-Whitney form) — equal to
    ``sklearn.metrics.roc_auc_score`` when each entry is one distinct score."""
    pos = np.asarray(positives, dtype="float64")
    neg = np.asarray(negatives, dtype="float64")
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    negatives_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (negatives_below + neg / 2)) / (pos.sum() * neg.sum()))


# ------------------------------------------------------------------------------------------ comparing windows


def _pivot(counts: pd.DataFrame, key: str) -> dict[str, pd.DataFrame]:
    """feature -> a table of counts with one row per ``key`` value and one column per window."""
    return {feature: rows.pivot_table(index=key, columns="window", values="count", aggfunc="sum", fill_value=0)
            for feature, rows in counts.groupby("feature", sort=False)}


def psi_by_window(counts: pd.DataFrame, reference: str, key: str = "bin") -> pd.DataFrame:
    """PSI of every feature in every window against the ``reference`` window, from a counts table with columns
    ``window``, ``feature``, ``key`` (a bin or a category) and ``count`` (what `bin_counts` and
    `category_counts` return). One row per (window, feature), reference excluded."""
    rows = []
    for feature, table in _pivot(counts, key).items():
        for window in table.columns:
            if window != reference:
                rows.append({"window": window, "feature": feature, "psi": psi(table[reference], table[window])})
    return pd.DataFrame(rows, columns=["window", "feature", "psi"])


def ks_by_window(counts: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Kolmogorov-Smirnov statistic and p-value of every numeric feature in every window against ``reference``,
    from `value_counts` (columns ``window``, ``feature``, ``value``, ``count``; missing values excluded)."""
    rows = []
    for feature, table in _pivot(counts.dropna(subset=["value"]), "value").items():
        for window in table.columns:
            if window != reference:
                statistic, p_value = ks_statistic(table.index.to_numpy(), table[reference], table[window])
                rows.append({"window": window, "feature": feature, "ks": statistic, "ks_p_value": p_value})
    return pd.DataFrame(rows, columns=["window", "feature", "ks", "ks_p_value"])


def chi_square_by_window(counts: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Chi-square statistic, p-value and Cramér's V of every categorical feature in every window against
    ``reference``, from `category_counts` (columns ``window``, ``feature``, ``value``, ``count``)."""
    rows = []
    for feature, table in _pivot(counts, "value").items():
        for window in table.columns:
            if window != reference:
                statistic, p_value, v = chi_square(table[reference], table[window])
                rows.append({"window": window, "feature": feature, "chi2": statistic, "chi2_p_value": p_value,
                             "cramers_v": v})
    return pd.DataFrame(rows, columns=["window", "feature", "chi2", "chi2_p_value", "cramers_v"])


# ------------------------------------------------------------------------------------------ counting in Spark


def quantile_edges(frame: DataFrame, columns: Sequence[str], bins: int = 10, relative_error: float = 0.0
                   ) -> dict[str, list[float]]:
    """Bin edges per numeric column: the column's quantiles at 1/bins, 2/bins, ... in ``frame`` (the reference
    window), duplicates removed — one Spark job (``approxQuantile``; exact when ``relative_error`` is 0).
    A column with few distinct values (a weekday, rain) gets fewer edges."""
    probabilities = [i / bins for i in range(1, bins)]
    quantiles = frame.approxQuantile(list(columns), probabilities, relative_error)
    return {c: sorted({float(q) for q in qs}) for c, qs in zip(columns, quantiles, strict=True)}


def bin_counts(frame: DataFrame, edges: Mapping[str, Sequence[float]], window: str = "window") -> pd.DataFrame:
    """Rows per (window, feature, bin) for the numeric features of ``edges``, counted by Spark in one
    aggregation. Bin ``i`` holds the values above ``edges[i-1]`` and at most ``edges[i]`` (bin 0 everything up
    to the first edge, the last bin everything above the last); a missing value is bin -1."""
    from pyspark.sql import functions as F

    def bucket(column: str) -> object:
        value = F.col(column)
        index = sum((F.when(value > F.lit(edge), 1).otherwise(0) for edge in edges[column]), F.lit(0))
        return F.when(value.isNull(), F.lit(-1)).otherwise(index).cast("int").alias(column)

    features = list(edges)
    long = (frame.select(F.col(window).alias("window"), *[bucket(c) for c in features])
            .unpivot(["window"], features, "feature", "bin"))
    counts = long.groupBy("window", "feature", "bin").count().toPandas()
    return counts.sort_values(["feature", "window", "bin"], kind="stable").reset_index(drop=True)


def value_counts(frame: DataFrame, columns: Sequence[str], window: str = "window") -> pd.DataFrame:
    """Rows per (window, feature, distinct value) of numeric ``columns`` (as doubles; missing values kept as
    NaN), counted by Spark in one aggregation — what `ks_by_window` needs, without collecting the rows."""
    from pyspark.sql import functions as F

    long = (frame.select(F.col(window).alias("window"), *[F.col(c).cast("double").alias(c) for c in columns])
            .unpivot(["window"], list(columns), "feature", "value"))
    counts = long.groupBy("window", "feature", "value").count().toPandas()
    return counts.sort_values(["feature", "window", "value"], kind="stable").reset_index(drop=True)


MISSING = "(missing)"


def category_counts(frame: DataFrame, columns: Sequence[str], window: str = "window") -> pd.DataFrame:
    """Rows per (window, feature, category) of categorical ``columns`` (a missing value is the category
    ``MISSING``), counted by Spark in one aggregation."""
    from pyspark.sql import functions as F

    long = (frame.select(F.col(window).alias("window"),
                         *[F.coalesce(F.col(c).cast("string"), F.lit(MISSING)).alias(c) for c in columns])
            .unpivot(["window"], list(columns), "feature", "value"))
    counts = long.groupBy("window", "feature", "value").count().toPandas()
    return counts.sort_values(["feature", "window", "value"], kind="stable").reset_index(drop=True)


def score_counts(frame: DataFrame, score: str, label: str, window: str = "window", decimals: int = 3
                 ) -> pd.DataFrame:
    """Rows per (window, score rounded to ``decimals``, label), counted by Spark: the table that
    `performance_by_window` turns into ROC AUC — at most 10**decimals + 1 score values per window and label,
    whatever the number of rows."""
    from pyspark.sql import functions as F

    rounded = F.round(F.col(score), decimals).alias("score")
    counts = (frame.select(F.col(window).alias("window"), rounded, F.col(label).cast("int").alias("label"))
              .groupBy("window", "score", "label").count().toPandas())
    return counts.sort_values(["window", "score", "label"], kind="stable").reset_index(drop=True)


def window_summary(frame: DataFrame, score: str, label: str, window: str = "window",
                   quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9)) -> pd.DataFrame:
    """Per window, in one Spark aggregation: rows, share of positive labels, mean score, log-loss (scores
    clipped to [1e-15, 1 - 1e-15]) and the score's ``quantiles`` (``percentile_approx``, columns ``q10``...)."""
    from pyspark.sql import functions as F

    p = F.least(F.greatest(F.col(score), F.lit(1e-15)), F.lit(1 - 1e-15))
    y = F.col(label).cast("double")
    loss = -(y * F.log(p) + (1 - y) * F.log(1 - p))
    summary = (frame.groupBy(F.col(window).alias("window"))
               .agg(F.count(F.lit(1)).alias("rows"), F.avg(y).alias("positive_share"),
                    F.avg(F.col(score)).alias("mean_score"), F.avg(loss).alias("log_loss"),
                    F.percentile_approx(F.col(score), list(quantiles), 10_000).alias("q"))
               .toPandas())
    for i, q in enumerate(quantiles):
        summary[f"q{round(q * 100):02d}"] = [float(v[i]) for v in summary["q"]]
    return summary.drop(columns="q").sort_values("window").reset_index(drop=True)


def performance_by_window(counts: pd.DataFrame) -> pd.Series:
    """ROC AUC per window from `score_counts` (ties within a rounded score count one half)."""
    auc = {}
    for window, rows in counts.groupby("window", sort=True):
        table = rows.pivot_table(index="score", columns="label", values="count", aggfunc="sum", fill_value=0)
        table = table.reindex(columns=[0, 1], fill_value=0).sort_index()
        auc[window] = roc_auc_from_counts(table[1], table[0])
    return pd.Series(auc, name="roc_auc", dtype="float64")
