from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import trees

# A depth-2 tree as Spark prints it: a continuous split, then a categorical one on the right.
DEBUG = """DecisionTreeClassificationModel: uid=dtc_1, depth=2, numNodes=5, numClasses=2, numFeatures=2
  If (feature 0 <= 2.5)
   Predict: 0.0
  Else (feature 0 > 2.5)
   If (feature 1 in {0.0,2.0})
    Predict: 1.0
   Else (feature 1 not in {0.0,2.0})
    Predict: 0.0
"""


pytestmark = pytest.mark.usefixtures("plot_style")


# --- parsing and structure ------------------------------------------------------------------


def test_parse_debug_string_reads_both_kinds_of_split() -> None:
    root = trees.parse_debug_string(DEBUG)
    assert (root.feature, root.threshold, root.left_categories) == (0, 2.5, None)
    assert root.left.is_leaf and root.left.prediction == 0.0
    right = root.right
    assert (right.feature, right.threshold, right.left_categories) == (1, None, (0.0, 2.0))
    assert (right.left.prediction, right.right.prediction) == (1.0, 0.0)
    assert (root.depth(), root.num_nodes(), root.num_leaves()) == (2, 5, 3)
    assert root.counts is None and root.samples is None and math.isnan(root.prediction)


def test_a_parsed_tree_predicts_by_walking_its_splits() -> None:
    root = trees.parse_debug_string(DEBUG)
    assert root.predict([1.0, 0.0]) == 0.0  # left at the root
    assert root.predict([3.0, 2.0]) == 1.0  # right, then category 2 is on the left
    assert root.predict([3.0, 1.0]) == 0.0  # right, then category 1 is on the right


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no tree"),
        ("Tree 0 (weight 1.0):\n If (feature 0 <= 1.0)\n  Predict: 0.0\n"
         " Else (feature 0 > 1.0)\n  Predict: 1.0", "forest"),
        ("If (feature 0 <= 1.0)\n Predict: 0.0", "Else"),
        ("If (feature 0 <= 1.0)\n Predict: 0.0\nElse (feature 1 > 1.0)\n Predict: 1.0", "does not match"),
        ("Predict: 0.0\nPredict: 1.0", "continues"),
    ],
)
def test_parse_debug_string_rejects_what_is_not_one_tree(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trees.parse_debug_string(text)


def test_conditions_and_rules_read_in_words() -> None:
    root = trees.parse_debug_string(DEBUG)
    names = ["distance", "company"]
    categories = {1: ["Flash Cab", "Sun Taxi", "other"]}
    assert trees.condition(root, names) == "distance ≤ 2.5"
    assert trees.condition(root.right, names, categories) == "company in {Flash Cab, other}"
    assert trees.condition(root.right) == "feature 1 in {0, 2}"
    assert trees.rules(root, names, ["tip", "no tip"], categories) == [
        "IF distance ≤ 2.5 THEN tip",
        "IF NOT distance ≤ 2.5 AND company in {Flash Cab, other} THEN no tip",
        "IF NOT distance ≤ 2.5 AND NOT company in {Flash Cab, other} THEN tip",
    ]
    with pytest.raises(ValueError):
        trees.condition(root.left)


def test_long_category_lists_are_shortened() -> None:
    node = trees.TreeNode(prediction=0.0, feature=0, left_categories=tuple(float(i) for i in range(7)),
                          left=trees.TreeNode(0.0), right=trees.TreeNode(1.0))
    assert trees.condition(node, ["state"], max_categories=3) == "state in {0, 1, 2, +4 more}"


# --- drawing --------------------------------------------------------------------------------


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_plot_tree_draws_every_node_and_labels_the_branches() -> None:
    root = trees.parse_debug_string(DEBUG)
    fig = trees.plot_tree(root, ["distance", "company"], ["tip", "no tip"], {1: ["A", "B", "C"]}, title="t")
    texts = _texts(fig)
    assert fig.axes[0].get_title() == "t"
    assert texts.count("yes") == 2 and texts.count("no") == 2  # one pair of branch labels per split
    node_boxes = [t for t in texts if t not in ("yes", "no")]
    assert len(node_boxes) == root.num_nodes()
    assert any("distance ≤ 2.5" in t for t in node_boxes)
    assert any("company in {A, C}" in t for t in node_boxes)
    assert sum("→ no tip" in t for t in node_boxes) == 1


def test_plot_tree_can_stop_at_a_depth() -> None:
    root = trees.parse_debug_string(DEBUG)
    texts = [t for t in _texts(trees.plot_tree(root, max_depth=1)) if t not in ("yes", "no")]
    assert len(texts) == 3  # the root and its two children; the right child summarises its subtree
    assert any("(subtree: 2 leaves)" in t for t in texts)


def test_plot_tree_shows_class_shares_when_counts_are_known() -> None:
    leaf_a = trees.TreeNode(prediction=0.0, counts=(8.0, 2.0))
    leaf_b = trees.TreeNode(prediction=1.0, counts=(1.0, 9.0))
    root = trees.TreeNode(prediction=1.0, feature=0, threshold=1.5, left=leaf_a, right=leaf_b,
                          counts=(9.0, 11.0), impurity=1 - (9 / 20) ** 2 - (11 / 20) ** 2)
    texts = _texts(trees.plot_tree(root, ["x"], ["no", "yes"], impurity_label="gini"))
    assert any("no 80% · n = 10" in t for t in texts)
    assert any("yes 55% · n = 20" in t and "gini 0.495" in t for t in texts)


# --- from a fitted Spark model --------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(spark):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    rows = [(float(x), colour, float((x > 4) != (colour == "red")))
            for x in range(10) for colour in ("red", "green", "blue") for _ in range(3)]
    frame = spark.createDataFrame(rows, "x double, colour string, label double")
    model = Pipeline(stages=[
        StringIndexer(inputCol="colour", outputCol="colour_index", stringOrderType="alphabetAsc"),
        VectorAssembler(inputCols=["x", "colour_index"], outputCol="features"),
        DecisionTreeClassifier(maxDepth=3, seed=42),
    ]).fit(frame)
    return frame, model, model.transform(frame)


def test_tree_structure_matches_the_model(fitted) -> None:
    frame, model, scored = fitted
    tree = model.stages[-1]
    root = trees.tree_structure(tree)
    assert (root.depth(), root.num_nodes()) == (tree.depth, tree.numNodes)
    labels = [r.label for r in frame.select("label").collect()]
    assert root.counts == (float(labels.count(0.0)), float(labels.count(1.0)))
    assert root.impurity == pytest.approx(1 - sum((c / sum(root.counts)) ** 2 for c in root.counts))
    # Walking the structure gives the model's own predictions, row by row.
    for row in scored.select("features", "prediction").collect():
        assert root.predict(row.features.toArray()) == row.prediction


def test_walking_the_model_and_parsing_its_debug_string_agree(fitted) -> None:
    _, model, _ = fitted
    tree = model.stages[-1]
    walked, parsed = trees.tree_structure(tree), trees.parse_debug_string(tree.toDebugString)

    def shape(node):
        if node.is_leaf:
            return ("leaf", node.prediction)
        return (node.feature, node.threshold, node.left_categories, shape(node.left), shape(node.right))

    assert shape(walked) == shape(parsed)


def test_feature_categories_come_from_the_vector_metadata(fitted) -> None:
    _, _, scored = fitted
    assert trees.feature_categories(scored) == {1: ["blue", "green", "red"]}
    root = trees.tree_structure(fitted[1].stages[-1])
    categorical = [n for n in _all_nodes(root) if n.left_categories is not None]
    assert categorical, "the tree should split on colour"
    text = trees.condition(categorical[0], ["x", "colour"], trees.feature_categories(scored))
    assert text.startswith("colour in {") and text.endswith("}")
    assert set(text[len("colour in {"):-1].split(", ")) <= {"blue", "green", "red"}


def _all_nodes(node):
    yield node
    if not node.is_leaf:
        for child in node.children:
            yield from _all_nodes(child)


def test_per_tree_probabilities_average_to_the_forest(spark) -> None:
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array

    rows = [(float(i % 7), float(i % 3), float((i % 7) + (i % 3) > 4)) for i in range(90)]
    frame = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(
        spark.createDataFrame(rows, "a double, b double, label double")).cache()
    forest = RandomForestClassifier(numTrees=7, maxDepth=3, seed=42).fit(frame)
    per_tree = trees.per_tree_probabilities(forest, frame, batch_size=3)
    assert per_tree.shape == (90, 7)
    scored = forest.transform(frame).select(vector_to_array("probability")[1].alias("p"))
    expected = np.array([row.p for row in scored.collect()])
    assert np.allclose(per_tree.mean(axis=1), expected)


def test_plot_tree_wraps_long_conditions() -> None:
    node = trees.TreeNode(prediction=0.0, feature=0, left_categories=(0.0, 1.0, 2.0),
                          left=trees.TreeNode(0.0), right=trees.TreeNode(1.0))
    labels = {0: ["Taxi Affiliation Services", "Sun Taxi", "Chicago Independents"]}
    texts = _texts(trees.plot_tree(node, ["company"], categories=labels, wrap=20))
    box = next(t for t in texts if t.startswith("company"))
    condition_lines = box.splitlines()[:-1]  # the last line is the node's prediction
    assert len(condition_lines) >= 3 and all(len(line) <= 26 for line in condition_lines)
    expected = "company in {Taxi Affiliation Services, Sun Taxi, Chicago Independents}"
    assert " ".join(condition_lines) == expected


def test_tree_structure_falls_back_to_the_debug_string_without_a_jvm() -> None:
    class ConnectLikeModel:  # what a Spark Connect model offers: a debug string, no JVM object
        toDebugString = DEBUG

        def _call_java(self, name: str):
            raise AttributeError("no JVM behind this model")

    root = trees.tree_structure(ConnectLikeModel())
    assert (root.num_nodes(), root.right.left_categories) == (5, (0.0, 2.0))


def test_tree_structure_of_a_regression_tree_has_no_class_counts(spark) -> None:
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import DecisionTreeRegressor

    frame = VectorAssembler(inputCols=["x"], outputCol="features").transform(
        spark.createDataFrame([(float(x), float(x > 4) * 10.0) for x in range(10)], "x double, label double"))
    model = DecisionTreeRegressor(maxDepth=2, seed=42).fit(frame)
    root = trees.tree_structure(model)
    assert root.counts is None and root.threshold == pytest.approx(4.5)
    assert (root.left.prediction, root.right.prediction) == (0.0, 10.0)
