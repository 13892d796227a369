"""The committed datasets are reproducible and match ``datasets/manifest.json``.

``datasets/`` is not a Python package, so the build script is imported by path.
The full rebuild runs once per test session (a few seconds; no Spark needed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"
MANIFEST: dict[str, Any] = json.loads((DATASETS_DIR / "manifest.json").read_text("utf-8"))
DATASET_NAMES = sorted(name for name in MANIFEST if name != "raw")
RAW_NAMES = sorted(MANIFEST["raw"])
REBUILD_HINT = (
    f"(pyarrow {pa.__version__}; if a data package or pyarrow was upgraded on purpose, "
    "run `python datasets/build_datasets.py` and commit the new files + manifest.json)"
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _count_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    lines = path.read_text("utf-8").splitlines()
    if fmt == "csv":  # header line + one line per row (no embedded newlines in these files)
        return len(lines) - 1
    if fmt == "jsonl":
        return sum(1 for line in lines if line.strip())
    raise ValueError(f"unknown format {fmt!r}")


@pytest.fixture(scope="module")
def build_module() -> ModuleType:
    path = DATASETS_DIR / "build_datasets.py"
    spec = importlib.util.spec_from_file_location("build_datasets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rebuilt(build_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("datasets")
    return {"dir": out, "manifest": build_module.build_all(out)}


def test_manifest_lists_every_registered_dataset(build_module: ModuleType) -> None:
    assert DATASET_NAMES == sorted(build_module.REGISTRY)
    assert RAW_NAMES == sorted(build_module.RAW_REGISTRY)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_rebuild_is_byte_identical(rebuilt: dict, name: str) -> None:
    entry = MANIFEST[name]
    built = rebuilt["dir"] / entry["file"]
    assert _sha256(built) == entry["sha256"], f"{entry['file']} differs {REBUILD_HINT}"
    assert rebuilt["manifest"][name] == entry, f"manifest entry for {name} differs"


@pytest.mark.parametrize("name", RAW_NAMES)
def test_raw_rebuild_is_byte_identical(rebuilt: dict, name: str) -> None:
    entry = MANIFEST["raw"][name]
    built = rebuilt["dir"] / entry["file"]
    assert _sha256(built) == entry["sha256"], f"{entry['file']} differs {REBUILD_HINT}"
    assert rebuilt["manifest"]["raw"][name] == entry


def test_rebuilt_manifest_file_is_identical(rebuilt: dict) -> None:
    committed = (DATASETS_DIR / "manifest.json").read_bytes()
    assert (rebuilt["dir"] / "manifest.json").read_bytes() == committed


@pytest.mark.parametrize(
    "entry",
    [MANIFEST[n] for n in DATASET_NAMES] + [MANIFEST["raw"][n] for n in RAW_NAMES],
    ids=DATASET_NAMES + RAW_NAMES,
)
def test_committed_file_matches_manifest(entry: dict) -> None:
    path = DATASETS_DIR / entry["file"]
    assert path.is_file(), f"{entry['file']} is listed in manifest.json but missing"
    assert _sha256(path) == entry["sha256"], f"{entry['file']}: sha256 differs from manifest"
    assert _count_rows(path, entry["format"]) == entry["rows"]


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_manifest_schema_matches_parquet(name: str) -> None:
    entry = MANIFEST[name]
    schema = pq.read_schema(DATASETS_DIR / entry["file"])
    actual = [{"name": f.name, "type": str(f.type)} for f in schema]
    assert actual == entry["columns"]
    assert set(entry["sample_by"]) <= set(schema.names), "sample_by names unknown columns"
    assert 0 < entry["default_fraction"] <= 1
    assert schema.metadata is None or b"pandas" not in schema.metadata
    for field in schema:  # conventions: no dictionary/categorical or tz-aware columns
        assert not pa.types.is_dictionary(field.type), field.name
        if pa.types.is_timestamp(field.type):
            assert field.type.tz is None and field.type.unit == "us", field.name


def test_check_detects_a_changed_file(build_module: ModuleType, rebuilt: dict) -> None:
    tampered = json.loads(json.dumps(MANIFEST))
    tampered["wine"]["sha256"] = "0" * 64
    problems = build_module.compare(tampered, rebuilt["manifest"])
    assert len(problems) == 1 and problems[0].startswith("wine.parquet")
