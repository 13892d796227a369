"""Same results on every learner's machine, whatever its number of cores.

The committed outputs were made on 2 cores. A learner's laptop has 4, 8 or more, and Spark sizes its data
layout to the cores unless told otherwise — and some results depend on the layout (randomSplit, bootstrap
samples and k-means|| starts are drawn per partition; a sum of floats adds up in partition order). The helpers
fix the layout (``helpers.spark.data_layout``); these tests execute notebooks in a local session forced to other
core counts (``CURRICULUM_CORES``) and compare every output with the committed one, exactly as ``make test``'s
nbval run does on 2 cores.

``make test`` runs the smoke set: chapter 00 and chapter 13 (whose backtest is spread over the shuffle
partitions) at 8 cores. ``make test-cores`` (CORES_TESTS=all) runs the representative set at 4 and at 8 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers.paths import notebooks_dir
from helpers.spark import CORES_ENV, PARTITIONS_ENV
from tests.conftest import ROOT

#: Every family of partition-sensitive step: 00 (the layout itself), 02 (a split and imputation), 07 (bootstrap
#: samples per partition), 10 (k-means|| starts), 13 (applyInPandas over the shuffle partitions), 15 (ALS blocks,
#: a random split) and 25 (partition counts, tasks per stage, file splits).
REPRESENTATIVE = ("00", "02", "07", "10", "13", "15", "25")
SMOKE = ("00", "13")
#: The same limits as make test's nbval run (Makefile NBVAL).
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
         "--nbval-cell-timeout=300"]
SECONDS_PER_NOTEBOOK = 420


def _cases() -> list[tuple[int, str]]:
    if os.environ.get("CORES_TESTS") == "all":
        return [(cores, chapter) for cores in (4, 8) for chapter in REPRESENTATIVE]
    return [(8, chapter) for chapter in SMOKE]


def notebook_path(chapter: str) -> str:
    [path] = sorted(notebooks_dir().glob(f"{chapter}-*.ipynb"))
    return str(path.relative_to(ROOT))


@pytest.mark.timeout(SECONDS_PER_NOTEBOOK)
@pytest.mark.parametrize(("cores", "chapter"), _cases(), ids=lambda value: str(value))
def test_a_notebook_gives_the_committed_outputs_on_other_core_counts(cores: int, chapter: str) -> None:
    """Run in the project's own work folder, as make test's nbval run is, so that paths print alike (every
    chapter runs again on what an earlier run left there, as a learner's second run does)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("CURRICULUM_WORK_DIR", "MLFLOW_TRACKING_URI", PARTITIONS_ENV)}
    env[CORES_ENV] = str(cores)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NBVAL,
                           notebook_path(chapter)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=SECONDS_PER_NOTEBOOK - 20)
    assert done.returncode == 0, (f"notebook {chapter} in a local[{cores}] session does not give its committed "
                                  f"outputs:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")


def test_the_session_really_runs_on_the_forced_cores() -> None:
    """CURRICULUM_CORES sets the task slots, not the layout: the forced session runs 8 tasks at once while a
    DataFrame still gets the shared partition count."""
    code = ("from helpers.spark import spark_session, task_slots\n"
            "s = spark_session('cores-probe')\n"
            "s.conf.set('spark.sql.adaptive.enabled', 'false')  # AQE would merge small shuffle partitions\n"
            "r = s.range(100)\n"
            "print(s.conf.get('spark.master'), task_slots(s), r.rdd.getNumPartitions(),\n"
            "      r.groupBy((r.id % 7).alias('k')).count().rdd.getNumPartitions())\n")
    env = {**{k: v for k, v in os.environ.items() if k != PARTITIONS_ENV}, CORES_ENV: "8"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    master, slots, partitions, shuffled = done.stdout.split()
    assert (master, int(slots), int(partitions), int(shuffled)) == ("local[8]", 8, 2, 4)
