"""What every committed notebook must satisfy before nbval even runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
HYGIENE = ROOT.parent / "shared" / "tools" / "check_notebooks.py"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request) -> tuple[Path, nbformat.NotebookNode]:
    return request.param, nbformat.read(request.param, as_version=4)


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


def test_parameters_cell_sets_the_default_scale(notebook) -> None:
    _, nb = notebook
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert re.match(r'^scale = "default"(\s*#.*)?$', tagged[0].source.strip())


def test_setup_uses_helpers_start_with_the_notebook_name(notebook) -> None:
    path, nb = notebook
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    match = re.search(r'helpers\.start\("([^"]+)"', sources)
    assert match, "set-up must be helpers.start(...)"
    assert path.stem.startswith(match.group(1)[:2])


def test_no_stderr_or_errors_committed(notebook) -> None:
    """JVM chatter or warnings in a committed output would differ from a fresh run under nbval."""
    _, nb = notebook
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", f"cell {index} has stderr output: {output.get('text', '')[:200]}"
            assert output.get("output_type") != "error", f"cell {index} has an error output"


def test_readme_map_lists_the_notebook(notebook) -> None:
    path, _ = notebook
    readme = (ROOT / "README.md").read_text()
    number = path.name[:2]
    row = next((line for line in readme.splitlines() if line.startswith(f"| {number} |")), "")
    assert "available" in row, f"README's curriculum map does not list notebook {number} as available"


def test_readme_map_gives_the_minutes_the_notebook_announces(notebook) -> None:
    path, nb = notebook
    announced = re.search(r"\*\*Time:\*\*\s*about (\d+) minutes", nb.cells[0].source)
    assert announced, "the title cell must say how long the chapter takes: **Time:** about N minutes"
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| {path.name[:2]} |"))
    assert f"| ~{announced.group(1)} |" in row, f"README's map and the notebook disagree on the minutes: {row}"


@pytest.mark.skipif(not HYGIENE.exists(), reason="the shared hygiene tool sits beside the repository (../shared)")
def test_hygiene_check_passes() -> None:
    done = subprocess.run([sys.executable, str(HYGIENE), "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
