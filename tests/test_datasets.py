"""The dataset loader: every kind of bad input gets a clear error; good input loads at both scales."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import datasets


def _write_dataset(
    root: Path, name: str, table: pa.Table, fraction: float = 0.5, sample_by: list[str] | None = None
) -> Path:
    folder = root / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    pq.write_table(table, path)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"raw": {}}
    manifest[name] = {
        "file": path.name,
        "rows": table.num_rows,
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "default_fraction": fraction,
        **({"sample_by": sample_by} if sample_by else {}),
    }
    manifest_path.write_text(json.dumps(manifest))
    return path


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CURRICULUM_HOME", str(tmp_path))
    monkeypatch.delenv("CURRICULUM_DATA", raising=False)
    table = pa.table({"id": pa.array(range(2000), pa.int64()), "city": pa.array([f"c{i % 7}" for i in range(2000)])})
    _write_dataset(tmp_path, "trips", table)
    series = pa.table(
        {"series": pa.array([f"s{i // 100}" for i in range(1000)]), "t": pa.array(range(1000), pa.int64())}
    )
    _write_dataset(tmp_path, "series", series, fraction=0.3, sample_by=["series"])
    return tmp_path


def test_unknown_name_suggests_the_closest(fake_root: Path) -> None:
    with pytest.raises(
        datasets.UnknownDatasetError,
        match=r"no dataset called 'trip'.*Did you mean 'trips'.*Known datasets: series, trips",
    ):
        datasets.dataset("trip")


def test_missing_file_says_how_to_restore_it(fake_root: Path) -> None:
    (fake_root / "datasets" / "trips.parquet").unlink()
    with pytest.raises(
        datasets.DatasetMissingError,
        match=r"datasets/trips.parquet is missing.*git checkout -- datasets/trips.parquet.*make datasets",
    ):
        datasets.verify("trips")


def test_truncated_file_is_reported_as_corrupt(fake_root: Path) -> None:
    path = fake_root / "datasets" / "trips.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(datasets.DatasetCorruptError, match="not readable Parquet.*damaged or incomplete"):
        datasets.verify("trips")


def test_schema_mismatch_names_the_columns(fake_root: Path) -> None:
    path = fake_root / "datasets" / "trips.parquet"
    pq.write_table(pa.table({"id": pa.array([1.5]), "town": pa.array(["x"])}), path)
    with pytest.raises(datasets.DatasetSchemaError) as caught:
        datasets.verify("trips")
    message = str(caught.value)
    assert "missing columns city" in message
    assert "unexpected columns town" in message
    assert "id: expected int64, found double" in message


def test_same_schema_other_contents_fails_the_checksum(fake_root: Path) -> None:
    path = fake_root / "datasets" / "trips.parquet"
    pq.write_table(pa.table({"id": pa.array([7], pa.int64()), "city": pa.array(["x"])}), path)
    with pytest.raises(datasets.DatasetChecksumError, match="checksum differs"):
        datasets.verify("trips")


def test_missing_manifest_is_a_dataset_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("CURRICULUM_HOME", str(tmp_path))
    with pytest.raises(datasets.DatasetMissingError, match="manifest.json is missing"):
        datasets.catalog()


@pytest.mark.parametrize("loader", ["load_pandas", "load"])
def test_unknown_scale_lists_the_valid_ones(fake_root: Path, loader: str) -> None:
    """A typo in the parameters cell (or in papermill's -p scale) is refused before any data is read."""
    load = datasets.load_pandas if loader == "load_pandas" else lambda name, scale: datasets.load(name, None, scale)
    with pytest.raises(datasets.ScaleError) as caught:
        load("trips", scale="fulll")
    message = str(caught.value)
    assert message.startswith("scale must be one of 'default', 'full', not 'fulll'. Did you mean 'full'?")
    assert 'parameters cell (scale = "default")' in message
    assert "make run SCALE=full" in message
    assert isinstance(caught.value, ValueError)  # what callers caught before ScaleError existed
    with pytest.raises(datasets.ScaleError, match=r"not 'small'\. A notebook's scale"):  # nothing close: no guess
        load("trips", scale="small")


def test_pandas_default_scale_is_a_deterministic_sample(fake_root: Path) -> None:
    full = datasets.load_pandas("trips", scale="full")
    first = datasets.load_pandas("trips")
    again = datasets.load_pandas("trips")
    assert len(full) == 2000
    assert 800 < len(first) < 1200
    pd.testing.assert_frame_equal(first, again)


def test_sample_by_keeps_whole_groups(fake_root: Path) -> None:
    sample = datasets.load_pandas("series")
    assert set(sample.groupby("series").size()) == {100}
    assert 0 < sample["series"].nunique() < 10


def test_spark_load_samples_deterministically_and_whole_groups(fake_root: Path, spark) -> None:
    full = datasets.load("trips", spark, scale="full")
    assert full.count() == 2000
    sample_ids = [r.id for r in datasets.load("trips", spark).collect()]
    assert sample_ids == [r.id for r in datasets.load("trips", spark).repartition(3).orderBy("id").collect()]
    assert 800 < len(sample_ids) < 1200
    sizes = {r["count"] for r in datasets.load("series", spark).groupBy("series").count().collect()}
    assert sizes == {100}


def test_every_committed_dataset_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURRICULUM_HOME", raising=False)
    catalog = datasets.catalog()
    assert {"flights", "weather", "airlines", "airports", "planes"} <= set(catalog)
    for name in catalog:
        entry = datasets.verify(name)
        assert 0 < entry.default_fraction <= 1
        assert pq.read_metadata(entry.path).num_rows == entry.rows


def test_raw_landing_files_are_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURRICULUM_HOME", raising=False)
    assert datasets.raw_path("airlines.csv").read_text().splitlines()[0].lower().startswith("carrier")
    with pytest.raises(datasets.UnknownDatasetError, match="no raw file called 'nope.csv'"):
        datasets.raw_path("nope.csv")
    with pytest.raises(datasets.UnknownDatasetError, match=r"'planes.cvs'\. Did you mean 'planes.csv'"):
        datasets.raw_path("planes.cvs")


_LANDING = b"carrier,name\n9E,Endeavor Air Inc.\nAA,American Airlines Inc.\n"


@pytest.fixture
def landing_root(fake_root: Path) -> Path:
    """``fake_root`` with one raw landing file, ``datasets/raw/carriers.csv``, listed in the manifest."""
    (fake_root / "datasets" / "raw").mkdir()
    (fake_root / "datasets" / "raw" / "carriers.csv").write_bytes(_LANDING)
    manifest_path = fake_root / "datasets" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["raw"]["carriers.csv"] = {
        "file": "raw/carriers.csv",
        "format": "csv",
        "rows": 2,
        "sha256": hashlib.sha256(_LANDING).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest))
    return fake_root


@pytest.mark.parametrize("read", [datasets.raw_path, datasets.raw_uri], ids=["raw_path", "raw_uri"])
def test_missing_raw_landing_file_names_it_and_says_how_to_restore_it(landing_root: Path, read) -> None:
    assert str(read("carriers.csv")).endswith("datasets/raw/carriers.csv")  # present and intact: it is found
    (landing_root / "datasets" / "raw" / "carriers.csv").unlink()
    with pytest.raises(datasets.DatasetMissingError) as caught:
        read("carriers.csv")
    assert str(caught.value) == (
        "The raw landing file datasets/raw/carriers.csv is missing. Restore the committed file with "
        "`git checkout -- datasets/raw/carriers.csv`, or rebuild every dataset with `make datasets`."
    )


@pytest.mark.parametrize(
    ("damage", "found"),
    [
        (lambda data: data[: len(data) // 2], "holds 30 bytes that are not the committed ones"),
        (lambda data: bytes(255 - b for b in data), "holds 60 bytes that are not the committed ones"),
        (lambda data: data.replace(b"9E", b"XX"), "holds 60 bytes that are not the committed ones"),
        (lambda data: b"", "is empty (0 bytes)"),
    ],
    ids=["truncated", "garbage", "edited", "empty"],
)
def test_corrupt_raw_landing_file_names_it_and_says_how_to_restore_it(landing_root: Path, damage, found: str) -> None:
    path = landing_root / "datasets" / "raw" / "carriers.csv"
    path.write_bytes(damage(_LANDING))
    for read in (datasets.raw_path, datasets.raw_uri):  # raw_uri is what notebook 01 hands to spark.read
        with pytest.raises(datasets.DatasetChecksumError) as caught:
            read("carriers.csv")
        assert str(caught.value) == (
            f"The raw landing file datasets/raw/carriers.csv {found}: its checksum differs from the one in "
            "datasets/manifest.json, so it was edited, truncated or damaged. Restore the committed file with "
            "`git checkout -- datasets/raw/carriers.csv`, or rebuild every dataset with `make datasets`."
        )
