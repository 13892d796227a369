from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from helpers import boundaries

pytestmark = pytest.mark.usefixtures("plot_style")


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(-1, 0.7, size=(40, 2)), rng.normal(1, 0.7, size=(40, 2))] * [1.0, 100.0]
    y = np.r_[np.zeros(40, dtype=int), np.ones(40, dtype=int)]
    return X, y


def test_grid_covers_the_points_with_padding(points) -> None:
    X, _ = points
    gx, gy = boundaries.grid_over(X, resolution=50, padding=0.1)
    assert gx.shape == gy.shape == (50, 50)
    assert gx.min() < X[:, 0].min() and gx.max() > X[:, 0].max()
    assert gy.min() < X[:, 1].min() and gy.max() > X[:, 1].max()
    with pytest.raises(ValueError, match="n × 2"):
        boundaries.grid_over(np.zeros((5, 3)))


def test_scores_use_the_decision_function_when_there_is_one(points) -> None:
    X, y = points
    svc = SVC(kernel="linear").fit(X, y)
    values, level, margins = boundaries.scores(svc, X[:3])
    np.testing.assert_allclose(values, svc.decision_function(X[:3]))
    assert (level, margins) == (0.0, True)

    class ProbabilityOnly:
        def predict_proba(self, Z):
            return np.c_[1 - Z[:, 0] / 10, Z[:, 0] / 10]

    values, level, margins = boundaries.scores(ProbabilityOnly(), np.array([[1.0, 0.0], [5.0, 0.0]]))
    np.testing.assert_allclose(values, [0.1, 0.5])
    assert (level, margins) == (0.5, False)


def test_support_indices_look_inside_a_pipeline(points) -> None:
    X, y = points
    pipeline = make_pipeline(StandardScaler(), SVC(C=1.0)).fit(X, y)
    np.testing.assert_array_equal(boundaries.support_indices(pipeline), pipeline[-1].support_)
    assert boundaries.support_indices(LogisticRegression().fit(X, y)) is None


def test_one_panel_per_model_with_support_vectors_counted(points) -> None:
    X, y = points
    models = {
        "C=0.1": make_pipeline(StandardScaler(), SVC(C=0.1)).fit(X, y),
        "C=10": make_pipeline(StandardScaler(), SVC(C=10)).fit(X, y),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        "linear": SVC(kernel="linear").fit(X, y),
    }
    fig = boundaries.decision_boundaries(models, X, y, ("a", "b"), class_names=("no", "yes"), ncols=3,
                                         resolution=40, title="test")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4 and len(fig.axes) == 6
    titles = [ax.get_title() for ax in visible]
    assert titles[0].startswith("C=0.1\n") and titles[0].endswith("support vectors")
    assert titles[2] == "logistic"
    assert fig._suptitle.get_text() == "test"
    assert visible[0].get_ylabel() == "b" and visible[-1].get_xlabel() == "a"


def test_margins_can_be_left_out(points) -> None:
    from matplotlib.contour import ContourSet

    X, y = points
    model = {"svm": make_pipeline(StandardScaler(), SVC()).fit(X, y)}
    with_margins = boundaries.decision_boundaries(model, X, y, ("a", "b"), resolution=30)
    without = boundaries.decision_boundaries(model, X, y, ("a", "b"), resolution=30, show_margins=False)

    def line_levels(fig):
        return sorted(level for c in fig.axes[0].collections if isinstance(c, ContourSet) and not c.filled
                      for level in c.levels)

    assert line_levels(with_margins) == [-1.0, 0.0, 1.0]
    assert line_levels(without) == [0.0]


def test_bad_inputs_are_explained(points) -> None:
    X, y = points
    with pytest.raises(ValueError, match="at least one"):
        boundaries.decision_boundaries({}, X, y, ("a", "b"))
    with pytest.raises(ValueError, match="two features"):
        boundaries.decision_boundaries({"m": SVC().fit(X, y)}, X, y, ("a",))
