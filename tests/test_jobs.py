"""helpers.jobs: dependency order, retries, timeouts, skipped downstream tasks and failed jobs — with tiny
notebooks in a temporary folder (each attempt starts a Python kernel, so the tests keep to a handful)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from helpers import jobs
from helpers.jobs import Job, Task
from helpers.processes import alive


def notebook(folder: Path, name: str, body: str, parameters: str = "") -> Path:
    """A notebook with a ``parameters`` cell (``run_id``, ``task``, ``attempt`` and ``parameters``) and
    ``body``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(f'run_id = ""\ntask = ""\nattempt = 1\n{parameters}')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), cell, nbformat.v4.new_code_cell(body)]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Job runs go to a throw-away work folder."""
    monkeypatch.setenv("CURRICULUM_WORK_DIR", str(tmp_path / "work"))
    return tmp_path


# A task that records it ran (as a task value) and when, so the order can be checked.
RECORD = "from helpers import jobs\nimport time\njobs.set_task_value(run_id, task, 'ran_at', time.time())"


def test_order_respects_dependencies_and_declaration() -> None:
    job = Job("j", [Task("promote", "p.ipynb", depends_on=("validate",)),
                    Task("train", "t.ipynb", depends_on=("ingest",)),
                    Task("ingest", "i.ipynb"),
                    Task("validate", "v.ipynb", depends_on=("train",)),
                    Task("report", "r.ipynb", depends_on=("ingest",))])
    assert [t.key for t in job.order()] == ["ingest", "train", "validate", "promote", "report"]


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        Job("j", [Task("a", "a.ipynb", depends_on=("b",)), Task("b", "b.ipynb", depends_on=("a",))])
    with pytest.raises(ValueError, match="unknown"):
        Job("j", [Task("a", "a.ipynb", depends_on=("missing",))])
    with pytest.raises(ValueError, match="unique"):
        Job("j", [Task("a", "a.ipynb"), Task("a", "b.ipynb")])
    with pytest.raises(ValueError, match="max_retries"):
        Task("a", "a.ipynb", max_retries=-1)
    with pytest.raises(TypeError):
        Task("a", "a.ipynb", depends_on="b")  # type: ignore[arg-type]


def test_a_job_runs_in_order_retries_and_records_history(work: Path) -> None:
    first = notebook(work, "first", RECORD + "\nif attempt <= fail_attempts:\n    raise ConnectionError('flaky')",
                     parameters="fail_attempts = 0")
    second = notebook(work, "second", RECORD + "\nassert jobs.get_task_value(run_id, 'first', 'ran_at')\n"
                      "jobs.set_task_value(run_id, task, 'greeting', greeting)", parameters="greeting = ''")
    job = Job("ordered", [Task("second", second, depends_on=("first",)),
                          Task("first", first, max_retries=2, parameters={"fail_attempts": 1})],
              parameters={"greeting": "hello"})
    run = jobs.run_job(job)

    assert run.status == jobs.SUCCESS
    history = run.history()
    assert list(history.columns) == jobs.HISTORY_COLUMNS
    assert list(zip(history["task"], history["attempt"], history["status"], strict=True)) == [
        ("first", 1, "FAILED"), ("first", 2, "SUCCESS"), ("second", 1, "SUCCESS")]
    assert history["error"].iloc[0] == "ConnectionError: flaky"
    assert jobs.get_task_value(run.run_id, "first", "ran_at") < jobs.get_task_value(run.run_id, "second", "ran_at")
    assert jobs.get_task_value(run.run_id, "second", "greeting") == "hello"  # job parameters reach every task
    # the run is stored: its JSON document and the history table; each attempt's executed notebook is kept
    stored = json.loads((jobs.run_dir(run.run_id) / "run.json").read_text())
    assert stored["status"] == "SUCCESS" and len(stored["attempts"]) == 3
    assert len(jobs.read_history()) == 3
    assert (jobs.run_dir(run.run_id) / "first-attempt1.ipynb").exists()
    printed = jobs.readable(history)
    assert printed["seconds"].str.fullmatch(r"\d{4}\.\d\d s").all()


def test_failure_skips_downstream_and_fails_the_job(work: Path) -> None:
    broken = notebook(work, "broken", "raise RuntimeError('source is gone')")
    after = notebook(work, "after", "pass")
    job = Job("failing", [Task("ingest", broken, max_retries=1), Task("train", after, depends_on=("ingest",)),
                          Task("promote", after, depends_on=("train",))])
    run = jobs.run_job(job)

    assert run.status == jobs.FAILED
    assert run.task_status() == {"ingest": "FAILED", "train": "UPSTREAM_FAILED", "promote": "UPSTREAM_FAILED"}
    assert [a.attempt for a in run.attempts] == [1, 2, 0, 0]  # retried once, then the rest were not run
    report = run.report()
    assert "FAILED" in report and "RuntimeError: source is gone" in report and "after 2 attempt(s)" in report
    assert "upstream ingest did not succeed" in report
    assert jobs.read_history()["status"].tolist() == ["FAILED", "FAILED", "UPSTREAM_FAILED", "UPSTREAM_FAILED"]


def test_a_task_past_its_timeout_is_stopped_and_reported(work: Path) -> None:
    sleepy = notebook(work, "sleepy", "import os, time\nfrom helpers import jobs\n"
                      "jobs.set_task_value(run_id, task, 'pid', os.getpid())\ntime.sleep(120)")
    job = Job("slow", [Task("sleepy", sleepy, timeout_seconds=8)])
    started = time.perf_counter()
    run = jobs.run_job(job)

    assert time.perf_counter() - started < 40
    assert run.status == jobs.FAILED
    assert run.task_status() == {"sleepy": "TIMEDOUT"}
    assert run.attempts[0].error == "timed out after 8 s (timeout_seconds)"
    kernel = jobs.get_task_value(run.run_id, "sleepy", "pid")
    assert kernel, "the notebook should have started before the timeout"
    deadline = time.monotonic() + 15  # the kernel notices that its parent is gone within about a second
    while alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(kernel)


def test_the_job_maps_to_databricks_and_airflow() -> None:
    job = Job("retrain", [Task("ingest", "notebooks/jobs/ingest.ipynb", max_retries=2, timeout_seconds=600,
                               min_retry_interval_seconds=5, parameters={"months": "1-9"}),
                          Task("train", "notebooks/jobs/train.ipynb", depends_on=("ingest",))],
              parameters={"scale": "default"})
    definition = jobs.to_databricks(job, root="/Workspace/curriculum", schedule="0 0 6 * * ?")
    ingest, train = definition["tasks"]
    assert ingest["notebook_task"] == {"notebook_path": "/Workspace/curriculum/notebooks/jobs/ingest",
                                       "base_parameters": {"months": "1-9", "run_id": "{{job.run_id}}",
                                                           "task": "{{task.name}}",
                                                           "attempt": "{{task.execution_count}}"}}
    assert ingest["max_retries"] == 2 and ingest["timeout_seconds"] == 600
    assert train["depends_on"] == [{"task_key": "ingest"}]
    assert definition["parameters"] == [{"name": "scale", "default": "default"}]
    # The Databricks SDK's own model of a job reads the definition and writes it back unchanged: a misspelt or
    # misplaced field would be dropped on the way.
    from databricks.sdk.service.jobs import JobSettings

    assert JobSettings.from_dict(definition).as_dict() == definition
    assert "resources:" in jobs.to_bundle_yaml(job)
    dag = jobs.to_airflow(job)
    compile(dag, "dag.py", "exec")  # valid Python
    assert "ingest >> train" in dag and "retries=2" in dag and "execution_timeout=timedelta(seconds=600)" in dag


def test_a_job_parameter_wins_over_a_task_parameter_of_the_same_name_in_every_form() -> None:
    job = Job("retrain", [Task("ingest", "notebooks/jobs/ingest.ipynb", parameters={"months": "1-9", "own": "x"})],
              parameters={"months": "1-12"})
    databricks_task = jobs.to_databricks(job)["tasks"][0]["notebook_task"]["base_parameters"]
    assert databricks_task["months"] == "1-9"  # Databricks pushes the job parameter down over it at run time
    assert {"name": "months", "default": "1-12"} in jobs.to_databricks(job)["parameters"]
    line = next(text for text in jobs.to_airflow(job).splitlines() if "parameters=" in text)
    rendered = eval(line.split("parameters=", 1)[1].rstrip(","), {"JOB_PARAMETERS": {"months": "1-12"}})
    assert rendered["months"] == "1-12" and rendered["own"] == "x" and rendered["task"] == "ingest"
