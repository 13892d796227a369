"""Model evaluation shared by the supervised chapters: the standard metrics from a Spark predictions
DataFrame, and the curve points the plots need.

Metrics are computed by Spark's own evaluators where they exist (so they scale with the data); curves
need every (score, label) pair and are computed from a collected two-column array, which is small even
for hundreds of thousands of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame


def positive_probability(predictions: DataFrame, probability_col: str = "probability") -> DataFrame:
    """Adds ``p1``, the probability of class 1 as a plain double (MLlib stores a vector)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return predictions.withColumn("p1", vector_to_array(F.col(probability_col))[1])


def binary_metrics(predictions: DataFrame, label_col: str = "label", prediction_col: str = "prediction",
                   score_col: str = "p1", digits: int = 4) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class, ROC AUC and PR AUC, rounded.

    ``score_col`` is a double score where larger means "more likely positive" (see ``positive_probability``).
    """
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    counts = predictions.select(
        F.sum(((F.col(prediction_col) == 1) & (F.col(label_col) == 1)).cast("long")).alias("tp"),
        F.sum(((F.col(prediction_col) == 1) & (F.col(label_col) == 0)).cast("long")).alias("fp"),
        F.sum(((F.col(prediction_col) == 0) & (F.col(label_col) == 1)).cast("long")).alias("fn"),
        F.sum(((F.col(prediction_col) == 0) & (F.col(label_col) == 0)).cast("long")).alias("tn"),
    ).first()
    tp, fp, fn, tn = (int(counts[k] or 0) for k in ("tp", "fp", "fn", "tn"))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    evaluator = BinaryClassificationEvaluator(labelCol=label_col, rawPredictionCol=score_col)
    metrics = {
        "accuracy": (tp + tn) / max(tp + fp + fn + tn, 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "roc_auc": evaluator.evaluate(predictions, {evaluator.metricName: "areaUnderROC"}),
        "pr_auc": evaluator.evaluate(predictions, {evaluator.metricName: "areaUnderPR"}),
    }
    return {name: round(float(value), digits) for name, value in metrics.items()}


def regression_metrics(predictions: DataFrame, label_col: str = "label", prediction_col: str = "prediction",
                       digits: int = 4) -> dict[str, float]:
    """RMSE, MAE and R² from Spark's ``RegressionEvaluator``, rounded."""
    from pyspark.ml.evaluation import RegressionEvaluator

    evaluator = RegressionEvaluator(labelCol=label_col, predictionCol=prediction_col)
    return {
        name: round(float(evaluator.evaluate(predictions, {evaluator.metricName: name})), digits)
        for name in ("rmse", "mae", "r2")
    }


@dataclass(frozen=True)
class Curves:
    """ROC and precision-recall curve points, and the areas under them."""

    fpr: np.ndarray
    tpr: np.ndarray
    roc_auc: float
    precision: np.ndarray
    recall: np.ndarray
    pr_auc: float
    thresholds: np.ndarray  # the thresholds of the precision/recall points


def curves(predictions: DataFrame, label_col: str = "label", score_col: str = "p1") -> Curves:
    """Curve points from (score, label) pairs collected to the driver."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    pairs = predictions.select(score_col, label_col).toPandas()
    scores, labels = pairs[score_col].to_numpy(), pairs[label_col].to_numpy()
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    return Curves(fpr, tpr, float(auc(fpr, tpr)), precision, recall, float(auc(recall, precision)), thresholds)


def confusion(predictions: DataFrame, label_col: str = "label", prediction_col: str = "prediction",
              classes: int = 2) -> np.ndarray:
    """Counts of actual (rows) × predicted (columns) classes as a ``classes × classes`` array."""
    from pyspark.sql import functions as F

    matrix = np.zeros((classes, classes), dtype=int)
    pairs = predictions.groupBy(F.col(label_col).cast("int").alias("a"), F.col(prediction_col).cast("int").alias("p"))
    for row in pairs.count().collect():
        matrix[row.a, row.p] = row["count"]
    return matrix


def vector_feature_names(frame: DataFrame, column: str = "features") -> list[str]:
    """The name of every slot of an assembled feature vector, from the metadata MLlib attaches
    (``VectorAssembler``, ``OneHotEncoder``), so importances and coefficients can be labelled."""
    attributes = frame.schema[column].metadata.get("ml_attr", {})
    slots: dict[int, str] = {}
    for group in attributes.get("attrs", {}).values():
        for attribute in group:
            slots[attribute["idx"]] = attribute["name"]
    size = attributes.get("num_attrs", len(slots))
    return [slots.get(i, f"{column}_{i}") for i in range(size)]


def leaderboard(results: dict[str, dict[str, float]], sort_by: str, ascending: bool = False) -> pd.DataFrame:
    """A table of models × metrics, best first."""
    import pandas as pd

    return pd.DataFrame(results).T.sort_values(sort_by, ascending=ascending)
