"""Decision trees made readable: the structure of a fitted Spark tree, its split rules in words, and a
drawing of it (chapter 06 computes the impurity measures themselves in its own cells).

A fitted ``DecisionTreeClassificationModel`` (or one tree of a forest) becomes a plain ``TreeNode``::

    root = trees.tree_structure(model)            # walks the model's nodes (class counts included)
    fig = trees.plot_tree(root, feature_names, class_names=["Adelie", "Gentoo", "Chinstrap"],
                          categories=trees.feature_categories(predictions))

``tree_structure`` reads the model's node objects through the JVM when it can, which gives every
node's class counts and impurity; where that is impossible (a Spark Connect session) it parses
``model.toDebugString`` instead, which gives the splits and each leaf's prediction only.

Spark's convention is kept throughout: a row goes to the **left** child when the split's condition
holds (``value <= threshold`` for a continuous feature, ``value in left_categories`` for a categorical
one), and to the right child otherwise.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pyspark.sql import DataFrame


# ---------------------------------------------------------------------------------------------
# The structure of a fitted tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeNode:
    """One node of a binary decision tree.

    A leaf has ``feature is None``. A split node has either a ``threshold`` (continuous feature: left
    when ``value <= threshold``) or ``left_categories`` (categorical feature: left when the value's
    category index is one of them). ``counts`` are the (weighted) training rows of each class that
    reached the node and ``impurity`` their impurity, when the source provides them.
    """

    prediction: float
    feature: int | None = None
    threshold: float | None = None
    left_categories: tuple[float, ...] | None = None
    left: TreeNode | None = None
    right: TreeNode | None = None
    counts: tuple[float, ...] | None = None
    impurity: float | None = None
    gain: float | None = None

    @property
    def is_leaf(self) -> bool:
        return self.feature is None

    @property
    def samples(self) -> float | None:
        """Training rows (weighted) that reached this node, when counts are known."""
        return float(sum(self.counts)) if self.counts is not None else None

    @property
    def children(self) -> tuple[TreeNode, TreeNode]:
        if self.left is None or self.right is None:
            raise ValueError("a leaf has no children")
        return self.left, self.right

    def depth(self) -> int:
        """Number of splits on the longest path from this node to a leaf (a single leaf has depth 0)."""
        if self.is_leaf:
            return 0
        return 1 + max(child.depth() for child in self.children)

    def num_nodes(self) -> int:
        return 1 if self.is_leaf else 1 + sum(child.num_nodes() for child in self.children)

    def num_leaves(self) -> int:
        return 1 if self.is_leaf else sum(child.num_leaves() for child in self.children)

    def goes_left(self, value: float) -> bool:
        """Whether a row with ``value`` in this node's feature follows the left branch."""
        if self.is_leaf:
            raise ValueError("a leaf does not split")
        if self.threshold is not None:
            return value <= self.threshold
        return float(value) in (self.left_categories or ())

    def predict(self, features: Sequence[float]) -> float:
        """The prediction for one row of features (a plain walk from this node to a leaf)."""
        node = self
        while not node.is_leaf:
            node = node.children[0] if node.goes_left(features[node.feature]) else node.children[1]
        return node.prediction


_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|Infinity|NaN)"
_IF_CONTINUOUS = re.compile(rf"^If \(feature (\d+) <= ({_NUMBER})\)$")
_IF_CATEGORICAL = re.compile(r"^If \(feature (\d+) in \{([^}]*)\}\)$")
_ELSE = re.compile(r"^Else \(feature (\d+) (?:>|not in) .*\)$")
_PREDICT = re.compile(rf"^Predict: ({_NUMBER})$")


def parse_debug_string(text: str) -> TreeNode:
    """The tree described by a single Spark tree's ``toDebugString``. The text holds no class counts
    and no prediction for split nodes, so those are ``None`` and ``nan``.

    Raises ``ValueError`` for text that is not one tree, e.g. a whole forest's debug string (parse
    each ``model.trees[i].toDebugString`` instead).
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    if any(line.startswith("Tree ") for line in lines):
        raise ValueError("this is a forest's debug string; parse one tree at a time "
                         "(model.trees[i].toDebugString)")
    body = [line for line in lines if line.startswith(("If ", "Else ", "Predict:"))]
    if not body:
        raise ValueError("no tree found: expected lines like 'If (feature 0 <= 1.5)' and 'Predict: 0.0'")
    position = 0

    def parse() -> TreeNode:
        nonlocal position
        if position >= len(body):
            raise ValueError("the debug string ends in the middle of a split")
        line = body[position]
        position += 1
        if match := _PREDICT.match(line):
            return TreeNode(prediction=float(match.group(1)))
        continuous, categorical = _IF_CONTINUOUS.match(line), _IF_CATEGORICAL.match(line)
        if not (continuous or categorical):
            raise ValueError(f"cannot read this line of the debug string: {line!r}")
        feature = int((continuous or categorical).group(1))
        left = parse()
        if position >= len(body) or not (else_match := _ELSE.match(body[position])):
            raise ValueError(f"expected the 'Else' branch of feature {feature} after line {position}")
        if int(else_match.group(1)) != feature:
            raise ValueError(f"'Else' branch of feature {else_match.group(1)} does not match "
                             f"'If' on feature {feature}")
        position += 1
        right = parse()
        if continuous:
            return TreeNode(prediction=math.nan, feature=feature, threshold=float(continuous.group(2)),
                            left=left, right=right)
        cats = tuple(sorted(float(c) for c in categorical.group(2).split(",") if c.strip()))
        return TreeNode(prediction=math.nan, feature=feature, left_categories=cats, left=left, right=right)

    root = parse()
    if position != len(body):
        raise ValueError("the debug string continues after the tree is complete")
    return root


def _from_java(node: Any, with_counts: bool) -> TreeNode:
    stats = tuple(float(v) for v in node.impurityStats().stats()) if with_counts else None
    common = {"prediction": float(node.prediction()), "impurity": float(node.impurity()), "counts": stats}
    if node.getClass().getSimpleName() == "LeafNode":
        return TreeNode(**common)
    split = node.split()
    left = _from_java(node.leftChild(), with_counts)
    right = _from_java(node.rightChild(), with_counts)
    shared = {**common, "feature": int(split.featureIndex()), "left": left, "right": right,
              "gain": float(node.gain())}
    if split.getClass().getSimpleName() == "ContinuousSplit":
        return TreeNode(threshold=float(split.threshold()), **shared)
    return TreeNode(left_categories=tuple(sorted(float(c) for c in split.leftCategories())), **shared)


def tree_structure(model: Any) -> TreeNode:
    """The structure of a fitted Spark decision tree (classifier or regressor, or one of
    ``forest.trees``).

    Walks the model's nodes through the JVM, which gives each node's class counts (classifiers) and
    impurity; falls back to parsing ``model.toDebugString`` where the JVM is out of reach (Spark
    Connect), which gives the splits and the leaves' predictions only.
    """
    try:
        root = model._call_java("rootNode")
        root.getClass()
    except Exception:  # Spark Connect, or an object without a JVM twin
        return parse_debug_string(model.toDebugString)
    # A classifier's impurity statistics are class counts; a regressor's are (count, sum, sum of squares).
    with_counts = "Classification" in type(model).__name__
    return _from_java(root, with_counts)


def feature_categories(frame: DataFrame, column: str = "features") -> dict[int, list[str]]:
    """For each categorical slot of an assembled feature vector, its category labels in index order
    (from the metadata that ``StringIndexer`` and ``VectorAssembler`` attach), so a split such as
    ``feature 2 in {0.0, 3.0}`` can be read as ``company in {Flash Cab, Sun Taxi}``."""
    attributes = frame.schema[column].metadata.get("ml_attr", {}).get("attrs", {})
    return {int(a["idx"]): list(a["vals"]) for a in attributes.get("nominal", []) if "vals" in a}


def _number(value: float) -> str:
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def condition(node: TreeNode, feature_names: Sequence[str] | None = None,
              categories: Mapping[int, Sequence[str]] | None = None, max_categories: int = 4) -> str:
    """A split node's condition in words, e.g. ``distance ≤ 1.5`` or ``company in {City Service, other}``.
    Long category lists are shortened to their first ``max_categories`` and a count."""
    if node.is_leaf or node.feature is None:
        raise ValueError("a leaf has no condition")
    name = feature_names[node.feature] if feature_names is not None else f"feature {node.feature}"
    if node.threshold is not None:
        return f"{name} ≤ {_number(node.threshold)}"
    labels = (categories or {}).get(node.feature)
    values = [labels[int(c)] if labels is not None and int(c) < len(labels) else _number(c)
              for c in (node.left_categories or ())]
    if len(values) > max_categories:
        values = [*values[:max_categories], f"+{len(values) - max_categories} more"]
    return f"{name} in {{{', '.join(values)}}}"


def rules(root: TreeNode, feature_names: Sequence[str] | None = None,
          class_names: Sequence[str] | None = None,
          categories: Mapping[int, Sequence[str]] | None = None) -> list[str]:
    """Every leaf as one readable rule: ``IF a AND NOT b THEN class``, left to right."""
    found: list[str] = []

    def walk(node: TreeNode, path: list[str]) -> None:
        if node.is_leaf:
            conditions = " AND ".join(path) or "always"
            found.append(f"IF {conditions} THEN {_class_name(node.prediction, class_names)}")
            return
        text = condition(node, feature_names, categories)
        walk(node.children[0], [*path, text])
        walk(node.children[1], [*path, f"NOT {text}"])

    walk(root, [])
    return found


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def _layout(root: TreeNode, max_depth: int | None) -> list[tuple[TreeNode, float, int, bool]]:
    """(node, x, depth, truncated) for every drawn node: leaves (or cut-off nodes) spaced evenly from
    left to right, each split centred over its children."""
    placed: list[tuple[TreeNode, float, int, bool]] = []
    next_x = 0.0

    def place(node: TreeNode, depth: int) -> float:
        nonlocal next_x
        cut = max_depth is not None and depth >= max_depth and not node.is_leaf
        if node.is_leaf or cut:
            x = next_x
            next_x += 1.0
        else:
            x = (place(node.children[0], depth + 1) + place(node.children[1], depth + 1)) / 2
        placed.append((node, x, depth, cut))
        return x

    place(root, 0)
    return placed


def _class_name(prediction: float, class_names: Sequence[str] | None) -> str:
    if class_names is not None and float(prediction).is_integer() and 0 <= int(prediction) < len(class_names):
        return str(class_names[int(prediction)])
    return _number(prediction)


def _purity(node: TreeNode) -> float | None:
    """The share of the node's rows in its predicted class, when counts are known."""
    if node.counts is None or not node.samples or not float(node.prediction).is_integer():
        return None
    index = int(node.prediction)
    return node.counts[index] / node.samples if 0 <= index < len(node.counts) else None


def _node_text(node: TreeNode, truncated: bool, feature_names: Sequence[str] | None,
               class_names: Sequence[str] | None, categories: Mapping[int, Sequence[str]] | None,
               impurity_label: str | None, wrap: int = 30, max_categories: int = 4) -> str:
    lines: list[str] = []
    splits = not node.is_leaf and not truncated
    if splits:
        lines.append(textwrap.fill(condition(node, feature_names, categories, max_categories), width=wrap,
                                   break_long_words=False, break_on_hyphens=False))
    share = _purity(node)
    if share is not None:
        lines.append(f"{_class_name(node.prediction, class_names)} {share:.0%} · n = {node.samples:,.0f}")
    elif not math.isnan(node.prediction):
        lines.append(("→ " if node.is_leaf else "mostly ") + _class_name(node.prediction, class_names))
    if impurity_label and node.impurity is not None and splits:
        lines.append(f"{impurity_label} {node.impurity:.3f}")
    if truncated:
        lines.append(f"(subtree: {node.num_leaves()} leaves)")
    return "\n".join(lines)


def plot_tree(root: TreeNode, feature_names: Sequence[str] | None = None,
              class_names: Sequence[str] | None = None,
              categories: Mapping[int, Sequence[str]] | None = None, title: str = "Decision tree",
              max_depth: int | None = None, impurity_label: str | None = None, fontsize: float = 8.5,
              wrap: int = 30, max_categories: int = 4) -> Figure:
    """Draw a tree top-down: each split shows its condition (left branch = condition true, "yes"),
    each node its majority class with that class's share and the training rows that reached it
    (when counts are known). Leaves are coloured by predicted class, paler when less pure.

    ``max_depth`` draws only the top levels and summarises deeper subtrees in one box;
    ``impurity_label`` ("gini" or "entropy") adds each split node's impurity under that name; conditions
    longer than ``wrap`` characters are wrapped onto several lines, and category sets longer than
    ``max_categories`` are shortened.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    placed = _layout(root, max_depth)
    width = max(x for _, x, _, _ in placed) + 1
    levels = max(depth for _, _, depth, _ in placed) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 1.75 * width), max(3.0, 1.45 * levels)))
    known = [len(n.counts) for n, *_ in placed if n.counts is not None]
    known += [int(n.prediction) + 1 for n, *_ in placed if float(n.prediction).is_integer()]
    n_classes = len(class_names) if class_names is not None else max(known or [1])
    palette = sns.color_palette("colorblind", max(n_classes, 1))
    position = {id(node): (x, -depth) for node, x, depth, _ in placed}

    for node, x, depth, truncated in placed:
        if node.is_leaf or truncated:
            continue
        for child, label in zip(node.children, ("yes", "no"), strict=True):
            cx, cy = position[id(child)]
            ax.plot([x, cx], [-depth, cy], color="0.55", linewidth=1, zorder=1)
            ax.text((x + cx) / 2, (-depth + cy) / 2, label, ha="center", va="center", fontsize=fontsize - 1,
                    color="0.35", zorder=3, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})

    for node, x, depth, truncated in placed:
        predicted = int(node.prediction) if float(node.prediction).is_integer() else 0
        colour = palette[predicted % len(palette)]
        purity = _purity(node)
        leafish = node.is_leaf or truncated
        face = (*colour, 0.15 + 0.65 * (0.8 if purity is None else purity)) if leafish else (1, 1, 1, 1)
        text = _node_text(node, truncated, feature_names, class_names, categories, impurity_label, wrap,
                          max_categories)
        ax.text(x, -depth, text,
                ha="center", va="center", fontsize=fontsize, zorder=4,
                bbox={"boxstyle": "round,pad=0.4", "fc": face, "ec": colour if leafish else "0.4", "lw": 1})

    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-(levels - 1) - 0.5, 0.5)
    ax.axis("off")
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Forests: a forest's probability is the average of its trees' probabilities
# ---------------------------------------------------------------------------------------------


def per_tree_probabilities(forest: Any, frame: DataFrame, positive_class: int = 1,
                           batch_size: int = 25) -> np.ndarray:
    """The probability of ``positive_class`` from every tree of a fitted ``RandomForestClassificationModel``
    for every row of ``frame``: an array of shape (rows, trees).

    Spark's forest probability is the mean of its trees' probabilities, so
    ``per_tree_probabilities(forest, frame)[:, :k].mean(axis=1)`` is what a forest of the first ``k``
    trees predicts: one fitted forest gives the whole "number of trees" curve. Cache ``frame`` first:
    each batch of trees is one Spark job over it, and the rows must come back in the same order.
    """
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    features = forest.getFeaturesCol()
    base = frame.select(features)
    trees = forest.trees
    blocks: list[np.ndarray] = []
    for start in range(0, len(trees), batch_size):
        scored, names = base, []
        for index, tree in enumerate(trees[start:start + batch_size], start=start):
            name = f"_tree_{index}_probability"
            # Only the probability column: no raw prediction, no class, no leaf index.
            tree.setFeaturesCol(features).setRawPredictionCol("").setPredictionCol("").setProbabilityCol(name)
            scored = tree.transform(scored)
            names.append(name)
        block = scored.select(*[vector_to_array(F.col(n))[positive_class].alias(n) for n in names]).toPandas()
        blocks.append(block.to_numpy(dtype=float))
    return np.hstack(blocks) if blocks else np.empty((0, 0))
