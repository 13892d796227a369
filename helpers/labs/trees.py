"""Checks for Lab 08 · Trees (chapters 06 decision trees, 07 random forests, 08 gradient-boosted trees).

A readable decision tree for the penguins' species (chapter 06), then the Lending Club loans of chapters 07–08: a
random forest, its most important feature, and LightGBM with early stopping. Every check re-scores the learner's
fitted model on the rows the lab holds out.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from helpers.labs import active_spark, check, require

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.ml import Transformer
    from pyspark.sql import DataFrame, SparkSession

#: Chapter 06's depth-3 tree classifies 83 of the 84 test penguins correctly (0.988).
TREE_ACCURACY_LIMIT = 0.95
TREE_MAX_DEPTH = 3
#: Chapter 07: 40 trees of depth 4 reach a test ROC AUC of 0.751; one tree 0.673, five trees 0.698; the same
#: forest fitted without the validation loans 0.724, trees of depth 10 0.704.
FOREST_AUC_LIMIT = 0.72
#: Chapter 08: LightGBM with early stopping reaches 0.753 (logistic regression 0.753, the interest rate alone
#: 0.750); 1,000 rounds without early stopping over-fit (0.67–0.68).
BOOSTING_AUC_LIMIT = 0.73


def penguin_split(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    """(train, test) penguins as in chapter 06: the 342 measured birds, 25% held out by a hash of each row."""
    from helpers.datasets import load
    from helpers.splits import hash_split

    penguins = load("penguins", spark).dropna(subset=["bill_length_mm"])
    return hash_split(penguins, test_fraction=0.25, keys=penguins.columns)


def loan_sets(spark: SparkSession) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """(train_all, train, validation, test) loans with ``label`` (1.0 = bad), the sets of chapters 05, 07 and 08:
    ``train_all`` is everything but the test loans (chapter 07's training set), ``train`` and ``validation`` split it
    (chapter 08's early stopping)."""
    from helpers import loans

    frame = loans.load(spark)
    return (loans.split(frame, validation=False)[0], *loans.split(frame))


def to_lightgbm(loans_frame: pd.DataFrame) -> pd.DataFrame:
    """LightGBM's input for a pandas frame of loans: the numeric columns as floats, the text columns as pandas
    categories with a fixed list of values (every value in the dataset), so train and test codes agree."""
    import pandas as pd

    from helpers import loans

    values = _category_values()
    out = loans_frame[list(loans.NUMERIC) + list(loans.CATEGORICAL)].astype({c: "float64" for c in loans.NUMERIC})
    for column in loans.CATEGORICAL:
        out[column] = pd.Categorical(out[column], categories=values[column])
    return out


@functools.cache
def _category_values() -> dict[str, list[str]]:
    from helpers import loans
    from helpers.datasets import load_pandas

    frame = load_pandas(loans.DATASET, scale="full")
    return {c: sorted(frame[c].dropna().unique()) for c in loans.CATEGORICAL}


def _auc(model: Transformer, frame: DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    from helpers.evaluation import positive_probability
    from helpers.loans import FEATURES

    pairs = (positive_probability(model.transform(frame)).select(*FEATURES, "p1", "label").toPandas()
             .sort_values(list(FEATURES), kind="stable"))
    return float(roc_auc_score(pairs["label"], pairs["p1"]))


def _stage(model: Any, name: str) -> Any:
    return next((s for s in getattr(model, "stages", [model]) if type(s).__name__ == name), None)


def _fitted(model: Any) -> bool:
    from pyspark.ml import Model

    return isinstance(model, Model)


@check("Decision tree: a readable tree for the penguins' species")
def test_tree(model: Transformer) -> str:
    """``model``: a fitted pipeline that indexes ``species`` into ``label`` and ends with a
    ``DecisionTreeClassifier`` of depth at most 3."""
    from pyspark.sql import functions as F

    require(_fitted(model), f"model should be a FITTED pipeline (what `.fit(train)` returns), not "
                            f"{type(model).__name__}")
    tree = _stage(model, "DecisionTreeClassificationModel")
    require(tree is not None, "the pipeline has no DecisionTreeClassifier stage")
    require(tree.depth <= TREE_MAX_DEPTH, f"the tree has depth {tree.depth} and {tree.numNodes} nodes: the task asks "
                                          f"for one you can read — set maxDepth={TREE_MAX_DEPTH}")
    scored = model.transform(penguin_split(active_spark())[1])
    require("label" in scored.columns, "the pipeline's output has no `label` column: index `species` into `label` "
                                       "with a StringIndexer in the pipeline")
    accuracy = float(scored.agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0])
    require(tree.numClasses >= 3, f"the tree knows {tree.numClasses} classes; there are three species")
    require(accuracy >= TREE_ACCURACY_LIMIT,
            f"test accuracy {accuracy:.3f} is below {TREE_ACCURACY_LIMIT} (chapter 06: 0.988 at depth 3)"
            + (f" — a tree of depth {tree.depth} has at most {2 ** tree.depth} leaves; three species need more "
               "questions" if tree.depth < 2 else " — use the bill, flipper and body-mass measurements and the island"))
    return f"depth {tree.depth}, {tree.numNodes} nodes, test accuracy {accuracy:.3f}"


@check("Random forest: ROC AUC of P(bad) on the test loans")
def test_forest(model: Transformer) -> str:
    """``model``: a fitted pipeline of the loans' feature stages and a ``RandomForestClassifier`` of ``label``."""
    require(_fitted(model), f"model should be a FITTED pipeline (what `.fit(train)` returns), not "
                            f"{type(model).__name__}")
    forest = _stage(model, "RandomForestClassificationModel")
    require(forest is not None, "the pipeline has no RandomForestClassifier stage")
    test = loan_sets(active_spark())[3]
    auc = _auc(model, test)
    trees = forest.getNumTrees
    # Lending Club priced the risk into the rate, which alone ranks the test loans at about chapter 07's level: a
    # forest of the rate alone clears the pass mark while learning nothing Lending Club did not already know.
    inputs = sorted({name.removesuffix("_index") for name in _input_names(model, forest, test)})
    require(len(inputs) > 1,
            f"the forest reads only {inputs[0]} (test ROC AUC {auc:.3f}): one column, and the interest rate alone "
            "already ranks the loans about as well — assemble every column of loans.NUMERIC and the indexed "
            "loans.CATEGORICAL")
    require(auc >= FOREST_AUC_LIMIT,
            f"test ROC AUC {auc:.3f} is below {FOREST_AUC_LIMIT} (chapter 07: 0.751 with 40 trees of depth 4)"
            + (f" — {trees} trees are too few to average out their errors: use about 40" if trees < 20 else
               f" — trees of depth {forest.getMaxDepth()} over-fit these noisy labels: try maxDepth=4"
               if forest.getMaxDepth() > 6 else " — include every column of loans.NUMERIC and loans.CATEGORICAL"))
    return f"{trees} trees, test ROC AUC {auc:.3f} (chapter 07: 0.751)"


@check("Feature importance: the forest's most important feature")
def test_importance(model: Transformer, top_feature: str) -> str:
    """``top_feature``: the name of the input column with the largest ``featureImportances`` in the forest."""
    forest = _stage(model, "RandomForestClassificationModel")
    require(forest is not None, "the model has no RandomForestClassifier stage (task 2)")
    require(isinstance(top_feature, str), f"top_feature should be a column name (str), not "
                                          f"{type(top_feature).__name__} — map the slot number to its name")
    names = _input_names(model, forest, loan_sets(active_spark())[3])
    importances = forest.featureImportances.toArray()
    ranked = sorted(zip(names, importances, strict=True), key=lambda pair: -pair[1])
    top = ranked[0][0]

    def plain(name: str) -> str:
        return name.removesuffix("_index")

    given = plain(top_feature)
    require(given in {plain(n) for n in names}, f"{top_feature!r} is not one of the forest's inputs (they are named "
                                                f"like {plain(names[0])!r})")
    require(given == plain(top), f"{given} has importance {dict(ranked)[_slot(names, given)]:.3f}, but "
                                 f"{plain(top)} has {ranked[0][1]:.3f}: sort featureImportances in DESCENDING order")
    return f"{plain(top)} (importance {ranked[0][1]:.3f})"


def _input_names(model: Transformer, forest: Any, frame: DataFrame) -> list[str]:
    """The names of the forest's feature slots, read from the assembled column's metadata (one row is enough)."""
    from helpers.evaluation import vector_feature_names

    return vector_feature_names(model.transform(frame.limit(1)), forest.getFeaturesCol())


def _slot(names: list[str], plain_name: str) -> str:
    return next(n for n in names if n.removesuffix("_index") == plain_name)


@check("LightGBM with early stopping: ROC AUC on the test loans")
def test_boosting(model: Any) -> str:
    """``model``: a fitted ``lightgbm.LGBMClassifier`` trained on ``to_lightgbm`` frames of the training loans,
    with early stopping on the validation loans."""
    import lightgbm as lgb
    from sklearn.metrics import log_loss, roc_auc_score

    from helpers.loans import to_pandas

    require(isinstance(model, lgb.LGBMClassifier), f"model should be a lightgbm.LGBMClassifier, not "
                                                   f"{type(model).__name__}")
    require(getattr(model, "fitted_", False), "the model is not fitted: call .fit(X_train, y_train, ...)")
    test = to_pandas(loan_sets(active_spark())[3])
    p_bad = model.predict_proba(to_lightgbm(test))[:, 1]
    auc = float(roc_auc_score(test["label"], p_bad))
    stopped = bool(model.best_iteration_)
    # Early stopping that watched the test loans: the loss it recorded at its best round is the test loss.
    curves = getattr(model, "evals_result_", {}).values() if stopped else []
    recorded = [curve["binary_logloss"][model.best_iteration_ - 1] for curve in curves if "binary_logloss" in curve]
    test_loss = float(log_loss(test["label"], p_bad))
    require(not any(math.isclose(loss, test_loss, rel_tol=1e-6) for loss in recorded),
            "early stopping watched the TEST loans (the loss it recorded is the test loss): the number of rounds was "
            "chosen on the data that judges the model, so its test score is optimistic. Pass the validation loans "
            "(X_valid, y_valid) as eval_X and eval_y")
    # Lending Club priced the risk into the rate, which alone ranks the test loans about as well as chapter 08's
    # models (within the noise of 113 bad loans): a model of the rate alone is the mistake to name, not a bar to clear.
    rate_alone = float(roc_auc_score(test["label"], test["int_rate"]))
    require(auc >= BOOSTING_AUC_LIMIT or stopped,
            f"test ROC AUC {auc:.3f} is below {BOOSTING_AUC_LIMIT}, and the model kept all {model.n_estimators} "
            "rounds: it over-fits. Pass the validation loans (eval_X=..., eval_y=...) and "
            "callbacks=[lgb.early_stopping(25)] so it stops when the validation loss stops improving")
    require(auc >= BOOSTING_AUC_LIMIT,
            f"test ROC AUC {auc:.3f} is below {BOOSTING_AUC_LIMIT} (chapter 08: 0.753): early stopping kept "
            f"{model.best_iteration_} rounds at learning rate {model.learning_rate} — use small trees "
            "(num_leaves=7, min_child_samples=50) and a learning rate of about 0.05")
    used = {name for name, gain in zip(model.feature_name_, model.feature_importances_, strict=True) if gain > 0}
    require(used != {"int_rate"}, f"the model splits on the interest rate alone (test ROC AUC {auc:.3f}; the rate by "
                                  f"itself ranks the loans at {rate_alone:.3f}): it adds nothing to Lending Club's own "
                                  "pricing — give it all the loan columns")
    rounds = f"early stopping kept {model.best_iteration_} rounds" if stopped else "no early stopping"
    return f"test ROC AUC {auc:.3f} (chapter 08: 0.753; the interest rate alone: {rate_alone:.3f}); {rounds}"
