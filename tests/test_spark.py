from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from helpers import spark as spark_helpers
from helpers.paths import work_dir
from tests.conftest import run_python


def test_target_defaults_to_local_mode_on_every_core() -> None:
    target = spark_helpers.spark_target({})
    assert target.kind == "local"
    assert target.url.startswith("local[") and target.url != "local[0]"


def test_spark_master_selects_a_cluster() -> None:
    target = spark_helpers.spark_target({"SPARK_MASTER": "spark://127.0.0.1:7077"})
    assert (target.kind, target.url) == ("cluster", "spark://127.0.0.1:7077")


def test_spark_remote_wins_and_must_be_a_connect_url() -> None:
    both = {"SPARK_REMOTE": "sc://127.0.0.1:15002", "SPARK_MASTER": "spark://127.0.0.1:7077"}
    assert spark_helpers.spark_target(both).kind == "connect"
    with pytest.raises(ValueError, match="sc://host:15002"):
        spark_helpers.spark_target({"SPARK_REMOTE": "http://127.0.0.1:15002"})


def test_local_config_has_the_shared_data_layout_and_keeps_files_in_the_work_dir(monkeypatch) -> None:
    monkeypatch.delenv(spark_helpers.PARTITIONS_ENV, raising=False)
    config = spark_helpers.session_config(spark_helpers.SparkTarget("local", "local[8]"), "t")
    assert config["spark.sql.shuffle.partitions"] == "4"
    assert config["spark.default.parallelism"] == "2"
    assert config["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert config["spark.ui.showConsoleProgress"] == "false"
    for key in ("spark.sql.warehouse.dir", "spark.local.dir"):
        assert Path(config[key]).is_relative_to(work_dir())
    assert "log4j2.properties" in config["spark.driver.extraJavaOptions"]


def test_on_binder_the_spark_ui_is_served_through_jupyterlab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(spark_helpers.PROXY_PREFIX_ENV, "/user/learner-abc/")
    config = spark_helpers.session_config(spark_helpers.SparkTarget("local", "local[2]"), "t")
    assert config["spark.ui.proxyBase"] == f"/user/learner-abc/proxy/{config['spark.ui.port']}"
    monkeypatch.delenv(spark_helpers.PROXY_PREFIX_ENV)
    assert "spark.ui.proxyBase" not in spark_helpers.session_config(spark_helpers.SparkTarget("local", "local[2]"), "t")


def test_cluster_config_leaves_parallelism_to_the_cluster() -> None:
    config = spark_helpers.session_config(spark_helpers.SparkTarget("cluster", "spark://h:7077"), "t")
    assert config["spark.master"] == "spark://h:7077"
    assert "spark.sql.shuffle.partitions" not in config
    assert "spark.ui.port" not in config


def test_cores_can_be_forced_and_a_bad_value_is_refused() -> None:
    assert spark_helpers.spark_target({spark_helpers.CORES_ENV: "8"}).url == "local[8]"
    assert spark_helpers.local_cores({}) == spark_helpers.available_cores()
    for bad in ("eight", "0", "-2", "2.5"):
        with pytest.raises(ValueError, match="CURRICULUM_CORES.*whole number"):
            spark_helpers.spark_target({spark_helpers.CORES_ENV: bad})


@pytest.mark.parametrize(("own", "files", "expected"), [
    ("0::/pod\n", {"pod/cpu.max": "150000 100000\n"}, 2),  # cgroup v2, a pod limited to 1.5 CPUs
    ("0::/\n", {"cpu.max": "max 100000\n"}, None),  # v2 in a container's own namespace, no limit
    ("4:cpu,cpuacct:/pod\n1:memory:/pod\n", {"cpu/pod/cpu.cfs_quota_us": "100000\n",
                                               "cpu/pod/cpu.cfs_period_us": "100000\n"}, 1),  # v1, one CPU
    ("4:cpu,cpuacct:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    (None, {}, None),  # no cgroups at all (macOS)
])
def test_a_container_cpu_limit_caps_the_cores(tmp_path: Path, own: str | None, files: dict[str, str],
                                              expected: int | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    if own is not None:
        (tmp_path / "self").write_text(own)
    machine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    found = spark_helpers.available_cores(tmp_path, tmp_path / "self")
    assert found == (min(expected, machine) if expected else machine)


@pytest.mark.parametrize("cores", ["1", "2", "4", "8", "64"])
def test_the_data_layout_does_not_follow_the_cores(cores: str) -> None:
    assert spark_helpers.data_layout({spark_helpers.CORES_ENV: cores}) == {
        "spark.default.parallelism": "2", "spark.sql.shuffle.partitions": "4"}


def test_the_machine_layout_follows_the_cores() -> None:
    machine = {spark_helpers.PARTITIONS_ENV: "machine"}
    assert spark_helpers.data_layout({**machine, spark_helpers.CORES_ENV: "8"}) == {
        "spark.default.parallelism": "8", "spark.sql.shuffle.partitions": "16"}
    assert spark_helpers.data_layout({**machine, spark_helpers.CORES_ENV: "1"})["spark.default.parallelism"] == "2"


def test_shuffle_partitions_is_two_per_core() -> None:
    assert spark_helpers.shuffle_partitions(2) == 4
    assert spark_helpers.shuffle_partitions(1) == 2
    assert spark_helpers.shuffle_partitions(8) == 16


def test_free_port_skips_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert spark_helpers.free_port(start=taken, attempts=5) != taken


def test_session_applies_the_laptop_settings(spark) -> None:
    assert spark.conf.get("spark.sql.shuffle.partitions") == "4"
    assert spark.sparkContext.defaultParallelism == 2
    assert spark.range(1000).rdd.getNumPartitions() == 2
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark_helpers.ui_url(spark).startswith("http://127.0.0.1:")
    assert not spark_helpers.is_connect(spark)
    assert spark.range(10).count() == 10


def test_session_start_prints_nothing_from_the_jvm(tmp_path: Path) -> None:
    """JVM console output would differ between papermill and nbval runs; it must go to the log."""
    done = run_python(
        "from helpers.spark import spark_session, log_path\n"
        "s = spark_session('quiet-test')\n"
        "s.range(1000).selectExpr('id % 3 AS k').groupBy('k').count().collect()\n"
        "print(log_path().exists())\n"
        "s.stop()\n",
        env={"CURRICULUM_WORK_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "True"
    assert done.stderr.strip() == ""


def test_task_slots_of_a_local_session_are_its_cores(spark) -> None:
    from helpers.spark import spark_target, task_slots

    if spark_target().kind != "local":
        pytest.skip("the session under test is not local")
    assert task_slots(spark) == (os.cpu_count() or 1)


def test_checkpoint_dir_is_inside_the_work_dir() -> None:
    assert Path(spark_helpers.checkpoint_dir("q1")).is_relative_to(work_dir("checkpoints"))


def test_the_class_data_archive_belongs_to_one_java_and_one_spark(tmp_path: Path) -> None:
    home = tmp_path / "jdk"
    archive = spark_helpers.class_data_archive(home, 17, folder=tmp_path)
    assert archive.parent == tmp_path and archive.name.startswith("spark-driver-java17-")
    assert spark_helpers.class_data_archive(home, 21, folder=tmp_path) != archive
    assert spark_helpers.class_data_archive(tmp_path / "other-jdk", 17, folder=tmp_path) != archive
    assert spark_helpers.class_archive_options(home, 17, {}, folder=tmp_path) == "", "no archive yet: no option"
    archive.write_bytes(b"archive")
    assert spark_helpers.class_archive_options(home, 17, {}, folder=tmp_path) == (
        f" -XX:SharedArchiveFile={archive} -Xshare:auto")
    assert spark_helpers.class_archive_options(home, 17, {spark_helpers.CDS_ENV: "1"}, folder=tmp_path) == ""


def test_a_failed_archiving_run_leaves_nothing_and_says_so(capsys: pytest.CaptureFixture) -> None:
    written = spark_helpers.archive_classes(workload="raise SystemExit('the archiving workload broke')")
    assert written is None
    said = capsys.readouterr().err
    assert "No class-data archive for Java" in said and "the archiving workload broke" in said, said
    java = __import__("helpers.java", fromlist=["ensure_java"]).ensure_java()
    assert not list(spark_helpers.class_data_archive(java.home, java.version).parent.glob("*.partial"))


def test_the_driver_maps_the_class_data_archive_make_env_wrote() -> None:
    from helpers.java import ensure_java

    java = ensure_java()
    archive = spark_helpers.class_data_archive(java.home, java.version)
    if not archive.exists():
        assert os.environ.get("CI", "").lower() not in ("true", "1", "yes"), f"make env wrote no {archive}"
        pytest.skip(f"no class-data archive here ({archive}): `python -m helpers.spark --archive-classes` writes it")
    done = run_python(
        "from helpers.spark import spark_session\n"
        "s = spark_session('archive-test')\n"
        "jvm = s.sparkContext._jvm\n"
        "print(list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))\n"
        "print(jvm.java.lang.System.getProperty('java.vm.info'))\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"-XX:SharedArchiveFile={archive}" in done.stdout
    assert "sharing" in done.stdout.splitlines()[-1]
