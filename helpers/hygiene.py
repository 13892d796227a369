"""What a committed notebook must not store, checked before the commit (a pre-commit hook)::

    python -m helpers.hygiene notebooks/03-linear-regression.ipynb ...

A code cell fails when it stores an error (unless the cell is tagged ``raises-exception``), a stderr
stream (JVM or library chatter, which a fresh run under nbval would not reproduce), or an absolute
path of the machine it ran on, in its source or its outputs: the project root, a home folder
(``/home/<user>/``, ``/Users/<user>/``, ``C:\\Users\\<user>\\``, ``/root/``) or a temporary folder.
``helpers.display_path`` prints paths relative to the project for exactly this reason. Any cell, markdown
included, fails when its source or outputs hold something shaped like a credential (``CREDENTIAL``): a cloud or
code-host token, a private key, an account key in a connection string, a password in a URL, or a literal
assigned to a name such as ``password``, ``secret``, ``token`` or ``api_key``. Secrets come from the
environment (notebook 24), never from a notebook.
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

#: What a credential looks like: the shapes of well-known tokens, and a literal of 8+ characters assigned to a
#: name that says "secret". A placeholder (``"…"``, ``"<your token>"``, ``os.environ[...]``) does not match.
CREDENTIAL = re.compile(
    r"dapi[0-9a-f]{32}"                                   # Azure Databricks personal access token
    r"|AKIA[0-9A-Z]{16}"                                  # AWS access key id
    r"|gh[pousr]_[0-9A-Za-z]{36}|github_pat_\w{22,}"      # GitHub tokens
    r"|xox[baprs]-[0-9A-Za-z-]{10,}"                      # Slack tokens
    r"|-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY"  # private keys
    r"|AccountKey=[A-Za-z0-9+/]{20,}"                     # Azure storage connection strings
    r"|SharedAccessSignature=sig=|[?&]sig=[A-Za-z0-9%+/]{20,}"  # Azure shared access signatures
    r"|\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s:@'\"]{6,}@"   # a password in a URL (scheme://user:password@host)
    r"|(?i:\b\w*(?:password|passwd|secret|token|api_?key|access_?key)\w*['\"]?\s*[:=]\s*['\"][^'\"\s<>…{}]{8,}['\"])"
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
        outputs = cell.get("outputs", []) if cell.get("cell_type") == "code" else []
        texts = [_text(cell.get("source")), *(t for output in outputs for t in _output_texts(output))]
        if any(CREDENTIAL.search(text) for text in texts):
            problems.append(f"cell {index}: something shaped like a credential (read secrets from the environment)")
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
