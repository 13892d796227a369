"""A hang fails fast and says where: a stuck notebook cell (nbval's cell timeout) and a stuck test, fixture or
server (pytest-timeout), each within minutes instead of running into CI's limit."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _makefile_cell_timeout() -> int:
    match = re.search(r"^NBVAL :=.*--nbval-cell-timeout=(\d+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "make test must give nbval a cell timeout"
    return int(match.group(1))


def _test_timeout() -> int:
    return int(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["timeout"])


def test_limits_are_minutes_not_the_whole_ci_run() -> None:
    cell, test = _makefile_cell_timeout(), _test_timeout()
    assert 120 <= cell <= 600, "well above the slowest real cell (55 s, chapter 23's job), far below CI's 90 minutes"
    assert cell < test <= 900, "a cell hits nbval's limit first, so the failure names the notebook and cell"


def test_a_hung_notebook_cell_fails_naming_the_notebook_and_cell(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('before')", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="before\n")]),
        nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
    ])
    path = tmp_path / "hangs.ipynb"
    nbformat.write(notebook, path)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", str(path), "--nbval", "--nbval-current-env",
                           "--nbval-cell-timeout=3", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert time.monotonic() - started < 90
    assert done.returncode == 1, done.stdout[-2000:]
    assert "hangs.ipynb::Cell 1" in done.stdout and "Timeout of 3 seconds exceeded" in done.stdout, done.stdout[-2000:]
    assert "1 failed, 1 passed" in done.stdout


def test_a_hung_test_fails_naming_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text("import time\n\ndef test_waits_forever():\n    time.sleep(120)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "test_hangs.py", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(tmp_path), "-o", "timeout=3", "-q"],
                          capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert time.monotonic() - started < 90
    assert done.returncode == 1, done.stdout[-2000:]
    assert "Timeout" in done.stdout and "test_waits_forever" in done.stdout, done.stdout[-2000:]
