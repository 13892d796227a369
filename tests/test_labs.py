"""The labs' checks (helpers/labs/) and the committed lab notebooks.

Three parts: the framework (helpers/labs/__init__.py); each lab module's checks, fed a correct answer (passes)
and the typical wrong answers (fail with the specific feedback); and the structure of the committed notebooks
(a lab and its solution differ only in their TODO cells, every check fails in the lab and passes in the
solution, and every other cell shows the same output in both). nbval executes each solution
(notebooks/labs/conftest.py says why not the unsolved lab as well), so the outputs the two share are proven live.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers import labs
from helpers.labs import FAIL, NOT_ANSWERED, PASS, Verdict, check, require
from tests.labs_support import fails_with

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "notebooks" / "labs").glob("[0-9][0-9]-lab-*.ipynb"))
# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
IMPORT = re.compile(r"^from helpers\.labs import (\w+)(?: as (\w+))?", re.MULTILINE)


# --------------------------------------------------------------------------------------------------------------
# The framework


@check("a number below ten")
def _below_ten(value: float) -> str:
    require(isinstance(value, (int, float)), f"expected a number, got {type(value).__name__}")
    require(value < 10, f"{value} is not below 10 — did you forget to divide?")
    return f"{value} < 10"


@check("a key of the mapping")
def _lookup(mapping: dict, key: str) -> None:
    mapping[key]  # a KeyError here is an unexpected exception, not feedback


@pytest.fixture(autouse=False)
def fresh() -> None:
    labs.reset()


def test_framework_a_correct_answer_passes_with_its_detail(fresh) -> None:
    verdict = _below_ten(3)
    assert isinstance(verdict, Verdict) and verdict and verdict.passed
    assert str(verdict) == f"{PASS} a number below ten — 3 < 10"
    assert repr(verdict) == str(verdict)


def test_framework_a_check_returning_nothing_says_correct(fresh) -> None:
    assert _lookup({"a": 1}, "a").message == "correct"


def test_framework_a_wrong_answer_fails_with_the_feedback(fresh) -> None:
    verdict = _below_ten(12)
    assert not verdict
    assert str(verdict) == f"{FAIL} a number below ten — 12 is not below 10 — did you forget to divide?"


@pytest.mark.parametrize("placeholder", [..., (1, ...), [...], {"a": ...}])
def test_framework_a_placeholder_is_not_answered_yet(fresh, placeholder) -> None:
    verdict = _below_ten(placeholder)
    assert not verdict.passed and verdict.message == NOT_ANSWERED


def test_framework_a_placeholder_keyword_argument_is_not_answered_yet(fresh) -> None:
    assert _lookup(mapping={"a": 1}, key=...).message == NOT_ANSWERED


def test_framework_another_exception_becomes_could_not_check_not_a_traceback(fresh) -> None:
    verdict = _lookup({}, "missing")
    assert not verdict.passed
    assert verdict.message.startswith("could not check this answer (KeyError:")
    assert "TODO cell" in verdict.message


def test_framework_summary_counts_the_latest_verdict_of_each_check(fresh) -> None:
    _below_ten(12)
    _lookup({}, "x")
    text = labs.summary()
    assert text.splitlines()[-1].startswith("0 of 2 checks pass. Fix the ❌ above")
    _below_ten(1)  # a re-run replaces the earlier verdict of the same check
    _lookup({"x": 0}, "x")
    assert [v.passed for v in labs.verdicts()] == [True, True]
    assert labs.summary().splitlines()[-1] == "2 of 2 checks pass: lab complete."
    assert len(labs.summary().splitlines()) == 3


def test_framework_reset_forgets_verdicts(fresh) -> None:
    _below_ten(1)
    labs.reset()
    assert labs.verdicts() == []
    assert labs.summary().startswith("0 of 0 checks pass")


def test_framework_checks_are_marked_and_listed() -> None:
    import sys

    assert _below_ten.title == "a number below ten" and _below_ten.is_check
    assert labs.checks_in(sys.modules[__name__]) == ["_below_ten", "_lookup"]


def test_framework_close() -> None:
    assert labs.close(1.0, 1.05, 0.1) and not labs.close(1.0, 1.2, 0.1)


# --------------------------------------------------------------------------------------------------------------
# The committed lab notebooks (generic: every lab in notebooks/labs/)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return cell.metadata.get("tags", [])


@pytest.fixture(params=LABS, ids=lambda p: p.stem)
def pair(request) -> tuple[Path, nbformat.NotebookNode, nbformat.NotebookNode]:
    lab = request.param
    solution = lab.parent / "solutions" / lab.name
    assert solution.exists(), f"{lab.name} has no solution notebook solutions/{lab.name}"
    return lab, _read(lab), _read(solution)


def test_structure_there_are_labs() -> None:
    assert LABS, "no labs in notebooks/labs/"


def test_structure_every_solution_has_its_lab() -> None:
    names = {p.name for p in LABS}
    orphans = [p.name for p in (ROOT / "notebooks" / "labs" / "solutions").glob("*.ipynb") if p.name not in names]
    assert not orphans


def test_structure_lab_and_solution_differ_only_in_todo_cells(pair) -> None:
    _, lab, solution = pair
    assert len(lab.cells) == len(solution.cells)
    todo = 0
    for index, (a, b) in enumerate(zip(lab.cells, solution.cells, strict=True)):
        assert a.cell_type == b.cell_type, f"cell {index}"
        if "todo" in _tags(a):
            todo += 1
            assert "solution" in _tags(b), f"cell {index}: a TODO cell must face a solution cell"
            assert "..." in a.source and "TODO" in a.source, f"cell {index}: a TODO cell holds a `...` placeholder"
        else:
            assert a.source == b.source, f"cell {index} differs between the lab and its solution"
            assert _tags(a) == _tags(b), f"cell {index}"
    assert todo >= 3, "a lab has at least three tasks"


def test_structure_lab_starts_and_ends_as_the_brief_says(pair) -> None:
    path, lab, _ = pair
    assert lab.cells[0].cell_type == "markdown" and lab.cells[0].source.startswith(f"# Lab {path.name[:2]} · ")
    code = [c for c in lab.cells if c.cell_type == "code"]
    assert "parameters" in _tags(code[0]) and re.match(r'^scale = "default"(\s*#.*)?$', code[0].source.strip())
    assert re.search(r'helpers\.start\("' + re.escape(path.stem), code[1].source)
    assert "labs.reset()" in code[1].source
    assert code[-1].source.strip() == "print(labs.summary())"


def test_structure_every_check_fails_in_the_lab_and_passes_in_the_solution(pair) -> None:
    _, lab, solution = pair
    checks = [i for i, c in enumerate(lab.cells) if "check" in _tags(c)]
    assert checks, "a lab has check cells"
    for index in checks:
        shown, solved = _text(lab.cells[index]).strip(), _text(solution.cells[index]).strip()
        assert shown.startswith(FAIL), f"cell {index} of the lab should show ❌, shows {shown[:120]!r}"
        assert "could not check" not in shown, f"cell {index}: the unsolved lab breaks the check: {shown[:200]}"
        assert solved.startswith(PASS), f"cell {index} of the solution should show ✅, shows {solved[:200]!r}"
    assert _text(lab.cells[-1]).strip().endswith("(the solution is in notebooks/labs/solutions/ if you are stuck).")
    assert _text(solution.cells[-1]).strip().endswith("checks pass: lab complete.")


def test_structure_the_lab_shows_the_outputs_its_solution_proves(pair) -> None:
    """Outside its TODO cells, its checks and its closing summary, the unsolved lab shows what the solution (executed
    by nbval) shows, up to what nbval itself ignores (run ids, ports, durations)."""
    import configparser

    rules = configparser.ConfigParser()
    rules.read(ROOT / "tests" / "nbval_sanitize.cfg")

    def sanitized(cell: nbformat.NotebookNode) -> str:
        text = _text(cell)
        for section in rules.sections():
            text = re.sub(rules[section]["regex"], rules[section]["replace"], text)
        return text

    _, lab, solution = pair
    for index, (a, b) in enumerate(zip(lab.cells[:-1], solution.cells[:-1], strict=True)):
        if a.cell_type == "code" and not {"todo", "check"} & set(_tags(a)):
            assert sanitized(a) == sanitized(b), f"cell {index}: the lab's output differs from its solution's"


def test_structure_every_check_of_the_module_is_called_by_its_lab(pair) -> None:
    _, lab, _ = pair
    code = "\n".join(c.source for c in lab.cells if c.cell_type == "code")
    match = IMPORT.search(code)
    assert match, "a lab imports its checks with `from helpers.labs import <module> as lab`"
    module, alias = match.group(1), match.group(2) or match.group(1)
    checked = "\n".join(c.source for c in lab.cells if "check" in _tags(c))
    for name in labs.checks_in(importlib.import_module(f"helpers.labs.{module}")):
        assert f"{alias}.{name}(" in checked, f"check {name} of helpers.labs.{module} is never called by the lab"


# --------------------------------------------------------------------------------------------------------------
# Shared fixtures for the lab modules' tests


# --------------------------------------------------------------------------------------------------------------
# Lab 04 · foundations


@pytest.fixture(scope="module")
def ames_clean(spark):
    from helpers.datasets import load
    from helpers.labs import foundations

    return foundations.reference_clean(load("ames", spark)).cache()


@pytest.fixture(scope="module")
def ames_models(ames_clean):
    """(a good compact model, its RMSE in dollars, a living-area-only model, a model of dollars)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.regression import LinearRegression
    from pyspark.sql import functions as F

    from helpers import houses as ames
    from helpers.labs import foundations

    train, test = foundations.split(ames_clean)

    def fit(categorical, numeric, label="log_price"):
        return Pipeline(stages=[*ames.feature_stages(categorical, numeric),
                                LinearRegression(labelCol=label, regParam=0.001, elasticNetParam=0.5)]).fit(train)

    good = fit(ames.COMPACT_CATEGORICAL, ames.COMPACT_NUMERIC)
    error = (F.pow(F.lit(10.0), F.col("prediction")) - F.col("sale_price")) ** 2
    rmse = good.transform(test).select(F.sqrt(F.avg(error))).first()[0]
    return good, rmse, fit([], ["gr_liv_area"]), fit(ames.COMPACT_CATEGORICAL, ames.COMPACT_NUMERIC, "sale_price")


def test_foundations_inspect() -> None:
    from helpers.labs import foundations as lab

    assert lab.test_inspect(2930, "North_Ames").passed
    fails_with(lab.test_inspect(74, "North_Ames"), "number of columns")
    fails_with(lab.test_inspect(2925, "North_Ames"), "2,925", "before any filter")
    fails_with(lab.test_inspect(2930, "College_Creek"), "College_Creek has 267", "DESCENDING")
    fails_with(lab.test_inspect(2930, "North Ames"), "not a neighbourhood", "North_Ames")
    fails_with(lab.test_inspect(2930.0, "North_Ames"), "should be a whole number")
    assert lab.test_inspect(np.int64(2930), "North_Ames").passed  # a count from numpy or pandas is a count too


def test_foundations_clean(ames_clean) -> None:
    from pyspark.sql import functions as F

    from helpers.labs import foundations as lab

    assert lab.test_clean(ames_clean).passed
    fails_with(lab.test_clean(ames_clean.unionByName(ames_clean.limit(5))), "expected 2,925")
    fails_with(lab.test_clean(ames_clean.drop("house_age")), "lacks", "house_age")
    fails_with(lab.test_clean(ames_clean.withColumn("log_price", F.log("sale_price"))), "natural logarithm")
    fails_with(lab.test_clean(ames_clean.withColumn("house_age", F.col("year_built") - F.col("year_sold"))),
                "wrong way round")


def test_foundations_clean_spots_the_giant_houses_left_in(spark) -> None:
    from pyspark.sql import functions as F

    from helpers.datasets import load
    from helpers.labs import foundations as lab

    kept = load("ames", spark).withColumn("log_price", F.log10("sale_price")).withColumn(
        "house_age", F.col("year_sold") - F.col("year_built"))
    fails_with(lab.test_clean(kept), "2,930 rows", "above 4,000 sq ft")


def test_foundations_model(ames_models) -> None:
    from pyspark.ml.regression import LinearRegression

    from helpers.labs import foundations as lab

    good, rmse, weak, dollars = ames_models
    assert 25_000 < rmse < lab.RMSE_DOLLARS_LIMIT
    assert lab.test_model(good, rmse).passed
    fails_with(lab.test_model(good, 0.072), "log scale", "transform back")
    fails_with(lab.test_model(good, rmse * 0.8), "your model's RMSE on the test rows")
    fails_with(lab.test_model(dollars, rmse), "that is dollars", "log_price")
    fails_with(lab.test_model(weak, lab._rmse_in_dollars(weak)[0]), "above $35,000", "neighborhood")
    fails_with(lab.test_model(LinearRegression(), rmse), "FITTED")


def test_foundations_run(ames_models, mlflow_store) -> None:
    import mlflow

    from helpers.labs import foundations as lab

    good, rmse, weak, _ = ames_models
    with mlflow.start_run() as run:
        mlflow.log_param("regParam", 0.001)
        mlflow.log_metric("rmse_dollars", rmse)
    assert lab.test_run(run.info.run_id, good).passed
    fails_with(lab.test_run(run.info.run_id, weak), "scores $")
    fails_with(lab.test_run("0" * 32, good), "no run with id")
    with mlflow.start_run() as log_scale:
        mlflow.log_param("regParam", 0.001)
        mlflow.log_metric("rmse_dollars", 0.07)
    fails_with(lab.test_run(log_scale.info.run_id, good), "log-scale RMSE")
    with mlflow.start_run() as no_param:
        mlflow.log_metric("rmse_dollars", rmse)
    fails_with(lab.test_run(no_param.info.run_id, good), "no param 'regParam'")
    with mlflow.start_run() as wrong_param:
        mlflow.log_params({"regParam": 0.1})
        mlflow.log_metric("rmse_dollars", rmse)
    fails_with(lab.test_run(wrong_param.info.run_id, good), "regParam=0.1", "0.001")
    unfinished = mlflow.start_run()
    mlflow.log_metric("rmse_dollars", rmse)
    fails_with(lab.test_run(unfinished.info.run_id, good), "RUNNING")
    mlflow.end_run()


# --------------------------------------------------------------------------------------------------------------
# Lab 09 · classification


@pytest.fixture(scope="module")
def loan_models(spark):
    """Cheap logistic regressions of four numeric columns on the lab's training loans: (the label, the label
    reversed)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.sql import functions as F

    from helpers.houses import feature_stages
    from helpers.labs import classification

    train = classification.loan_sets(spark)[0].withColumn("good", 1.0 - F.col("label"))

    def fit(label):
        # The rate and the recent-credit columns chapter 05's penalty kept: cheap, and more than the rate alone.
        columns = ["int_rate", "open_il_12m", "inq_fi", "inq_last_6mths"]
        return Pipeline(stages=[*feature_stages([], columns), LogisticRegression(labelCol=label)]).fit(train)

    return fit("label"), fit("good")


def test_classification_logistic(loan_models) -> None:
    from pyspark.ml.classification import LogisticRegression

    from helpers.labs import classification as lab

    good, reversed_label = loan_models
    assert lab.test_logistic(good).passed
    fails_with(lab.test_logistic(reversed_label), "below 0.5", "bad loan")
    fails_with(lab.test_logistic(LogisticRegression()), "FITTED")


def test_classification_logistic_no_better_than_the_rate_alone(spark) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    from helpers.labs import classification as lab

    rate_only = Pipeline(stages=[VectorAssembler(inputCols=["int_rate"], outputCol="features"),
                                 LogisticRegression()]).fit(lab.loan_sets(spark)[0])
    fails_with(lab.test_logistic(rate_only), "reads the interest rate alone")


def test_classification_logistic_below_the_limit(spark, monkeypatch, loan_models) -> None:
    from helpers.labs import classification as lab

    monkeypatch.setattr(lab, "AUC_LIMIT", 0.99)  # a weak model, without fitting one: raise the bar instead
    fails_with(lab.test_logistic(loan_models[0]), "below 0.99", "regParam")


def test_classification_threshold(spark, loan_models) -> None:
    from helpers.labs import classification as lab

    model = loan_models[0]
    p_bad, labels = lab._p_bad(model, lab.loan_sets(spark)[1])
    bad = np.sort(p_bad[labels == 1.0])[::-1]
    best = float(bad[int(np.ceil(0.6 * len(bad))) - 1])
    assert lab.test_threshold(model, best).passed
    scores = np.unique(p_bad)
    spark_rule = float(scores[scores < best].max())  # flagging P(bad) > t, as setThreshold does: one score lower
    assert lab.test_threshold(model, spark_rule).passed
    fails_with(lab.test_threshold(model, 0.5), "default threshold 0.5")
    fails_with(lab.test_threshold(model, best + 0.02), "below the target 60%")
    fails_with(lab.test_threshold(model, 0.01), "HIGHEST threshold")
    fails_with(lab.test_threshold(model, "0.06"), "should be a number")


@pytest.fixture(scope="module")
def biopsy_sets(spark):
    from helpers.datasets import load
    from helpers.labs import classification

    biopsies = load("breast_cancer", spark)
    train, test = classification.biopsy_split(biopsies)
    return classification.biopsy_features(biopsies), train.coalesce(1).cache(), test


def test_classification_biopsy_split_is_stratified(biopsy_sets) -> None:
    _, train, test = biopsy_sets
    assert (train.count(), test.count()) == (454, 115)


def test_classification_linear_svc(biopsy_sets) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LinearSVC, LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    from helpers.labs import classification as lab

    features, train, _ = biopsy_sets

    def fit(estimator):
        return Pipeline(stages=[VectorAssembler(inputCols=features, outputCol="features"), estimator]).fit(train)

    assert lab.test_linear_svc(fit(LinearSVC(regParam=0.01, maxIter=30, tol=1e-4))).passed
    fails_with(lab.test_linear_svc(fit(LinearSVC(regParam=0.01, maxIter=30, tol=1e-4, standardization=False))),
                "below 0.97", "standardization off")
    fails_with(lab.test_linear_svc(fit(LinearSVC(regParam=1.0, maxIter=30, tol=1e-4))), "regParam 1.0 is strong")
    fails_with(lab.test_linear_svc(fit(LogisticRegression(maxIter=5))), "no LinearSVC stage")


def test_classification_rbf_svm(biopsy_sets) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from helpers.labs import classification as lab

    features, train, _ = biopsy_sets
    frame = train.toPandas()
    X, y = frame[features], frame["diagnosis"]
    assert lab.test_rbf_svm(make_pipeline(StandardScaler(), SVC()).fit(X, y)).passed
    assert lab.test_rbf_svm(make_pipeline(StandardScaler(), SVC()).fit(X.to_numpy(), y)).passed
    fails_with(lab.test_rbf_svm(SVC().fit(X, y)), "StandardScaler")
    fails_with(lab.test_rbf_svm(make_pipeline(StandardScaler(), SVC(C=0.001)).fit(X, y)), "C=0.001")
    fails_with(lab.test_rbf_svm(make_pipeline(StandardScaler(), SVC(kernel="linear")).fit(X, y)), "RBF kernel")
    fails_with(lab.test_rbf_svm(make_pipeline(StandardScaler(), SVC())), "not fitted")


# --------------------------------------------------------------------------------------------------------------
# Lab 08 · trees


def _penguin_tree(train, depth: int, label: str = "label"):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    return Pipeline(stages=[
        StringIndexer(inputCols=["species", "island"], outputCols=[label, "island_index"]),
        VectorAssembler(inputCols=["island_index", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                   "body_mass_g"], outputCol="features"),
        DecisionTreeClassifier(maxDepth=depth, seed=42, labelCol=label),
    ]).fit(train)


def test_trees_tree(spark) -> None:
    from helpers.labs import trees as lab

    train, _ = lab.penguin_split(spark)
    assert lab.test_tree(_penguin_tree(train, 3)).passed
    fails_with(lab.test_tree(_penguin_tree(train, 1)), "below 0.95", "at most 2 leaves")
    fails_with(lab.test_tree(_penguin_tree(train, 5)), "depth 5", "maxDepth=3")
    fails_with(lab.test_tree(_penguin_tree(train, 3, label="species_index")), "no `label` column")


@pytest.fixture(scope="module")
def loan_forests(spark):
    """(40 trees of depth 4, 5 trees of depth 4) on the lab's training loans."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    from helpers import loans
    from helpers.labs import trees

    train_all = trees.loan_sets(spark)[0].cache()
    indexed = [f"{c}_index" for c in loans.CATEGORICAL]

    def fit(trees_count: int):
        return Pipeline(stages=[
            StringIndexer(inputCols=list(loans.CATEGORICAL), outputCols=indexed, handleInvalid="keep"),
            VectorAssembler(inputCols=[*loans.NUMERIC, *indexed], outputCol="features"),
            RandomForestClassifier(numTrees=trees_count, maxDepth=4, maxBins=64, seed=42),
        ]).fit(train_all)

    return fit(40), fit(5)


def test_trees_forest(loan_forests, monkeypatch) -> None:
    from pyspark.ml.classification import RandomForestClassifier

    from helpers.labs import trees as lab

    good, few = loan_forests
    assert lab.test_forest(good).passed
    fails_with(lab.test_forest(few), "5 trees are too few")
    fails_with(lab.test_forest(RandomForestClassifier()), "FITTED")
    monkeypatch.setattr(lab, "FOREST_AUC_LIMIT", 0.99)
    fails_with(lab.test_forest(good), "below 0.99", "loans.NUMERIC")


def test_trees_forest_of_the_rate_alone(spark) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    from helpers.labs import trees as lab

    rate_only = Pipeline(stages=[VectorAssembler(inputCols=["int_rate"], outputCol="features"),
                                 RandomForestClassifier(numTrees=40, maxDepth=4, seed=42)]).fit(
        lab.loan_sets(spark)[0])
    fails_with(lab.test_forest(rate_only), "reads only int_rate", "loans.NUMERIC")


def test_trees_importance(loan_forests) -> None:
    from helpers.labs import trees as lab

    good, _ = loan_forests
    assert lab.test_importance(good, "int_rate").passed
    fails_with(lab.test_importance(good, "sub_grade_index"), "DESCENDING", "int_rate")
    fails_with(lab.test_importance(good, "addr_state"), "DESCENDING")
    fails_with(lab.test_importance(good, "loan_id"), "not one of the forest's inputs")
    fails_with(lab.test_importance(good, 1), "column name")


def test_trees_boosting(spark, monkeypatch) -> None:
    import lightgbm as lgb
    import pandas as pd

    from helpers import loans
    from helpers.labs import trees as lab

    _, train, valid, _ = lab.loan_sets(spark)
    train_pd, valid_pd = loans.to_pandas(train), loans.to_pandas(valid)
    X_train, X_valid = lab.to_lightgbm(train_pd), lab.to_lightgbm(valid_pd)
    settings = dict(n_estimators=1000, learning_rate=0.05, num_leaves=7, min_child_samples=50, max_cat_to_onehot=64,
                    random_state=42, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)
    stopped = lgb.LGBMClassifier(**settings).fit(
        X_train, train_pd["label"], eval_X=(X_valid,), eval_y=(valid_pd["label"],), eval_metric="binary_logloss",
        callbacks=[lgb.early_stopping(25, verbose=False)])
    assert lab.test_boosting(stopped).passed
    fails_with(lab.test_boosting(lgb.LGBMClassifier(**settings).fit(X_train, train_pd["label"])),
                "kept all 1000 rounds", "early_stopping")
    fails_with(lab.test_boosting(lgb.LGBMClassifier()), "not fitted")
    fails_with(lab.test_boosting(train_pd), "should be a lightgbm.LGBMClassifier")
    test_pd = loans.to_pandas(lab.loan_sets(spark)[3])
    on_test = lgb.LGBMClassifier(**settings).fit(
        X_train, train_pd["label"], eval_X=(lab.to_lightgbm(test_pd),), eval_y=(test_pd["label"],),
        eval_metric="binary_logloss", callbacks=[lgb.early_stopping(25, verbose=False)])
    fails_with(lab.test_boosting(on_test), "early stopping watched the TEST loans")
    # Every column but the interest rate held constant in training: the model can split on the rate alone.
    flat = X_train.copy()
    for column in flat.columns.drop("int_rate"):
        first = [flat[column].iloc[0]] * len(flat)
        flat[column] = (pd.Categorical(first, categories=flat[column].cat.categories)
                        if flat[column].dtype == "category" else first)
    rate_only = lgb.LGBMClassifier(**settings).fit(
        flat, train_pd["label"], eval_X=(X_valid,), eval_y=(valid_pd["label"],), eval_metric="binary_logloss",
        callbacks=[lgb.early_stopping(25, verbose=False)])
    fails_with(lab.test_boosting(rate_only), "splits on the interest rate alone")
    monkeypatch.setattr(lab, "BOOSTING_AUC_LIMIT", 0.99)
    fails_with(lab.test_boosting(stopped), "below 0.99", "early stopping kept")


# --------------------------------------------------------------------------------------------------------------
# Lab 11 · unsupervised


@pytest.fixture(scope="module")
def penguin_clusters(spark):
    """(k-means on standardised measurements, on raw measurements, with k=4) and the penguins."""
    from pyspark.ml import Pipeline
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    from helpers.labs import unsupervised as lab

    penguins = lab.measured_penguins(spark).cache()
    assemble = VectorAssembler(inputCols=list(lab.MEASURES), outputCol="raw")
    scale = StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True)
    scaled = Pipeline(stages=[assemble, scale, KMeans(k=3, seed=1)]).fit(penguins)
    raw = Pipeline(stages=[assemble, KMeans(k=3, seed=1, featuresCol="raw")]).fit(penguins)
    four = Pipeline(stages=[assemble, scale, KMeans(k=4, seed=1)]).fit(penguins)
    return scaled, raw, four, penguins


def test_unsupervised_kmeans(penguin_clusters) -> None:
    from helpers.labs import unsupervised as lab

    scaled, raw, four, _ = penguin_clusters
    assert lab.test_kmeans(scaled).passed
    fails_with(lab.test_kmeans(raw), "without scaling", "StandardScaler")
    fails_with(lab.test_kmeans(four), "k=4")


def test_unsupervised_silhouette(penguin_clusters) -> None:
    from pyspark.ml.evaluation import ClusteringEvaluator

    from helpers.labs import unsupervised as lab

    scaled, _, _, penguins = penguin_clusters
    scored = scaled.transform(penguins)
    right = ClusteringEvaluator().evaluate(scored)
    on_raw = ClusteringEvaluator(featuresCol="raw").evaluate(scored)
    assert lab.test_silhouette(scaled, right).passed
    fails_with(lab.test_silhouette(scaled, on_raw), "silhouette on `raw`", "featuresCol")
    fails_with(lab.test_silhouette(scaled, right - 0.1), "your clusters score")
    fails_with(lab.test_silhouette(scaled, "0.6"), "should be a number")


def test_unsupervised_pca(spark) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import PCA, StandardScaler, VectorAssembler

    from helpers.datasets import load
    from helpers.labs import unsupervised as lab

    wines = load("wine", spark)
    assemble = VectorAssembler(inputCols=lab.wine_features(wines), outputCol="raw")

    def fit(k: int = 2, with_std: bool | None = True):
        scaler = ([] if with_std is None else
                  [StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=with_std)])
        return Pipeline(stages=[assemble, *scaler,
                                PCA(k=k, inputCol="features" if scaler else "raw", outputCol="pcs")]).fit(wines)

    assert lab.test_pca(fit()).passed
    fails_with(lab.test_pca(fit(with_std=None)), "proline alone", "standardise")
    fails_with(lab.test_pca(fit(k=3)), "keeps 3 components")
    fails_with(lab.test_pca(fit(with_std=False)), "proline alone")  # centring alone changes no variance


def test_unsupervised_components() -> None:
    from helpers.labs import unsupervised as lab

    assert lab.test_components(8).passed
    fails_with(lab.test_components(7), "only 89.3%")
    fails_with(lab.test_components(9), "more than needed", "8 components")
    fails_with(lab.test_components(1), "raw measurements")
    fails_with(lab.test_components(8.0), "should be an int")
