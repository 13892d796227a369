"""Where the curriculum keeps things: the project root, the datasets and one ignored work folder.

Everything a notebook writes at run time (Spark warehouse, checkpoints, MLflow store, runner output)
goes below ``.work/`` in the project root, so a learner can delete one folder to start afresh.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "CURRICULUM_HOME"
WORK_ENV = "CURRICULUM_WORK_DIR"
_MARKER = Path("datasets") / "manifest.json"


def project_root() -> Path:
    """The repository root: ``$CURRICULUM_HOME``, else the checkout this package lives in, else
    the nearest folder above the current directory that holds ``datasets/manifest.json``."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    package_parent = Path(__file__).resolve().parents[1]
    if (package_parent / _MARKER).exists():
        return package_parent
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / _MARKER).exists():
            return folder
    raise FileNotFoundError(
        "Cannot find the curriculum's root folder (the one with datasets/manifest.json). "
        f"Run from inside the repository or set {ROOT_ENV} to its path."
    )


def work_dir(*parts: str) -> Path:
    """A folder below the ignored work folder (``.work/`` or ``$CURRICULUM_WORK_DIR``), created on demand."""
    base = Path(os.environ[WORK_ENV]) if os.environ.get(WORK_ENV) else project_root() / ".work"
    folder = base.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def datasets_dir() -> Path:
    return project_root() / "datasets"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def display_path(path: Path | str) -> str:
    """A path as a learner should see it in a notebook: relative to the project root, so committed
    outputs never show one machine's folders."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(project_root()).as_posix()
    except ValueError:
        return resolved.name
