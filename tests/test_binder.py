"""Binder gives a session about 2 GiB of memory and one CPU. binder/start sizes Spark's driver for it, and the
helpers give a local session no more task slots (so no more Python workers at once) than the pod's CPU limit.
This test runs chapters the way Binder would — through binder/start, every process (runner, kernel, Spark JVM,
Python workers) inside a memory cgroup of 2 GiB and a CPU cgroup of one CPU — and proves they finish, with their
committed results, without a process killed for memory.

It takes about 2.5 minutes on 2 cores, so `make test` leaves it to `make test-binder` (BINDER_TESTS=1), to keep
CI within its budget. It needs cgroups it may create (root on Linux); elsewhere it is skipped, saying so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cores import NBVAL, notebook_path

MEMORY_BYTES = 2 * 1024**3
CPU_PERIOD_US = 100_000
#: Chapter 00 (what every learner runs first) and chapter 14, whose sentence-embedding model is loaded by the
#: kernel and by each Python worker: with a Python worker per host core (what os.cpu_count() would give) and
#: the laptop's 4 GiB driver, it was killed for memory under this limit.
CHAPTERS = ("00", "14")
ROOT_V1 = Path("/sys/fs/cgroup")


def _make_cgroups(name: str) -> list[Path] | None:
    """A memory cgroup of 2 GiB and a CPU cgroup of one CPU (cgroup v1), or None where they cannot be made."""
    memory, cpu = ROOT_V1 / "memory" / name, ROOT_V1 / "cpu" / name
    made = []
    try:
        for folder, settings in ((memory, {"memory.limit_in_bytes": MEMORY_BYTES}),
                                 (cpu, {"cpu.cfs_period_us": CPU_PERIOD_US, "cpu.cfs_quota_us": CPU_PERIOD_US})):
            folder.mkdir()
            made.append(folder)
            for setting, value in settings.items():
                (folder / setting).write_text(str(value))
    except OSError:
        for folder in made:
            folder.rmdir()
        return None
    return made


def _oom_kills(memory: Path) -> int:
    for line in (memory / "memory.oom_control").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _empty_and_remove(folder: Path) -> None:
    """Kill whatever is still in the cgroup (nothing should be), then remove it."""
    for _ in range(50):
        pids = [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
    folder.rmdir()


@pytest.mark.timeout(900)
def test_chapters_run_in_a_binder_sized_pod() -> None:
    if os.environ.get("BINDER_TESTS") != "1":
        pytest.skip("the Binder test runs with make test-binder (BINDER_TESTS=1)")
    cgroups = _make_cgroups(f"curriculum-binder-{uuid.uuid4().hex[:8]}")
    if cgroups is None:
        pytest.skip("cannot create memory and CPU cgroups here (needs root on Linux with cgroup v1): the Binder "
                    "test is skipped")
    memory, cpu = cgroups
    # The project's own work folder, as make test's nbval run uses, so that paths print as committed.
    env = {key: value for key, value in os.environ.items() if key not in (
        "SPARK_DRIVER_MEMORY", "SPARK_MASTER", "SPARK_REMOTE", "CURRICULUM_CORES", "CURRICULUM_WORK_DIR",
        "MLFLOW_TRACKING_URI", "CURRICULUM_PARTITIONS")}
    enter = f"echo $$ > {memory / 'cgroup.procs'} && echo $$ > {cpu / 'cgroup.procs'} && exec \"$@\""
    in_pod = ["sh", "-c", enter, "sh", str(ROOT / "binder" / "start"), sys.executable]
    try:
        probe = subprocess.run([*in_pod, "-c", "import os; from helpers.spark import spark_target; "
                                "print(spark_target().url, os.environ['SPARK_DRIVER_MEMORY'])"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        done = subprocess.run([*in_pod, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NBVAL,
                               *(notebook_path(chapter) for chapter in CHAPTERS)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
        kills = _oom_kills(memory)
    finally:
        for folder in cgroups:
            _empty_and_remove(folder)
    assert probe.stdout.split() == ["local[1]", "1g"], f"not sized for the pod: {probe.stdout} {probe.stderr}"
    assert kills == 0, f"a process was killed for memory under the 2 GiB limit:\n{done.stdout[-3000:]}"
    assert done.returncode == 0, (f"a chapter failed, or differs from its committed outputs, under Binder's "
                                  f"settings:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
