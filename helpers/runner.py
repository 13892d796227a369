"""Execute the curriculum's notebooks in order with papermill, the way an instructor regenerates them.

    python -m helpers.runner                 # every notebook, default scale, into .work/runs/<time>/
    python -m helpers.runner --scale full    # every row of every dataset
    python -m helpers.runner --only 01 02    # some chapters (by number or name fragment)
    python -m helpers.runner --refresh       # re-execute and write the committed notebooks back

Prints a line per notebook as it goes and a table (notebook, status, seconds) at the end; exits
non-zero if any notebook failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from helpers.datasets import SCALES, scale_problem
from helpers.paths import display_path, notebooks_dir, work_dir

CHAPTER = re.compile(r"^\d\d[a-z]?-.+\.ipynb$")


@dataclass
class Result:
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    error: str = ""


def discover(folder: Path, only: Sequence[str] = ()) -> list[Path]:
    """The chapter notebooks (``NN-name.ipynb``) in ``folder``, in curriculum order."""
    found = sorted(p for p in folder.glob("*.ipynb") if CHAPTER.match(p.name))
    if only:
        found = [p for p in found if any(p.name.startswith(o) or o in p.stem for o in only)]
    return found


def clean_metadata(path: Path) -> None:
    """Drop run-specific metadata (papermill timings, paths) so a refreshed notebook diffs cleanly."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("papermill", None)
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)


def local_socket_kernels() -> type:
    """A kernel manager whose kernels talk over local (IPC) sockets instead of TCP ports on 127.0.0.1: nothing
    listens on the network, and ipykernel has no reason to print its "running over TCP without encryption"
    warning into the runner's output."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    class LocalSocketKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            folder = Path(tempfile.gettempdir()) / f"curriculum-kernels-{os.getuid()}"
            folder.mkdir(mode=0o700, exist_ok=True)
            self.transport = "ipc"
            self.ip = str(folder / f"kernel-{os.getpid()}")  # sockets are <ip>-<n>, removed at shutdown

    return LocalSocketKernelManager


def execute(source: Path, target: Path, scale: str, timeout: int, progress: str | None = None) -> Result:
    """Execute ``source`` into ``target``; with ``progress`` (a label), a progress bar over its cells on stderr."""
    import papermill as pm

    started = time.perf_counter()
    parameters = {} if scale == "default" else {"scale": scale}
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name="python3",
            kernel_manager_class=local_socket_kernels(),
            cwd=str(source.parent),
            progress_bar={"desc": progress, "leave": False} if progress else False,
            log_output=False,
            execution_timeout=timeout,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError, timeouts, kernel deaths...
        message = str(getattr(exc, "ename", "") or type(exc).__name__)
        detail = str(getattr(exc, "evalue", "") or exc).strip().splitlines()
        return Result(source.name, "failed", time.perf_counter() - started, f"{message}: {detail[0] if detail else ''}")
    return Result(source.name, "ok", time.perf_counter() - started)


def table(results: Sequence[Result]) -> str:
    width = max([len("notebook"), *(len(r.notebook) for r in results)])
    lines = [f"{'notebook':<{width}}  {'status':<6}  {'seconds':>8}", f"{'-' * width}  ------  {'-' * 8}"]
    lines += [f"{r.notebook:<{width}}  {r.status:<6}  {r.seconds:>8.1f}" for r in results]
    total = sum(r.seconds for r in results)
    passed = sum(r.status == "ok" for r in results)
    lines.append(f"{'-' * width}  ------  {'-' * 8}")
    lines.append(f"{f'{passed} of {len(results)} ok':<{width}}  {'':<6}  {total:>8.1f}")
    return "\n".join(lines)


def run(notebooks: Sequence[Path], output_dir: Path, scale: str, refresh: bool, timeout: int) -> list[Result]:
    output_dir.mkdir(parents=True, exist_ok=True)
    if scale == "full":  # every row: partitions sized to this machine's cores (the kernels inherit it)
        from helpers.spark import PARTITIONS_ENV

        os.environ.setdefault(PARTITIONS_ENV, "machine")
    results = []
    bar = sys.stderr.isatty()  # on a terminal, a bar over each notebook's cells; in a log, a line per notebook
    for index, notebook in enumerate(notebooks, start=1):
        label = f"[{index}/{len(notebooks)}] {notebook.name} ..."
        if not bar:
            print(label, end=" ", flush=True)
        target = output_dir / notebook.name
        result = execute(notebook, target, scale, timeout, progress=label if bar else None)
        if result.status == "ok" and refresh:
            clean_metadata(target)
            notebook.write_text(target.read_text())
        print((f"{label} " if bar else "") + f"{result.status} ({result.seconds:.1f} s)"
              + (f" — {result.error}" if result.error else ""), flush=True)
        results.append(result)
    return results


def _scale(value: str) -> str:
    """``--scale``'s type: an unknown scale is refused with the valid ones listed (and the closest suggested)."""
    problem = scale_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.runner", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=_scale,
        default="default",
        metavar="{" + ",".join(SCALES) + "}",
        help="dataset scale (default: %(default)s)",
    )
    parser.add_argument("--only", nargs="*", default=(), help="notebook numbers or name fragments to run")
    parser.add_argument("--refresh", action="store_true", help="write executed notebooks back into notebooks/")
    parser.add_argument("--folder", type=Path, default=None, help="folder of notebooks (default: notebooks/)")
    parser.add_argument("--output-dir", type=Path, default=None, help="where executed copies go")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.refresh and args.scale != "default":
        parser.error("--refresh writes the committed notebooks, which are kept at the default scale")
    notebooks = discover(args.folder or notebooks_dir(), args.only)
    if not notebooks:
        print("No notebooks matched.", file=sys.stderr)
        return 2
    output_dir = args.output_dir or work_dir("runs", datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{args.scale}")
    print(f"Executing {len(notebooks)} notebook(s) at scale '{args.scale}' into {display_path(output_dir)}/")
    results = run(notebooks, output_dir, args.scale, args.refresh, args.timeout)
    print()
    print(table(results))
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        print(f"FAILED {r.notebook}: {r.error} (executed copy with the error: {display_path(output_dir / r.notebook)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
