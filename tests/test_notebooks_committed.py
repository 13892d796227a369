"""What every committed notebook must satisfy before nbval even runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
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


def _in_ci(environ: Mapping[str, str]) -> bool:
    """CI services set ``CI`` (GitHub Actions, GitLab and others set ``CI=true``)."""
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def hygiene_tool(path: Path = HYGIENE, environ: Mapping[str, str] = os.environ) -> Path:
    """The shared hygiene tool at ``path``. When it is missing, the check skips on a developer's machine (the tool
    sits beside the repository, not in it) but fails in CI, where a silent skip would let the check lapse unseen."""
    if path.exists():
        return path
    if _in_ci(environ):
        pytest.fail(
            f"The notebook hygiene check cannot run: {path} is missing, and with CI={environ['CI']} it must not be "
            "skipped. Check out the course's shared folder beside this repository in the CI job (the tool is "
            "../shared/tools/check_notebooks.py from the repository root).",
            pytrace=False,
        )
    pytest.skip(f"the shared hygiene tool is not at {path}; it sits beside the repository, in ../shared/tools")


def test_hygiene_check_passes() -> None:
    done = subprocess.run([sys.executable, str(hygiene_tool()), "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("ci", ["true", "True", "1"])
def test_a_missing_hygiene_tool_fails_in_ci(tmp_path: Path, ci: str) -> None:
    missing = tmp_path / "shared" / "tools" / "check_notebooks.py"
    with pytest.raises(BaseException) as caught:  # pytest's skip and fail are BaseExceptions: catch either
        hygiene_tool(missing, {"CI": ci})
    assert caught.type is pytest.fail.Exception, f"not a failure but {caught.type.__name__}: {caught.value}"
    assert str(caught.value) == (
        f"The notebook hygiene check cannot run: {missing} is missing, and with CI={ci} it must not be skipped. "
        "Check out the course's shared folder beside this repository in the CI job (the tool is "
        "../shared/tools/check_notebooks.py from the repository root)."
    )


@pytest.mark.parametrize("environ", [{}, {"CI": "false"}, {"CI": ""}], ids=["no CI", "CI=false", "CI empty"])
def test_a_missing_hygiene_tool_skips_with_the_reason_elsewhere(tmp_path: Path, environ: dict[str, str]) -> None:
    missing = tmp_path / "shared" / "tools" / "check_notebooks.py"
    with pytest.raises(BaseException) as caught:
        hygiene_tool(missing, environ)
    assert caught.type is pytest.skip.Exception, f"not a skip but {caught.type.__name__}: {caught.value}"
    assert str(caught.value) == (
        f"the shared hygiene tool is not at {missing}; it sits beside the repository, in ../shared/tools"
    )


def test_a_present_hygiene_tool_is_used_in_and_out_of_ci(tmp_path: Path) -> None:
    present = tmp_path / "check_notebooks.py"
    present.write_text("")
    assert hygiene_tool(present, {"CI": "true"}) == present
    assert hygiene_tool(present, {}) == present
