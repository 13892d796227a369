"""A small local job runner: notebook tasks with dependencies, parameters, retries and timeouts, executed
with papermill the way a Databricks job (Lakeflow Jobs) runs notebook tasks — and the same job written out
as a Databricks Jobs API 2.1 / Asset Bundle definition and as an Airflow DAG.

Notebook 23 defines its retraining job with it::

    from helpers import jobs

    job = jobs.Job("flight_delay_retraining", [
        jobs.Task("ingest", "notebooks/jobs/ingest.ipynb", max_retries=2, timeout_seconds=300),
        jobs.Task("train", "notebooks/jobs/train.ipynb", depends_on=("ingest",)),
    ], parameters={"scale": "default"})
    run = jobs.run_job(job)            # executes the tasks in dependency order, one attempt per process
    run.status                         # "SUCCESS" or "FAILED"
    run.history()                      # one row per attempt: run id, task, attempt, status, start, seconds, error
    jobs.read_history()                # every recorded run (Parquet under work_dir("jobs"))

Each attempt is a **separate process** (``python -m helpers.jobs``) that executes the task's notebook with
papermill into ``work_dir("jobs")/runs/<run id>/<task>-attempt<N>.ipynb``; the job's parameters, the task's
parameters and ``run_id``/``task``/``attempt`` are injected into the notebook's ``parameters`` cell. A task
that outlives its ``timeout_seconds`` has its process group stopped (its kernel exits with its parent) and is
reported ``TIMEDOUT``. A failed or timed-out attempt is retried up to ``max_retries`` times; a task whose
upstream task did not succeed is not run (``UPSTREAM_FAILED``), and the job then ends ``FAILED``.

Tasks share small results the way ``dbutils.jobs.taskValues`` does: ``set_task_value(run_id, task, key,
value)`` in one notebook, ``get_task_value(run_id, task, key)`` in a downstream one (JSON files in the run's
folder). Tasks run one at a time (Databricks runs independent tasks in parallel); the order is the
declaration order among the tasks whose dependencies are done.

No orchestration library is used: none is installed with the curriculum (Airflow, Dagster or Prefect would
each bring a scheduler, a metadata database or a server for what is here a loop of papermill calls), so this
module keeps the runner small and tested (``tests/test_jobs.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

#: A task's (and the job's) final states, as Databricks names them.
SUCCESS, FAILED, TIMEDOUT, UPSTREAM_FAILED = "SUCCESS", "FAILED", "TIMEDOUT", "UPSTREAM_FAILED"
#: The run-history table's columns: one row per attempt (or per skipped task).
HISTORY_COLUMNS = ["run_id", "job", "task", "attempt", "status", "start", "seconds", "error"]
#: Parameters the runner injects into every task notebook, besides the job's and the task's own.
INJECTED = ("run_id", "task", "attempt")


# ------------------------------------------------------------------------------------------ definitions


@dataclass(frozen=True)
class Task:
    """One notebook task of a job.

    ``notebook`` is the task's notebook (a path, relative to the project root or absolute); ``depends_on``
    names the tasks that must succeed first; ``parameters`` are the notebook's parameters (Databricks'
    ``base_parameters``); a failed or timed-out attempt is retried up to ``max_retries`` times, after
    ``min_retry_interval_seconds``; an attempt running longer than ``timeout_seconds`` (``None``: no limit)
    is stopped."""

    key: str
    notebook: str | Path
    depends_on: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = 0
    timeout_seconds: float | None = None
    min_retry_interval_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"task {self.key!r}: max_retries must be zero or positive")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise ValueError(f"task {self.key!r}: timeout_seconds must be positive (or None for no limit)")
        if isinstance(self.depends_on, str):
            raise TypeError(f"task {self.key!r}: depends_on is a tuple of task keys, not a string")


@dataclass(frozen=True)
class Job:
    """A named set of tasks and the job-level ``parameters`` passed to every task (as on Databricks, a job
    parameter wins over a task parameter of the same name)."""

    name: str
    tasks: Sequence[Task]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = [task.key for task in self.tasks]
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        if duplicated:
            raise ValueError(f"job {self.name!r}: task keys must be unique, {duplicated} repeat")
        for task in self.tasks:
            unknown = [d for d in task.depends_on if d not in keys]
            if unknown:
                raise ValueError(f"job {self.name!r}: task {task.key!r} depends on unknown task(s) {unknown}")
        self.order()  # raises on a cycle

    def task(self, key: str) -> Task:
        """The task named ``key``."""
        return next(task for task in self.tasks if task.key == key)

    def order(self) -> list[Task]:
        """The tasks in an order that respects every dependency: repeatedly the first declared task whose
        dependencies are all placed. Raises ``ValueError`` on a dependency cycle."""
        placed: list[Task] = []
        done: set[str] = set()
        waiting = list(self.tasks)
        while waiting:
            ready = next((task for task in waiting if set(task.depends_on) <= done), None)
            if ready is None:
                raise ValueError(f"job {self.name!r}: dependency cycle among {[t.key for t in waiting]}")
            placed.append(ready)
            done.add(ready.key)
            waiting.remove(ready)
        return placed


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Attempt:
    """One attempt of one task (``attempt`` 0 for a task that was skipped because an upstream task failed)."""

    run_id: str
    job: str
    task: str
    attempt: int
    status: str
    start: datetime
    seconds: float
    error: str = ""
    output: str = ""


@dataclass
class JobRun:
    """The outcome of ``run_job``: the run's id, its final status and every attempt, in order."""

    job: Job
    run_id: str
    status: str = SUCCESS
    attempts: list[Attempt] = field(default_factory=list)

    def task_status(self) -> dict[str, str]:
        """Each task's final state (its last attempt's status)."""
        return {attempt.task: attempt.status for attempt in self.attempts}

    def history(self) -> pd.DataFrame:
        """The run history: one row per attempt with ``HISTORY_COLUMNS``."""
        return history_frame(self.attempts)

    def report(self) -> str:
        """A few lines for a person: the job's status and, for each task that did not succeed, why."""
        lines = [f"job {self.job.name!r} run {self.run_id}: {self.status}"]
        for task, status in self.task_status().items():
            if status != SUCCESS:
                last = [a for a in self.attempts if a.task == task][-1]
                tries = f" after {last.attempt} attempt(s)" if last.attempt else ""
                lines.append(f"  {task}: {status}{tries} — {last.error}")
        return "\n".join(lines)


def history_frame(attempts: Sequence[Attempt]) -> pd.DataFrame:
    """Attempts as a table with ``HISTORY_COLUMNS`` (``start`` as UTC timestamps)."""
    rows = [{column: getattr(attempt, column) for column in HISTORY_COLUMNS} for attempt in attempts]
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    return frame.astype({"attempt": "int64", "seconds": "float64"})


def readable(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` for printing: the start as ``YYYY-MM-DD HH:MM:SS`` text and the seconds as ``NNNN.NN s``,
    zero-padded to one width (two forms that notebooks' output checks mask; with one width, the printed table's
    layout is the same whatever the durations), errors cut to 70 characters, no job column."""
    frame = history.drop(columns=["job"]).copy()
    frame["start"] = frame["start"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["seconds"] = [f"{s:07.2f} s" for s in frame["seconds"]]
    frame["error"] = [e if len(e) <= 70 else e[:69] + "…" for e in frame["error"]]
    return frame


# ------------------------------------------------------------------------------------------ storage


def jobs_dir() -> Path:
    """Where job runs are kept: ``work_dir("jobs")``."""
    from helpers.paths import work_dir

    return work_dir("jobs")


def run_dir(run_id: str) -> Path:
    """The folder of one run: executed notebooks, task values and ``run.json``."""
    folder = jobs_dir() / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def history_path() -> Path:
    """The Parquet file that collects every run's attempts."""
    return jobs_dir() / "history.parquet"


def read_history(path: Path | None = None) -> pd.DataFrame:
    """Every recorded attempt of every run (empty, with ``HISTORY_COLUMNS``, before the first run)."""
    source = path or history_path()
    if not source.exists():
        return history_frame([])
    return pd.read_parquet(source)


def _record(run: JobRun) -> None:
    """Write ``run.json`` in the run's folder and append the attempts to the history Parquet file."""
    document = {"run_id": run.run_id, "job": run.job.name, "status": run.status,
                "attempts": [{**asdict(a), "start": a.start.isoformat()} for a in run.attempts]}
    (run_dir(run.run_id) / "run.json").write_text(json.dumps(document, indent=2))
    previous = read_history()
    history = run.history() if previous.empty else pd.concat([previous, run.history()], ignore_index=True)
    history.to_parquet(history_path(), index=False)


def set_task_value(run_id: str, task: str, key: str, value: Any) -> None:
    """Record a small JSON-able ``value`` under ``key`` for downstream tasks (``dbutils.jobs.taskValues.set``)."""
    path = run_dir(run_id) / "values" / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    values = json.loads(path.read_text()) if path.exists() else {}
    values[key] = value
    path.write_text(json.dumps(values, indent=2))


def get_task_value(run_id: str, task: str, key: str, default: Any = None) -> Any:
    """A value an upstream ``task`` recorded with ``set_task_value`` (``dbutils.jobs.taskValues.get``);
    ``default`` when it recorded none."""
    path = run_dir(run_id) / "values" / f"{task}.json"
    return json.loads(path.read_text()).get(key, default) if path.exists() else default


# ------------------------------------------------------------------------------------------ running


def _notebook_path(notebook: str | Path) -> Path:
    from helpers.paths import project_root

    path = Path(notebook)
    return path if path.is_absolute() else project_root() / path


def _run_attempt(task: Task, parameters: Mapping[str, Any], output: Path) -> tuple[str, str]:
    """Execute one attempt in a child process; (status, error)."""
    from helpers.processes import stop_group

    spec = output.with_suffix(".json")
    result = output.with_suffix(".result.json")
    source = _notebook_path(task.notebook)
    spec.write_text(json.dumps({"notebook": str(source), "output": str(output), "cwd": str(source.parent),
                                "parameters": dict(parameters), "result": str(result)}))
    child = subprocess.Popen([sys.executable, "-m", "helpers.jobs", "--attempt", str(spec)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        child.wait(timeout=task.timeout_seconds)
    except subprocess.TimeoutExpired:
        stop_group(child.pid, grace_s=5)
        child.wait()
        return TIMEDOUT, f"timed out after {task.timeout_seconds:g} s (timeout_seconds)"
    if result.exists():
        outcome = json.loads(result.read_text())
        return outcome["status"], outcome["error"]
    return FAILED, f"the task's process exited with status {child.returncode} without a result"


def run_job(job: Job, run_id: str | None = None, parameters: Mapping[str, Any] | None = None,
            record: bool = True, echo: bool = False) -> JobRun:
    """Run ``job`` once: every task in ``job.order()``, each attempt in its own process, retrying failed and
    timed-out attempts up to the task's ``max_retries``; a task whose dependencies did not all succeed is
    ``UPSTREAM_FAILED`` (not run). ``parameters`` override the job's parameters for this run (Databricks'
    "run now with different parameters"). With ``record``, the run is saved (``run.json`` and the history
    Parquet file); with ``echo``, a line is printed per attempt."""
    run = JobRun(job, run_id or uuid.uuid4().hex)
    folder = run_dir(run.run_id)
    job_parameters = {**job.parameters, **(parameters or {})}
    for task in job.order():
        finals = run.task_status()
        failed_upstream = [d for d in task.depends_on if finals.get(d) != SUCCESS]
        if failed_upstream:
            run.attempts.append(Attempt(run.run_id, job.name, task.key, 0, UPSTREAM_FAILED, _now(), 0.0,
                                        f"not run: upstream {', '.join(failed_upstream)} did not succeed"))
            if echo:
                print(f"{task.key:<10} skipped: upstream {', '.join(failed_upstream)} did not succeed")
            continue
        for attempt in range(1, task.max_retries + 2):
            if attempt > 1 and task.min_retry_interval_seconds:
                time.sleep(task.min_retry_interval_seconds)
            output = folder / f"{task.key}-attempt{attempt}.ipynb"
            values = {**task.parameters, **job_parameters, "run_id": run.run_id, "task": task.key,
                      "attempt": attempt}
            start, started = _now(), time.perf_counter()
            status, error = _run_attempt(task, values, output)
            run.attempts.append(Attempt(run.run_id, job.name, task.key, attempt, status, start,
                                        time.perf_counter() - started, error, str(output)))
            if echo:
                print(f"{task.key:<10} attempt {attempt}: {status}" + (f" — {error}" if error else ""))
            if status == SUCCESS:
                break
    run.status = SUCCESS if all(s == SUCCESS for s in run.task_status().values()) else FAILED
    if record:
        _record(run)
    return run


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _execute(spec_path: Path) -> int:
    """The child process of one attempt: execute the notebook with papermill and write the outcome."""
    import papermill as pm

    spec = json.loads(Path(spec_path).read_text())
    status, error = SUCCESS, ""
    try:
        pm.execute_notebook(spec["notebook"], spec["output"], parameters=spec["parameters"],
                            kernel_name="python3", cwd=spec["cwd"], progress_bar=False, log_output=False)
    except Exception as exc:  # papermill raises PapermillExecutionError for a failing cell, others for the rest
        name = str(getattr(exc, "ename", "") or type(exc).__name__)
        detail = (str(getattr(exc, "evalue", "") or exc).strip().splitlines() or [""])[0]
        status, error = FAILED, f"{name}: {detail}"
    Path(spec["result"]).write_text(json.dumps({"status": status, "error": error}))
    return 0 if status == SUCCESS else 1


# ------------------------------------------------------------------------------------------ other forms


def _workspace_path(notebook: str | Path, root: str) -> str:
    """The task notebook's path in a Databricks workspace (the repository checked out under ``root``)."""
    return f"{root.rstrip('/')}/{Path(notebook).with_suffix('').as_posix()}"


# What ``run_job`` injects into every task's notebook, as Databricks' dynamic value references: the job run's id,
# the task's key and which attempt this is (1 on the first try, 2 on the first retry).
DATABRICKS_RUN_CONTEXT = {"run_id": "{{job.run_id}}", "task": "{{task.name}}", "attempt": "{{task.execution_count}}"}


def to_databricks(job: Job, root: str = "/Workspace/Users/someone@example.com/curriculum",
                  schedule: str | None = None) -> dict[str, Any]:
    """``job`` as a Databricks Jobs API 2.1 job definition (the body of ``POST /api/2.1/jobs/create``; the
    same mapping sits under ``resources.jobs.<name>`` in an Asset Bundle's YAML). Task notebooks are
    referenced below ``root``; ``schedule`` (a Quartz cron expression) adds a schedule. Each task also receives
    ``run_id``, ``task`` and ``attempt`` as dynamic value references (:data:`DATABRICKS_RUN_CONTEXT`), the
    values ``run_job`` injects here."""
    tasks = []
    for task in job.tasks:
        entry: dict[str, Any] = {"task_key": task.key}
        if task.depends_on:
            entry["depends_on"] = [{"task_key": key} for key in task.depends_on]
        entry["notebook_task"] = {"notebook_path": _workspace_path(task.notebook, root),
                                  "base_parameters": {**{k: str(v) for k, v in task.parameters.items()},
                                                      **DATABRICKS_RUN_CONTEXT}}
        entry["max_retries"] = task.max_retries
        if task.min_retry_interval_seconds:
            entry["min_retry_interval_millis"] = int(task.min_retry_interval_seconds * 1000)
        entry["retry_on_timeout"] = True
        if task.timeout_seconds is not None:
            entry["timeout_seconds"] = int(task.timeout_seconds)
        tasks.append(entry)
    definition: dict[str, Any] = {
        "name": job.name,
        "parameters": [{"name": k, "default": str(v)} for k, v in job.parameters.items()],
        "tasks": tasks,
        "max_concurrent_runs": 1,
    }
    if schedule:
        definition["schedule"] = {"quartz_cron_expression": schedule, "timezone_id": "UTC"}
    return definition


def to_bundle_yaml(job: Job, root: str = "..") -> str:
    """``job`` as the ``resources`` section of a Databricks Asset Bundle (``databricks.yml``), with notebook
    paths relative to the bundle's folder (``root``: the repository root seen from a ``bundle/`` folder)."""
    import yaml

    definition = to_databricks(job, root=root)
    for task in definition["tasks"]:
        task["notebook_task"]["notebook_path"] = task["notebook_task"]["notebook_path"] + ".ipynb"
    return yaml.safe_dump({"resources": {"jobs": {job.name: definition}}}, sort_keys=False)


def to_airflow(job: Job, dag_id: str | None = None, folder: str = "/opt/airflow/curriculum") -> str:
    """The Python text of an Airflow DAG that runs ``job``'s notebooks with papermill
    (``PapermillOperator`` of ``apache-airflow-providers-papermill``): one operator per task with its
    retries and ``execution_timeout``, and the dependencies as ``>>``. Not executed here."""
    name = dag_id or job.name
    lines = [
        "from datetime import timedelta",
        "",
        "import pendulum",
        "from airflow import DAG",
        "from airflow.providers.papermill.operators.papermill import PapermillOperator",
        "",
        "# the job's parameters, rendered from the DAG's params into every task's notebook",
        f"JOB_PARAMETERS = {{{', '.join(f'{k!r}: {{{{ params.{k} }}}}' for k in job.parameters)}}}".replace(
            "{{ params.", "'{{ params.").replace(" }}", " }}'"),
        "",
        f"with DAG(dag_id={name!r}, schedule=None, start_date=pendulum.datetime(2013, 1, 1, tz='UTC'),",
        f"         catchup=False, render_template_as_native_obj=True, params={dict(job.parameters)!r}) as dag:",
    ]
    for task in job.tasks:
        notebook = Path(task.notebook).as_posix()
        # the task's own parameters first: a job parameter of the same name wins, as in run_job and Databricks
        own = "".join(f"{k!r}: {v!r}, " for k, v in task.parameters.items())
        parameters = "{" + own + f"**JOB_PARAMETERS, 'task': {task.key!r}, " + \
            "'run_id': '{{ run_id }}', 'attempt': '{{ ti.try_number }}'}"
        lines += [
            f"    {task.key} = PapermillOperator(",
            f"        task_id={task.key!r},",
            f"        input_nb={folder + '/' + notebook!r},",
            f"        output_nb={folder + '/runs/{{ run_id }}/' + task.key + '.ipynb'!r},",
            f"        parameters={parameters},",
            f"        retries={task.max_retries},",
            f"        retry_delay=timedelta(seconds={task.min_retry_interval_seconds:g}),",
        ]
        if task.timeout_seconds is not None:
            lines.append(f"        execution_timeout=timedelta(seconds={task.timeout_seconds:g}),")
        lines.append("    )")
    edges = [f"    {d} >> {task.key}" for task in job.tasks for d in task.depends_on]
    return "\n".join(lines + ([""] + edges if edges else [])) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.jobs", description="Run one attempt of a job task.")
    parser.add_argument("--attempt", type=Path, required=True, help="the attempt's JSON spec (written by run_job)")
    args = parser.parse_args(argv)
    return _execute(args.attempt)


if __name__ == "__main__":
    sys.exit(main())
