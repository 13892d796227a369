from __future__ import annotations

import numpy as np
import pytest

from helpers import recommend

# user, movie, rating: user 1 likes movie 10, everyone dislikes movie 30
RATINGS = [(1, 10, 5.0), (1, 20, 3.0), (1, 30, 1.0), (2, 10, 4.0), (2, 30, 2.0), (3, 20, 4.0), (3, 30, 1.0)]


@pytest.fixture(scope="module")
def ratings(spark):
    return spark.createDataFrame(RATINGS, "user_id long, movie_id long, rating double")


def test_bias_model_matches_the_formulas(ratings) -> None:
    model = recommend.fit_bias_model(ratings, reg=1.0)
    mean = sum(r for *_, r in RATINGS) / len(RATINGS)
    assert model.mean == pytest.approx(mean)
    items = {row.movie_id: row.b_item for row in model.items.collect()}
    assert items[10] == pytest.approx((5 - mean + 4 - mean) / (2 + 1))
    users = {row.user_id: row.b_user for row in model.users.collect()}
    expected_user_1 = sum(r - mean - items[m] for u, m, r in RATINGS if u == 1) / (3 + 1)
    assert users[1] == pytest.approx(expected_user_1)


def test_bias_model_falls_back_for_unknown_users_and_items(ratings, spark) -> None:
    model = recommend.fit_bias_model(ratings, reg=0.0)
    new = spark.createDataFrame([(9, 10), (1, 99), (9, 99)], "user_id long, movie_id long")
    predicted = model.predict(new).collect()
    got = {(row.user_id, row.movie_id): row.baseline for row in predicted}
    counts = {(row.user_id, row.movie_id): row.n_item for row in predicted}
    assert counts == {(9, 10): 2, (1, 99): 0, (9, 99): 0}
    items = {row.movie_id: row.b_item for row in model.items.collect()}
    users = {row.user_id: row.b_user for row in model.users.collect()}
    assert got[(9, 10)] == pytest.approx(model.mean + items[10])
    assert got[(1, 99)] == pytest.approx(model.mean + users[1])
    assert got[(9, 99)] == pytest.approx(model.mean)


def test_bias_model_rejects_a_negative_penalty(ratings) -> None:
    with pytest.raises(ValueError, match="reg"):
        recommend.fit_bias_model(ratings, reg=-1.0)


def test_top_k_unseen_skips_seen_items_and_breaks_ties_by_id() -> None:
    import pandas as pd

    scores = np.array([[0.5, 0.9, 0.9, 0.1], [1.0, 0.2, 0.3, 0.4]])
    seen = pd.DataFrame({"user_id": [1, 2, 7], "movie_id": [20, 10, 10]})  # user 7 is not scored: ignored
    got = recommend.top_k_unseen(scores, np.array([1, 2]), np.array([10, 20, 30, 40]), seen, k=2)
    assert got["user_id"].tolist() == [1, 2]
    assert got["prediction"].tolist() == [[30.0, 10.0], [40.0, 30.0]]


def test_top_k_unseen_broadcasts_one_score_per_item_and_never_fills_with_seen() -> None:
    import pandas as pd

    seen = pd.DataFrame({"user_id": [1, 1], "movie_id": [10, 20]})
    one_per_item = np.array([3.0, 2.0, 1.0])
    got = recommend.top_k_unseen(one_per_item, np.array([1, 2]), np.array([10, 20, 30]), seen, k=2)
    assert got["prediction"].tolist() == [[30.0], [10.0, 20.0]]
    with pytest.raises(ValueError, match="sorted"):
        recommend.top_k_unseen(np.zeros(2), np.array([2, 1]), np.array([10, 20]), seen, k=1)
    with pytest.raises(ValueError, match="k must"):
        recommend.top_k_unseen(np.zeros(2), np.array([1, 2]), np.array([10, 20]), seen, k=0)


def test_factor_rows_follow_the_requested_order_and_reject_unknown_ids() -> None:
    ids, matrix = np.array([3, 5, 9]), np.array([[3.0], [5.0], [9.0]])
    assert recommend.factor_rows(ids, matrix, [9, 3]).ravel().tolist() == [9.0, 3.0]
    with pytest.raises(KeyError, match="4"):
        recommend.factor_rows(ids, matrix, [3, 4])


def test_relevant_items_keep_good_ratings_only(ratings) -> None:
    got = {row.user_id: row.label for row in recommend.relevant_items(ratings, min_rating=4.0).collect()}
    assert got == {1: [10.0], 2: [10.0], 3: [20.0]}


def test_ranking_metrics_count_a_missing_list_as_a_miss(spark) -> None:
    relevant = spark.createDataFrame([(1, [10.0, 20.0]), (2, [30.0])], "user_id long, label array<double>")
    top = spark.createDataFrame([(1, [10.0, 99.0])], "user_id long, prediction array<double>")
    metrics = recommend.ranking_metrics(top, relevant, k=2, metrics=("precisionAtK", "recallAtK"))
    # user 1: one hit in two slots (precision 0.5, recall 0.5); user 2 has no list: 0 and 0
    assert metrics == {"precisionAtK": 0.25, "recallAtK": 0.25}
    with pytest.raises(ValueError, match="Unknown ranking metric"):
        recommend.ranking_metrics(top, relevant, k=2, metrics=("accuracy",))


@pytest.mark.parametrize("implicit", [False, True])
def test_fold_in_reproduces_mllib_user_factors(spark, implicit: bool) -> None:
    """MLlib's last half-step solves each user's vector with the item vectors fixed, so folding an
    existing user back in must give the vector the model learned for that user."""
    from pyspark.ml.recommendation import ALS

    rng = np.random.default_rng(0)
    rows = [(u, i, float(rng.integers(1, 6))) for u in range(20) for i in range(15) if rng.random() < 0.5]
    frame = spark.createDataFrame(rows, "user_id long, movie_id long, rating double")
    reg, alpha = 0.1, 2.0
    model = ALS(userCol="user_id", itemCol="movie_id", rank=3, maxIter=5, regParam=reg, seed=1,
                implicitPrefs=implicit, alpha=alpha, numUserBlocks=1, numItemBlocks=1).fit(frame)
    item_ids, items = recommend.factor_matrix(model.itemFactors)
    user_ids, users = recommend.factor_matrix(model.userFactors)
    mine = [(i, r) for u, i, r in rows if u == 7]
    rated = items[np.searchsorted(item_ids, [i for i, _ in mine])]
    folded = recommend.fold_in(rated, np.array([r for _, r in mine]), reg, implicit=implicit, alpha=alpha,
                               all_item_factors=items)
    assert folded == pytest.approx(users[np.flatnonzero(user_ids == 7)[0]], abs=1e-4)


def test_fold_in_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        recommend.fold_in(np.zeros((0, 2)), np.zeros(0), 0.1)
    with pytest.raises(ValueError, match="must be"):
        recommend.fold_in(np.zeros((2, 2)), np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="all_item_factors"):
        recommend.fold_in(np.ones((1, 2)), np.ones(1), 0.1, implicit=True)


def test_fold_in_shrinks_with_a_larger_penalty() -> None:
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    small, large = (recommend.fold_in(y, np.array([2.0, 1.0]), reg) for reg in (0.01, 10.0))
    assert small == pytest.approx([2.0 / 1.02, 1.0 / 1.02])
    assert np.linalg.norm(large) < np.linalg.norm(small)


def test_cosine_neighbours() -> None:
    ids = np.array([5, 6, 7, 8])
    matrix = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    got = recommend.cosine_neighbours(ids, matrix, target=5, k=2)
    assert list(got.index) == [6, 7]
    assert got.iloc[0] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    with pytest.raises(KeyError):
        recommend.cosine_neighbours(ids, matrix, target=99)


def test_warm_and_cold_split_on_known_users_and_items(ratings, spark) -> None:
    frame = spark.createDataFrame([(1, 10, 4.0), (1, 99, 3.0), (9, 10, 2.0)],
                                  "user_id long, movie_id long, rating double")
    warm, cold = recommend.warm_and_cold(frame, ratings)
    assert [(r.user_id, r.movie_id) for r in warm.collect()] == [(1, 10)]
    assert sorted((r.user_id, r.movie_id) for r in cold.collect()) == [(1, 99), (9, 10)]
