"""The checks of labs 12–15 (helpers/labs/deep.py, forecasting.py, text.py, recommend.py).

Each check is fed a correct answer (it passes) and the typical wrong answers (it fails with the specific feedback,
whose words are asserted). The committed lab notebooks themselves are covered by the generic structural tests in
tests/test_labs.py.
"""

from __future__ import annotations

import pytest

from tests.labs_support import fails_with

# MLflow's SQLite store triggers a SQLAlchemy deprecation notice on first use: about MLflow, not these tests.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


# --------------------------------------------------------------------------------------------------------------
# Lab 12 · deep learning


@pytest.fixture(scope="module")
def digit_arrays(spark):
    import numpy as np

    from helpers.labs import deep as lab

    train, valid, test = lab.digit_frames(spark)

    def arrays(frame):
        return (frame[lab.PIXELS].to_numpy(dtype=np.float32) / np.float32(16.0),
                frame["label"].to_numpy(dtype=np.int64))

    return arrays(train), arrays(test)


def _net(seed: int = 42):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _functional_net(seed: int = 42, scale_inside: bool = False):
    """A network written as chapter 12 writes its own: layers in __init__, the activation as F.relu in forward,
    and (``scale_inside``) the pixels scaled there too, so it takes raw counts."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.out = nn.Linear(64, 64), nn.Linear(64, 10)

        def forward(self, pixels):
            return self.out(F.relu(self.hidden(pixels / 16.0 if scale_inside else pixels)))

    torch.manual_seed(seed)
    return Net()


def _train(net, x, y):
    """The lab's training loop, as its solution writes it (10 epochs of SGD with momentum)."""
    import torch
    from torch.nn import functional as F

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(1, 11):
        order = torch.randperm(len(yt), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(yt), 64):
            batch = order[start:start + 64]
            loss = F.cross_entropy(net(xt[batch]), yt[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


@pytest.fixture(scope="module")
def trained_net(digit_arrays):
    (x, y), _ = digit_arrays
    return _train(_net(), x, y)


def test_deep_arrays(digit_arrays) -> None:
    import numpy as np

    from helpers.labs import deep as lab

    (x, y), _ = digit_arrays
    assert lab.test_arrays(x, y).passed
    fails_with(lab.test_arrays(x.astype(np.float64), y), "float64", "float32")
    fails_with(lab.test_arrays(x * 16, y), "dividing by 16")
    fails_with(lab.test_arrays(np.hstack([x, y[:, None].astype(np.float32)]), y), "65 columns", "label")
    fails_with(lab.test_arrays(x, y.astype(np.float32)), "int64")
    fails_with(lab.test_arrays(x[::-1].copy(), y), "order")
    fails_with(lab.test_arrays(list(x), y), "NumPy arrays")


def test_deep_network() -> None:
    from torch import nn

    from helpers.labs import deep as lab

    assert lab.test_network(_net()).passed
    # The activation as a call in forward, as chapter 12's own network writes it, passes too.
    assert lab.test_network(_functional_net()).passed
    assert lab.test_network(_functional_net(scale_inside=True)).passed
    fails_with(lab.test_network(nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 10))), "linear", "nn.ReLU")
    fails_with(lab.test_network(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=1))),
               "softmax")
    fails_with(lab.test_network(nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 1))), "10 outputs")
    fails_with(lab.test_network(nn.Sequential(nn.Linear(64, 1000), nn.ReLU(), nn.Linear(1000, 10))),
               "keep the network small")
    fails_with(lab.test_network("net"), "nn.Module")


def test_deep_training(trained_net, digit_arrays, monkeypatch) -> None:
    from helpers.labs import deep as lab

    (x, y), (x_test, _) = digit_arrays
    assert lab.test_training(trained_net, x_test).passed
    fails_with(lab.test_training(_net(), x_test), "barely moved", "optimiser.step()")
    fails_with(lab.test_training(trained_net, x_test[::-1].copy()), "test_pd's order")
    fails_with(lab.test_training(trained_net, x_test[:100]), "shape")
    # A network that scales its raw input itself is judged on raw pixels — never scaled a second time.
    raw_net = _train(_functional_net(scale_inside=True), x * 16, y)
    assert lab.test_training(raw_net, x_test * 16).passed
    fails_with(lab.test_training(raw_net, x_test), "scaled once")
    monkeypatch.setattr(lab, "ACCURACY_LIMIT", 0.999)
    fails_with(lab.test_training(trained_net, x_test), "below 0.999", "train longer")


def test_deep_accuracy(trained_net, digit_arrays) -> None:
    import torch

    from helpers.labs import deep as lab

    (x, y), (x_test, y_test) = digit_arrays
    with torch.no_grad():
        right = trained_net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test
        train_accuracy = float((trained_net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    accuracy, mistakes = float(right.mean()), int((~right).sum())
    assert lab.test_accuracy(trained_net, x_test, accuracy, mistakes).passed
    fails_with(lab.test_accuracy(trained_net, x_test, 100 * accuracy, mistakes), "percentage")
    if abs(train_accuracy - accuracy) > 1e-3:
        fails_with(lab.test_accuracy(trained_net, x_test, train_accuracy, mistakes), "TRAINING")
    fails_with(lab.test_accuracy(trained_net, x_test, accuracy - 0.01, mistakes), "classifies")
    fails_with(lab.test_accuracy(trained_net, x_test, accuracy, mistakes + 1), f"gets {mistakes} of")
    fails_with(lab.test_accuracy(trained_net, x_test, accuracy, float(mistakes)), "should be an int")
    fails_with(lab.test_accuracy(trained_net, list(x_test), accuracy, mistakes), "NumPy array")


# --------------------------------------------------------------------------------------------------------------
# Lab 13 · time series


@pytest.fixture(scope="module")
def leisure(spark):
    from pyspark.sql import functions as F

    from helpers import forecasting
    from helpers.labs import forecasting as lab

    return forecasting.monthly_series(lab.employment(spark).where(F.col("series_id") == lab.ONE_SERIES).toPandas())


def test_forecasting_holdout(leisure) -> None:
    from helpers.labs import forecasting as lab

    train, test = leisure[:"2018-09"], leisure["2018-10":]
    assert lab.test_holdout(train, test).passed
    shuffled = leisure.sample(frac=1.0, random_state=0)
    fails_with(lab.test_holdout(shuffled.iloc[12:], shuffled.iloc[:12]), "split by date")
    fails_with(lab.test_holdout(leisure[:"2018-08"], leisure["2018-09":"2019-08"]), "should be the 12 months")
    fails_with(lab.test_holdout(leisure[:"2018-09"], leisure["2018-10":"2019-06"]), "holds 9 months")
    fails_with(lab.test_holdout(leisure[:"2018-10"], leisure["2018-10":]), "share months")
    fails_with(lab.test_holdout(leisure[:"2018-09"].to_numpy(), test), "pandas Series")


def test_forecasting_seasonal_naive(leisure) -> None:
    import numpy as np

    from helpers.labs import forecasting as lab

    train, test = leisure[:"2018-09"], leisure["2018-10":]
    naive = train.to_numpy()[-12:]
    assert lab.test_seasonal_naive(naive).passed
    assert lab.test_seasonal_naive(list(naive)).passed
    fails_with(lab.test_seasonal_naive(np.full(12, train.iloc[-1])), "naive forecast", "same month")
    fails_with(lab.test_seasonal_naive(naive[::-1]), "reverse order")
    fails_with(lab.test_seasonal_naive(test.to_numpy()), "actual test values")
    fails_with(lab.test_seasonal_naive(train.to_numpy()[-13:-1]), "in order")
    fails_with(lab.test_seasonal_naive(naive[:6]), "holds 6 values")


def test_forecasting_mase(leisure) -> None:
    import numpy as np

    from helpers import forecasting
    from helpers.labs import forecasting as lab

    train, test = leisure[:"2018-09"], leisure["2018-10":]
    ets, _ = forecasting.ets_forecast(train, 12)
    error = float(np.mean(np.abs(test.to_numpy() - ets["mean"].to_numpy())))
    assert lab.test_mase(error / forecasting.seasonal_naive_scale(train), ets).passed
    assert lab.test_mase(error / forecasting.seasonal_naive_scale(train), ets["mean"].to_numpy()).passed
    # Another ETS implementation (statsmodels' Holt-Winters, estimated its own way) passes too, judged on its own
    # forecast.
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    other = ExponentialSmoothing(train, trend="add", seasonal="add", seasonal_periods=12).fit().forecast(12)
    other_mase = float(np.mean(np.abs(test.to_numpy() - other.to_numpy()))) / forecasting.seasonal_naive_scale(train)
    assert lab.test_mase(other_mase, other).passed
    naive_test = float(np.mean(np.abs(test.to_numpy() - train.to_numpy()[-12:])))
    fails_with(lab.test_mase(error / naive_test, ets), "TEST months", "seasonal_naive_scale(train)")
    fails_with(lab.test_mase(forecasting.mape(test, ets["mean"]), ets), "MAPE")
    fails_with(lab.test_mase(0.5, ets), "your forecast's MASE")
    fails_with(lab.test_mase("0.1", ets), "should be a number")
    fails_with(lab.test_mase(0.5, ets["mean"].to_numpy()[:6]), "holds 6 values")
    flat = np.full(12, train.iloc[-1])
    flat_mase = float(np.mean(np.abs(test.to_numpy() - flat))) / forecasting.seasonal_naive_scale(train)
    fails_with(lab.test_mase(flat_mase, flat), "above 0.8")


@pytest.fixture(scope="module")
def backtest(spark):
    from helpers.labs import forecasting as lab

    lab.employment(spark)  # the checks read the rows through the active session
    return lab._reference_backtest()


def test_forecasting_backtest(backtest) -> None:
    from helpers.labs import forecasting as lab

    assert lab.test_backtest(backtest).passed
    fails_with(lab.test_backtest(backtest.drop(columns=["ets_lower"])), "lacks", "ets_lower")
    last = backtest[backtest["cutoff"] == backtest["cutoff"].max()]
    fails_with(lab.test_backtest(last), "cut-offs are")
    fails_with(lab.test_backtest(backtest[backtest["h"] <= 6]), "12 forecasts per model")
    fails_with(lab.test_backtest(backtest.assign(scale=backtest["scale"] * 1.1)), "backtest_frame")
    fails_with(lab.test_backtest(backtest.assign(ets=backtest["snaive"])), "seasonal naive forecasts", "ets_forecast")
    fails_with(lab.test_backtest(backtest.assign(actual=backtest["snaive"])), "actual values")
    fails_with(lab.test_backtest(backtest.assign(ets=backtest["ets_upper"] + 1)), "outside their own interval")
    # ETS forecasts of another implementation (here: the reference's, nudged by 0.1%) pass: they are judged by
    # their accuracy, not compared with one implementation's numbers.
    nudged = backtest.assign(**{column: backtest[column] * 1.001 for column in ("ets", "ets_lower", "ets_upper")})
    assert lab.test_backtest(nudged).passed
    fails_with(lab.test_backtest(backtest[backtest["series_id"] != lab.ONE_SERIES]), "10 models")


def test_forecasting_coverage(backtest) -> None:
    from helpers import forecasting
    from helpers.labs import forecasting as lab

    share = forecasting.coverage(backtest["actual"], backtest["ets_lower"], backtest["ets_upper"])
    above = float((backtest["actual"] >= backtest["ets_lower"]).mean())
    assert lab.test_coverage(backtest, share).passed
    fails_with(lab.test_coverage(backtest, 100 * share), "percentage")
    if abs(above - share) > 1e-9:
        fails_with(lab.test_coverage(backtest, above), "AND below ets_upper")
    fails_with(lab.test_coverage(backtest, share - 0.05), "lie in")


# --------------------------------------------------------------------------------------------------------------
# Lab 14 · natural language processing


def _stop_words() -> list[str]:
    from pyspark.ml.feature import StopWordsRemover

    from helpers.labs import text as lab

    return [w for w in StopWordsRemover.loadDefaultStopWords("english")
            if w not in lab.SENTIMENT_WORDS and not w.endswith("n't")]


def _cleaner(stop_words: list[str], html: bool = True, pattern: str = "[^a-z']+"):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import RegexTokenizer, SQLTransformer, StopWordsRemover

    from helpers.labs.text import HTML_TAG

    clean = (f"SELECT *, regexp_replace(review, '{HTML_TAG}', ' ') AS text FROM __THIS__" if html
             else "SELECT *, review AS text FROM __THIS__")
    return Pipeline(stages=[
        SQLTransformer(statement=clean),
        RegexTokenizer(inputCol="text", outputCol="tokens", pattern=pattern, minTokenLength=2),
        StopWordsRemover(inputCol="tokens", outputCol="words", stopWords=stop_words),
    ])


def test_text_stop_words(spark) -> None:  # MLlib reads its stop-word lists through the JVM
    from pyspark.ml.feature import StopWordsRemover

    from helpers.labs import text as lab

    good = _stop_words()
    assert lab.test_stop_words(good).passed
    fails_with(lab.test_stop_words(StopWordsRemover.loadDefaultStopWords("english")), "still removes", "not")
    fails_with(lab.test_stop_words([*good, "didn't"]), "contractions")
    fails_with(lab.test_stop_words([]), "\"the\"")
    fails_with(lab.test_stop_words(["the", "and"]), "filler words")
    fails_with(lab.test_stop_words("the and"), "list of words")


def test_text_cleaning(spark) -> None:
    from pyspark.ml.feature import StopWordsRemover

    from helpers.labs import text as lab

    good = _stop_words()
    assert lab.test_cleaning(_cleaner(good)).passed
    fails_with(lab.test_cleaning(_cleaner(good, html=False)), "'br'", "HTML")
    fails_with(lab.test_cleaning(_cleaner(StopWordsRemover.loadDefaultStopWords("english"))), "'didn't'",
                "stop-word list")
    fails_with(lab.test_cleaning(_cleaner(good, pattern="\\s+")), "punctuation")
    fails_with(lab.test_cleaning(_cleaner([])), "filler words")
    fails_with(lab.test_cleaning("review"), "Pipeline")


@pytest.fixture(scope="module")
def review_models(spark):
    """(the lab's TF-IDF model, the same model of the reversed label, one without IDF)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import CountVectorizer, NGram, SQLTransformer
    from pyspark.sql import functions as F

    from helpers.labs import text as lab

    train = lab.review_sets(spark)[0].withColumn("other", 1.0 - F.col("label")).cache()
    cleaning = _cleaner(_stop_words()).getStages()

    def fit(label: str, idf: bool = True, iterations: int = 30):
        from pyspark.ml.feature import IDF

        weigh = [IDF(inputCol="tf", outputCol="features")] if idf else []
        counts = "tf" if idf else "features"
        return Pipeline(stages=[
            *cleaning, NGram(n=2, inputCol="words", outputCol="bigrams"),
            SQLTransformer(statement="SELECT *, concat(words, bigrams) AS terms FROM __THIS__"),
            CountVectorizer(inputCol="terms", outputCol=counts, minDF=3), *weigh,
            LogisticRegression(labelCol=label, regParam=0.1, standardization=False, maxIter=iterations),
        ]).fit(train)

    # the wrong models only need to exist, not to converge: a few iterations keep the test quick
    return fit("label"), fit("other", iterations=5), fit("label", idf=False, iterations=5)


def test_text_model(review_models, monkeypatch) -> None:
    from pyspark.ml.classification import LogisticRegression

    from helpers.labs import text as lab

    good, reversed_label, no_idf = review_models
    assert lab.test_model(good).passed
    fails_with(lab.test_model(reversed_label), "below 0.5", "label")
    fails_with(lab.test_model(no_idf), "no IDF stage")
    fails_with(lab.test_model(LogisticRegression()), "FITTED")
    monkeypatch.setattr(lab, "AUC_LIMIT", 0.99)
    fails_with(lab.test_model(good), "below 0.99", "NGram")


def test_text_most_negative(review_models) -> None:
    import numpy as np

    from helpers.labs import text as lab

    good = review_models[0]
    vocabulary, weights = good.stages[-3].vocabulary, good.stages[-1].coefficients.toArray()
    assert lab.test_most_negative(good, vocabulary[int(np.argmin(weights))]).passed
    fails_with(lab.test_most_negative(good, vocabulary[int(np.argmax(weights))]), "LARGEST")
    second = vocabulary[int(np.argsort(weights)[1])]
    fails_with(lab.test_most_negative(good, second), "another term's is lower")
    fails_with(lab.test_most_negative(good, "zzzz"), "not in the model's vocabulary")
    fails_with(lab.test_most_negative(good, 3), "should be a term")


def test_text_search(spark) -> None:
    import numpy as np

    from helpers.labs import text as lab

    corpus = lab.search_corpus(spark)
    model = lab.sentence_model()
    embeddings = model.encode(corpus["text"].tolist(), normalize_embeddings=True)
    similarities = embeddings @ model.encode([lab.QUERY], normalize_embeddings=True)[0]
    positions = np.argsort(-similarities, kind="stable")
    best = corpus["review_id"].iloc[positions[:3]].tolist()
    worst = corpus["review_id"].iloc[positions[::-1][:3]].tolist()
    assert lab.test_search(embeddings, best).passed
    # Cosine similarity ignores length: rows of other lengths that point the same way are just as right.
    assert lab.test_search(embeddings * np.linspace(0.5, 3.0, len(embeddings))[:, None], best).passed
    fails_with(lab.test_search(embeddings, best[::-1]), "wrong order")
    fails_with(lab.test_search(embeddings, worst), "LEAST similar")
    fails_with(lab.test_search(embeddings, list(positions[:3])), "review_id")
    fails_with(lab.test_search(embeddings[:100], best), "shape")
    fails_with(lab.test_search(embeddings[::-1], best), "in the same order")
    fails_with(lab.test_search(embeddings, best[:2]), "holds 2 ids")


# --------------------------------------------------------------------------------------------------------------
# Lab 15 · recommendation


@pytest.fixture(scope="module")
def ratings(spark):
    from helpers import recommend
    from helpers.labs import recommend as lab

    train, test = (frame.cache() for frame in lab.rating_sets(spark))
    return train, test, recommend.warm_and_cold(test, train)[0].cache()


def _als(rating: str = "rating", rank: int = 10, reg: float = 0.1, cold: str = "drop"):
    from pyspark.ml.recommendation import ALS

    return ALS(userCol="user_id", itemCol="movie_id", ratingCol=rating, rank=rank, regParam=reg, maxIter=10, seed=42,
               numUserBlocks=2, numItemBlocks=2, coldStartStrategy=cold)


def test_recommend_warm(ratings) -> None:
    from helpers.labs import recommend as lab

    train, test, warm = ratings
    assert lab.test_warm(warm).passed
    fails_with(lab.test_warm(test), "all", "test ratings are kept")
    fails_with(lab.test_warm(test.join(train.select("movie_id"), "movie_id")), "distinct", "left_semi")
    fails_with(lab.test_warm(warm.limit(100)), "expected")
    fails_with(lab.test_warm(warm.drop("rating")), "lacks")
    fails_with(lab.test_warm(warm.toPandas()), "Spark DataFrame")


def test_recommend_movie_effects(ratings) -> None:
    from pyspark.sql import functions as F

    from helpers.labs import recommend as lab

    train = ratings[0]
    mu = train.agg(F.avg("rating")).first()[0]
    by_movie = train.groupBy("movie_id")
    assert lab.test_movie_effects(by_movie.agg((F.sum(F.col("rating") - mu) / (F.count("*") + 10))
                                               .alias("b_item"))).passed
    fails_with(lab.test_movie_effects(by_movie.agg(F.avg(F.col("rating") - mu).alias("b_item"))), "n + 10")
    fails_with(lab.test_movie_effects(by_movie.agg(F.avg("rating").alias("b_item"))), "mean rating", "μ")
    fails_with(lab.test_movie_effects(by_movie.agg((F.sum(F.col("rating") - 3.5) / (F.count("*") + 10))
                                                    .alias("b_item"))), "ALL training ratings")
    fails_with(lab.test_movie_effects(by_movie.count()), "lacks", "b_item")


@pytest.fixture(scope="module")
def als_models(ratings):
    from pyspark.sql import functions as F

    from helpers import recommend

    train = ratings[0]
    residuals = recommend.fit_bias_model(train, 10).predict(train).withColumn("residual",
                                                                              F.col("rating") - F.col("baseline"))
    return _als().fit(train), _als("residual", 16, 0.3).fit(residuals), _als(cold="nan").fit(train)


def test_recommend_als(ratings, als_models) -> None:
    from pyspark.ml.evaluation import RegressionEvaluator

    from helpers.labs import recommend as lab

    _, test, _ = ratings
    plain, residual, with_nan = als_models
    rmse = RegressionEvaluator(labelCol="rating").evaluate(plain.transform(test))
    verdict = lab.test_als(plain, rmse)
    assert verdict.passed
    assert "worse than the movie + user effects" in str(verdict)  # the verdict follows the learner's RMSE
    nan_rmse = RegressionEvaluator(labelCol="rating").evaluate(with_nan.transform(test))
    fails_with(lab.test_als(with_nan, nan_rmse), "NaN", "coldStartStrategy=\"drop\"")
    fails_with(lab.test_als(plain, rmse + 0.05), "scores")
    fails_with(lab.test_als(residual, RegressionEvaluator(labelCol="rating").evaluate(residual.transform(test))),
                "above 1.1")
    fails_with(lab.test_als(lab.ALS_RMSE_LIMIT, rmse), "FITTED")


def test_recommend_residual_model(ratings, als_models, monkeypatch) -> None:
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.sql import functions as F

    from helpers import recommend
    from helpers.labs import recommend as lab

    train, _, warm = ratings
    plain, residual, _ = als_models
    scored = residual.transform(recommend.fit_bias_model(train, 10).predict(warm))
    combined = RegressionEvaluator(labelCol="rating", predictionCol="combined").evaluate(
        scored.withColumn("combined", F.col("prediction") + F.col("baseline")))
    alone = RegressionEvaluator(labelCol="rating").evaluate(scored)
    assert lab.test_residual_model(residual, combined).passed
    fails_with(lab.test_residual_model(residual, alone), "add the baseline back")
    fails_with(lab.test_residual_model(plain, combined), "predicts ratings", "residual")
    fails_with(lab.test_residual_model(residual, combined + 0.01), "baseline + prediction scores")
    monkeypatch.setattr(lab, "RESIDUAL_SLACK", -0.5)
    fails_with(lab.test_residual_model(residual, combined), "worse than the effects alone", "regParam 0.3")
