"""Shared fixtures: one Spark session for the whole test run (starting a JVM costs seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest

# Figures are drawn off-screen in tests (and closed after each one).
matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark() -> Iterator:
    from helpers.spark import spark_session

    session = spark_session("tests")
    yield session
    session.stop()


@pytest.fixture
def plot_style() -> Iterator[None]:
    """The curriculum's plot style for one test, with every figure it opened closed afterwards."""
    import matplotlib.pyplot as plt

    from helpers.plots import use_style

    use_style()
    yield
    plt.close("all")


def run_python(code: str, env: dict[str, str] | None = None, remove: tuple[str, ...] = (),
               timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment (for what must start from a clean process),
    with ``env`` added to this process's environment and the variables in ``remove`` taken out."""
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in remove}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment
    )
