"""The notebook runner: order, filtering, the summary table, failures and refresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import runner
from tests.conftest import ROOT


def _notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('scale = "default"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Test"), params, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


def test_discover_orders_chapters_and_filters(tmp_path: Path) -> None:
    for name in ["10-kmeans.ipynb", "02-cleaning.ipynb", "01-ingestion.ipynb", "scratch.ipynb", "02a-extra.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in runner.discover(tmp_path)] == [
        "01-ingestion.ipynb", "02-cleaning.ipynb", "02a-extra.ipynb", "10-kmeans.ipynb"]
    assert [p.name for p in runner.discover(tmp_path, ["10", "clean"])] == ["02-cleaning.ipynb", "10-kmeans.ipynb"]


def test_table_lists_every_notebook_and_the_total() -> None:
    text = runner.table([runner.Result("01-a.ipynb", "ok", 1.25), runner.Result("02-b.ipynb", "failed", 2.0)])
    lines = text.splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds"]
    assert lines[2].split() == ["01-a.ipynb", "ok", "1.2"] or lines[2].split() == ["01-a.ipynb", "ok", "1.3"]
    assert lines[3].split() == ["02-b.ipynb", "failed", "2.0"]
    assert lines[-1].split() == ["1", "of", "2", "ok", "3.2"] or lines[-1].split() == ["1", "of", "2", "ok", "3.3"]


def test_run_reports_a_failure_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "01-good.ipynb", "print('scale is', scale)")
    _notebook(source / "02-bad.ipynb", "raise ValueError('broken on purpose')")
    code = runner.main(["--folder", str(source), "--output-dir", str(tmp_path / "out"), "--scale", "full"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[1/2] 01-good.ipynb ... ok" in out
    assert "[2/2] 02-bad.ipynb ... failed" in out
    assert "FAILED 02-bad.ipynb: ValueError: broken on purpose" in out
    executed = nbformat.read(tmp_path / "out" / "01-good.ipynb", as_version=4)
    assert "scale is full" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_refresh_writes_back_executed_notebooks_without_run_metadata(tmp_path: Path) -> None:
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "01-good.ipynb", "print(6 * 7)")
    assert runner.main(["--folder", str(source), "--output-dir", str(tmp_path / "out"), "--refresh"]) == 0
    refreshed = nbformat.read(source / "01-good.ipynb", as_version=4)
    assert refreshed.cells[2].outputs[0]["text"] == "42\n"
    assert refreshed.cells[2].execution_count == 2
    assert "papermill" not in refreshed.metadata
    assert all("papermill" not in c.metadata for c in refreshed.cells)


def test_refresh_refuses_full_scale() -> None:
    with pytest.raises(SystemExit):
        runner.main(["--refresh", "--scale", "full"])


def test_run_creates_its_output_folder(tmp_path: Path) -> None:
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "01-good.ipynb", "print(6 * 7)")
    results = runner.run(runner.discover(source), tmp_path / "not" / "there" / "yet", "default", refresh=False,
                         timeout=120)
    assert [r.status for r in results] == ["ok"], results
    assert (tmp_path / "not" / "there" / "yet" / "01-good.ipynb").exists()


@pytest.mark.parametrize(("scale", "layout"), [("default", ""), ("full", "machine")])
def test_full_scale_sizes_the_partitions_to_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         scale: str, layout: str) -> None:
    """The kernel sees CURRICULUM_PARTITIONS=machine only at full scale; the default scale keeps the shared
    layout that the committed outputs were made with."""
    monkeypatch.setenv("CURRICULUM_PARTITIONS", "")  # so that monkeypatch restores what the run sets
    monkeypatch.delenv("CURRICULUM_PARTITIONS")
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "01-layout.ipynb", "import os\nlayout = os.environ.get('CURRICULUM_PARTITIONS', '')\n"
                                          f"assert layout == {layout!r}, layout")
    results = runner.run(runner.discover(source), tmp_path / "out", scale, refresh=False, timeout=120)
    assert [r.status for r in results] == ["ok"], results


def test_unknown_scale_is_refused_before_any_notebook_runs(tmp_path: Path) -> None:
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "01-good.ipynb", "print(6 * 7)")
    folders = ["--folder", str(source), "--output-dir", str(tmp_path / "out")]
    command = [sys.executable, "-m", "helpers.runner", "--scale", "fulll", *folders]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert (
        "python -m helpers.runner: error: argument --scale: scale must be one of 'default', 'full', "
        "not 'fulll'. Did you mean 'full'?"
    ) in done.stderr
    assert "usage: python -m helpers.runner" in done.stderr and "--scale {default,full}" in done.stderr
    assert "Executing" not in done.stdout and not (tmp_path / "out").exists()


def test_papermill_with_an_unknown_scale_fails_at_the_first_load(tmp_path: Path) -> None:
    """`papermill nb.ipynb out.ipynb -p scale fulll`: the injected scale is refused with the valid ones listed."""
    import papermill as pm

    source = tmp_path / "01-typo.ipynb"
    _notebook(source, 'import helpers\n\nhelpers.load_pandas("penguins", scale=scale)')
    with pytest.raises(pm.PapermillExecutionError) as caught:
        pm.execute_notebook(
            str(source),
            str(tmp_path / "out.ipynb"),
            parameters={"scale": "fulll"},
            kernel_name="python3",
            cwd=str(ROOT),
            progress_bar=False,
            execution_timeout=120,
        )
    assert caught.value.ename == "ScaleError"
    assert caught.value.evalue.startswith(
        "scale must be one of 'default', 'full', not 'fulll'. Did you mean 'full'? A notebook's scale is set in "
        'its parameters cell (scale = "default")'
    )
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    failed = [c for c in executed.cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert [c.source for c in failed] == ['import helpers\n\nhelpers.load_pandas("penguins", scale=scale)']


def test_the_runner_prints_no_kernel_transport_warning(tmp_path: Path) -> None:
    """Kernels talk over local sockets (IPC), so ipykernel's "running over TCP without encryption" warning, printed
    once per notebook over TCP, never reaches `make run`'s output."""
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "01-good.ipynb", "print(6 * 7)")
    command = [sys.executable, "-m", "helpers.runner", "--folder", str(source), "--output-dir", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/1] 01-good.ipynb ... ok" in done.stdout
    assert "without encryption" not in done.stdout + done.stderr and "WARNING" not in done.stderr, done.stderr


def test_a_progress_bar_counts_the_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _notebook(tmp_path / "01-good.ipynb", "print(6 * 7)")
    result = runner.execute(tmp_path / "01-good.ipynb", tmp_path / "out.ipynb", "default", 60, progress="[1/1] nb")
    assert result.status == "ok"
    bar = capsys.readouterr().err
    assert "[1/1] nb" in bar and "/3 [" in bar and "cell/s" in bar, bar  # the notebook's 3 cells
