"""What a committed notebook must not store, checked before the commit (a pre-commit hook)::

    python -m helpers.hygiene notebooks/03-linear-regression.ipynb ...

A code cell fails when it stores an error (unless the cell is tagged ``raises-exception``), a stderr
stream (JVM or library chatter, which a fresh run under nbval would not reproduce), or an absolute
path of the machine it ran on, in its source or its outputs: the project root, a home folder
(``/home/<user>/``, ``/Users/<user>/``, ``C:\\Users\\<user>\\``, ``/root/``) or a temporary folder.
``helpers.display_path`` prints paths relative to the project for exactly this reason.
Exit status 0 when every notebook is clean, 1 otherwise, with one line per finding.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from helpers.paths import project_root

_MACHINE_PATH = re.compile(
    r"(?<![\w.])(?:/(?:root|home/[\w.-]+|Users/[\w.-]+|tmp/[\w.-]+|private/var)/|[A-Za-z]:\\Users\\)"
)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _output_texts(output: dict[str, Any]) -> Iterator[str]:
    if "text" in output:
        yield _text(output["text"])
    for mime, payload in (output.get("data") or {}).items():
        if mime.startswith("text/") or mime == "application/json":
            yield json.dumps(payload) if isinstance(payload, dict) else _text(payload)
    yield "\n".join(output.get("traceback", []))


def _machine_path(text: str, root: str) -> str | None:
    if root and root + "/" in text:
        return root + "/"
    found = _MACHINE_PATH.search(text)
    return found.group(0) if found else None


def check(path: Path, root: Path | None = None) -> list[str]:
    """The problems of one notebook, one line each (empty when it is clean)."""
    root_text = (root or project_root()).as_posix().rstrip("/")
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return [f"cannot be read as a notebook: {error}"]
    problems = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs", [])
        expects_error = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        for output in outputs:
            if output.get("output_type") == "error" and not expects_error:
                problems.append(f"cell {index}: stored error {output.get('ename')}: {output.get('evalue', '')[:80]}")
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"cell {index}: stored stderr output: {_text(output.get('text'))[:80]!r}")
        for text in [_text(cell.get("source")), *(t for output in outputs for t in _output_texts(output))]:
            found = _machine_path(text, root_text)
            if found:
                problems.append(f"cell {index}: absolute path of this machine {found!r} (use helpers.display_path)")
                break
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    paths = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    bad = 0
    for path in paths:
        problems = check(path)
        bad += bool(problems)
        for problem in problems:
            print(f"{path}: {problem}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
