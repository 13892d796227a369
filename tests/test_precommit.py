"""The repository's own pre-commit hooks (.pre-commit-config.yaml) pass on every file git tracks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _is_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve() == ROOT.resolve()


@pytest.mark.skipif(not _is_git_checkout(), reason="not a git checkout: pre-commit checks the files git tracks")
def test_pre_commit_hooks_pass(tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pre-commit is not installed in this environment")
    # The hooks are `language: system`: they run `ruff` and `python` from PATH. Put this interpreter's
    # scripts first, so `make test` uses the project's tools without an activated environment.
    scripts = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(scripts), os.environ.get("PATH", "")]),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PRE_COMMIT_COLOR": "never",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", "--show-diff-on-failure"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"pre-commit run --all-files failed:\n{done.stdout}\n{done.stderr}"
