"""Checks for Lab 25 · Operations: retraining jobs, governance and scaling out (chapters 23–25).

The lab's tasks: define chapter 23's retraining job (ingest → train → validate → promote) with retries and
timeouts and translate it into a scheduled Databricks job definition; pseudonymise the personal column ``agent``
of ``hotel_rates`` with a keyed hash whose key comes from the environment (chapter 24); and join the flights to
the airline names so that Spark plans a broadcast hash join (chapter 25). The checks inspect the ``Job`` object
and its translation, recompute the expected tokens from the dataset and the key in the environment, and read the
DataFrame's physical plan — no job is run and no server is started.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.labs import check, require

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The retraining job's tasks, in the order they must run (chapter 23).
TASKS = ("ingest", "train", "validate", "promote")
#: The folder of the job's task notebooks.
JOB_FOLDER = "notebooks/jobs"
#: The environment variable that holds the lab's pseudonymisation key (chapter 24 uses ``CURRICULUM_PII_KEY``).
KEY_NAME = "LAB_PII_KEY"
#: The personal column the lab pseudonymises, and the token column that replaces it.
PERSONAL = "agent"
TOKEN = "agent_token"


def _keys(tasks: Any) -> list[str]:
    return [task.key for task in tasks]


@check("Job: ingest → train → validate → promote, with retries and a timeout")
def test_job(job: Any) -> str:
    """``job``: a ``helpers.jobs.Job`` of the four task notebooks of ``notebooks/jobs``, chained by
    ``depends_on``, with retries on ``ingest`` and a ``timeout_seconds`` on ``train``."""
    from helpers import jobs
    from helpers.paths import project_root

    require(isinstance(job, jobs.Job), f"job should be a helpers.jobs.Job, not {type(job).__name__}")
    keys = _keys(job.tasks)
    missing = [key for key in TASKS if key not in keys]
    require(not missing, f"the job has the tasks {keys}; it lacks {missing} — one task per notebook of "
                         f"{JOB_FOLDER}: {list(TASKS)}")
    for task in job.tasks:
        path = Path(task.notebook)
        require((path if path.is_absolute() else project_root() / path).is_file(),
                f"task {task.key!r} runs {task.notebook}, which does not exist: use {JOB_FOLDER}/{task.key}.ipynb")
    for before, after in zip(TASKS, TASKS[1:], strict=False):
        require(before in job.task(after).depends_on,
                f"{after} does not depend on {before} (depends_on={job.task(after).depends_on}): without it the "
                f"job may run {after} before {before} has succeeded — set depends_on=(\"{before}\",)")
    order = _keys(job.order())
    require(order[:4] == list(TASKS), f"the job runs its tasks in the order {order}, expected {list(TASKS)}")
    ingest, train = job.task("ingest"), job.task("train")
    require(ingest.max_retries >= 1, "ingest has max_retries=0: reading the source is what fails for passing "
                                     "reasons (a network blip, a file not yet there) — give it max_retries=1 or 2")
    require(train.timeout_seconds is not None, "train has no timeout_seconds: a stuck training must not hold the "
                                               "cluster (and the next night's run) forever — set e.g. 900")
    return (f"{' → '.join(order)}; ingest retried up to {ingest.max_retries}×, "
            f"train stopped after {train.timeout_seconds:g} s")


@check("Databricks: the job as a scheduled Jobs API definition")
def test_databricks(definition: Any) -> str:
    """``definition``: what ``jobs.to_databricks(job, schedule=...)`` returns for the job of task 1, with a
    nightly schedule (a Quartz cron expression)."""
    require(isinstance(definition, dict), f"definition should be the dict that jobs.to_databricks returns, not "
                                          f"{type(definition).__name__}")
    tasks = {task.get("task_key"): task for task in definition.get("tasks", [])}
    require(set(TASKS) <= set(tasks), f"the definition has the tasks {sorted(tasks)}: translate the job of task 1, "
                                      f"with its tasks {list(TASKS)}")
    require(tasks["train"].get("depends_on") == [{"task_key": "ingest"}],
            f"train's depends_on is {tasks['train'].get('depends_on')}: translate the job of task 1, in which train "
            "depends on ingest")
    require("timeout_seconds" in tasks["train"], "train has no timeout_seconds in the definition: translate the "
                                                 "job of task 1, whose train task has one")
    schedule = definition.get("schedule")
    require(schedule, "the definition has no schedule: a retraining job runs every night without anyone pressing "
                      "a button — pass schedule=\"0 0 3 * * ?\" (Quartz cron: 03:00 every day)")
    cron = schedule.get("quartz_cron_expression", "")
    require(len(cron.split()) in (6, 7), f"{cron!r} is not a Quartz cron expression: Databricks wants six or seven "
                                         "fields, seconds first (\"0 0 3 * * ?\"), not Unix cron's five")
    return (f"{definition['name']}: {len(tasks)} tasks, train timeout {tasks['train']['timeout_seconds']} s, "
            f"schedule {cron!r} ({schedule.get('timezone_id', 'UTC')})")


def _agents() -> list[str]:
    from helpers.datasets import load_pandas

    return sorted(load_pandas("hotel_rates", "full")[PERSONAL].dropna().astype(str).unique())


@check("Governance: agent replaced by a keyed token, the key from the environment")
def test_pseudonymised(bookings: Any) -> str:
    """``bookings``: ``hotel_rates`` as a Spark DataFrame with ``agent`` replaced by ``agent_token``, the
    HMAC-SHA-256 of the agent keyed with the secret in the environment variable ``KEY_NAME``."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from helpers import governance

    require(isinstance(bookings, DataFrame), f"bookings should be a Spark DataFrame, not {type(bookings).__name__}")
    require(TOKEN in bookings.columns, f"bookings has no column {TOKEN!r}: governance.pseudonymise(frame, "
                                       f"[\"{PERSONAL}\"], key) adds it")
    require(PERSONAL not in bookings.columns, f"the raw column {PERSONAL!r} is still there next to its token: "
                                              "drop it (pseudonymise(..., drop=True)) — a pseudonymised table "
                                              "must not carry the names it hides")
    agents = _agents()
    rows = bookings.groupBy(TOKEN).count().collect()
    tokens = {row[TOKEN] for row in rows}
    raw = sorted(tokens & set(agents))
    require(not raw, f"{TOKEN} holds raw agent names ({raw[:2]}…): it should hold their tokens")
    key = governance.get_secret(KEY_NAME)
    expected = {governance.token(agent, key) for agent in agents}
    plain = {hashlib.sha256(agent.encode()).hexdigest() for agent in agents}
    require(not tokens & plain, "the tokens are plain SHA-256 hashes of the names: anyone can hash the 125 agent "
                                f"names and undo them — key the hash with the secret in os.environ[{KEY_NAME!r}] "
                                "(governance.pseudonymise(frame, [\"agent\"], governance.get_secret(lab.KEY_NAME)))")
    foreign = tokens - expected - {None}
    require(not foreign, f"{len(foreign)} of {len(tokens)} distinct tokens are not the HMAC-SHA-256 of an agent "
                         f"keyed with the secret in {KEY_NAME}: read the key from the environment "
                         "(governance.get_secret(lab.KEY_NAME)), do not type one into the notebook")
    require(len(tokens - {None}) == len(agents),
            f"bookings has {len(tokens - {None})} distinct tokens for the {len(agents)} agents: pseudonymise every "
            "row of hotel_rates (one token per agent, the same for the same agent)")
    nulls = bookings.filter(F.col(TOKEN).isNull()).count()
    require(nulls == 0, f"{nulls} rows have no token: every booking has an agent")
    return f"{sum(row['count'] for row in rows):,} bookings, {len(agents)} agents → {len(agents)} keyed tokens"


@check("Scaling: the flights joined to the airline names by a broadcast hash join")
def test_broadcast(joined: DataFrame) -> str:
    """``joined``: the flights joined to ``airlines`` on ``carrier``, planned as a broadcast hash join (the set-up
    cell switches Spark's automatic broadcast off, so only an explicit ``F.broadcast`` gets one)."""
    from pyspark.sql import DataFrame

    from helpers import performance

    require(isinstance(joined, DataFrame), f"joined should be a Spark DataFrame, not {type(joined).__name__}")
    require({"carrier", "name"} <= set(joined.columns), f"joined has the columns {joined.columns}: join the flights "
                                                        "to airlines (carrier, name) on carrier")
    operators = performance.plan_operators(performance.plan_text(joined))
    joins = [op for op in operators if op.endswith("Join")]
    require(joins, f"the plan has no join ({' ← '.join(operators[:6])}): join flights with airlines on carrier")
    require("SortMergeJoin" not in joins,
            "the plan uses SortMergeJoin: every flight is shuffled by carrier to meet 16 airline "
            "names — broadcast the small table with F.broadcast(airlines)")
    require("BroadcastHashJoin" in joins, f"the plan joins with {joins}, expected BroadcastHashJoin: wrap the small "
                                          "table in F.broadcast(airlines)")
    exchanges = [op for op in operators if op == "ShuffleExchange" or op.startswith("Exchange")]
    return f"BroadcastHashJoin, {len(exchanges)} shuffle(s) in the plan"
