from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import text
from tests.conftest import run_python

# --- nearest neighbours ---------------------------------------------------------------------


def test_most_similar_ranks_by_cosine_not_by_length() -> None:
    corpus = np.array([[1.0, 0.0], [10.0, 1.0], [0.0, 5.0], [-1.0, 0.0]])
    indices, scores = text.most_similar(np.array([2.0, 0.0]), corpus, k=3)
    # Row 0 points exactly the same way (cosine 1) although row 1 is far longer.
    assert indices.tolist() == [0, 1, 2]
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(10 / np.sqrt(101))
    assert scores[2] == pytest.approx(0.0)


def test_most_similar_handles_several_queries_ties_and_zero_rows() -> None:
    corpus = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [1.0, 0.0]])
    indices, scores = text.most_similar(np.array([[0.0, 1.0], [1.0, 0.0]]), corpus, k=2)
    assert indices.shape == scores.shape == (2, 2)
    assert indices[0].tolist() == [1, 2]  # a tie keeps the lower index first
    assert indices[1].tolist() == [3, 0]  # a zero row has similarity 0, not NaN
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("k", [0, 5])
def test_most_similar_rejects_impossible_k(k: int) -> None:
    with pytest.raises(ValueError, match="k must be"):
        text.most_similar(np.ones(3), np.ones((4, 3)), k=k)


def test_most_similar_rejects_mismatched_dimensions() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        text.most_similar(np.ones(3), np.ones((4, 2)))


# --- top terms ------------------------------------------------------------------------------


def test_top_terms_orders_and_splits_by_sign() -> None:
    vocabulary = ["ok", "awful", "the", "great", "meh", "good"]
    terms = text.top_terms([0.5, -2.0, 0.0, 3.0, -0.1, 1.0], vocabulary, n=2)
    assert terms["term"].tolist() == ["great", "good", "meh", "awful"]
    assert terms["direction"].tolist() == ["positive", "positive", "negative", "negative"]
    assert "the" not in terms["term"].tolist()  # a zero weight is neither


def test_top_terms_checks_lengths() -> None:
    with pytest.raises(ValueError, match="coefficients"):
        text.top_terms([1.0, 2.0], ["one"])


# --- the model, offline ---------------------------------------------------------------------

LOAD_OFFLINE = """
import json, os, sys
from helpers import text
vectors = text.embed(["A delicious coffee.", "Tasty coffee, I love it.", "The box arrived crushed."])
predict = text.make_embed_fn(batch_size=2)()
texts = ["A delicious coffee.", None, "The box arrived crushed."]
batch = predict(__import__("numpy").array(texts, dtype=object))
print(json.dumps({
    "shape": list(vectors.shape), "dtype": str(vectors.dtype),
    "norms": [float(x) for x in (vectors ** 2).sum(axis=1)],
    "similar": float(vectors[0] @ vectors[1]), "unrelated": float(vectors[0] @ vectors[2]),
    "batch_shape": list(batch.shape), "same_as_embed": bool(abs(batch[0] - vectors[0]).max() < 1e-5),
    "env": {k: os.environ.get(k)
            for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")},
    "hub_offline": __import__("huggingface_hub").constants.HF_HUB_OFFLINE,
}))
"""


@pytest.fixture(scope="module")
def offline_run() -> dict:
    """Load and use the model in a fresh interpreter whose Hugging Face endpoint is unreachable and whose
    offline switches are unset: it must work from the package's files alone, and print nothing else."""
    result = run_python(LOAD_OFFLINE, env={"HF_ENDPOINT": "http://127.0.0.1:9"},
                        remove=("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
                                "HF_HUB_DISABLE_PROGRESS_BARS"))
    assert result.returncode == 0, result.stderr[-3000:]
    return {"report": json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}


def test_embeddings_are_unit_length_384_floats(offline_run: dict) -> None:
    report = offline_run["report"]
    assert report["shape"] == [3, text.EMBEDDING_DIM]
    assert report["dtype"] == "float32"
    assert report["norms"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


def test_embeddings_put_similar_meanings_closer(offline_run: dict) -> None:
    report = offline_run["report"]
    assert report["similar"] > report["unrelated"] + 0.2


def test_predict_fn_matches_embed_and_survives_nulls(offline_run: dict) -> None:
    report = offline_run["report"]
    assert report["batch_shape"] == [3, text.EMBEDDING_DIM]
    assert report["same_as_embed"]


def test_loader_sets_the_offline_switches_before_loading(offline_run: dict) -> None:
    report = offline_run["report"]
    assert report["env"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                             "TOKENIZERS_PARALLELISM": "false"}
    assert report["hub_offline"] is True


def test_loading_prints_no_progress_bars_or_warnings(offline_run: dict) -> None:
    assert offline_run["stderr"].strip() == ""


def test_loader_rejects_a_useless_sequence_length() -> None:
    with pytest.raises(ValueError, match="max_seq_length"):
        text.load_sentence_model(max_seq_length=0)


# --- the Spark UDF --------------------------------------------------------------------------


def test_embedding_udf_rejects_a_useless_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        text.embedding_udf(batch_size=0)


def test_embedding_udf_embeds_a_column_in_the_executors(spark) -> None:
    from pyspark.sql import functions as F

    embed = text.embedding_udf(batch_size=2)
    frame = spark.createDataFrame([(i, s) for i, s in enumerate(["Great tea.", "Awful tea.", "Good tea!"])],
                                  "id int, review string")
    rows = frame.withColumn("v", embed("review")).orderBy("id").select("v", F.size("v").alias("n")).collect()
    assert [row.n for row in rows] == [text.EMBEDDING_DIM] * 3
    vectors = np.array([row.v for row in rows])
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * 3, abs=1e-4)
