"""``make bench``: the curriculum's performance claims, measured side by side in one run.

    python -m helpers.bench                           # everything; report in .work/bench/report.md
    python -m helpers.bench --skip-notebooks          # leave out the per-notebook timings
    python -m helpers.bench --sizes 10000 100000      # a quicker MLlib vs scikit-learn sweep

Each comparison runs in fresh processes (see :mod:`helpers.bench_workloads`) one after the other, so
the two sides of a ratio see the same machine. The report is Markdown with PNG figures beside it;
the raw numbers are in ``results.json``. Numbers belong here, never in timed tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers.paths import display_path, notebooks_dir, work_dir

DEFAULT_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
FORMAT_ROWS = 5_000_000


def result_file(out_dir: Path, name: str, *args: str) -> Path:
    """Where one measurement writes its JSON: a flat file name made of the workload and its arguments (a path
    argument contributes its last part only, so the name never points into another folder)."""
    parts = [name, *(Path(a).name if "/" in a else a.lstrip("-") for a in args)]
    return out_dir / (re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(parts)).strip("-") + ".json")


def _measure(name: str, out_dir: Path, *args: str) -> dict[str, Any]:
    out = result_file(out_dir, name, *args)
    print(f"  measuring {name} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "helpers.bench_workloads", name, "--out", str(out), *args], check=True)
    return json.loads(out.read_text())


def power_law(sizes: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``seconds = a * size ** b`` in log-log space; returns ``(a, b)``."""
    if len(sizes) < 2:
        raise ValueError("a growth exponent needs at least two sizes")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    return math.exp(mean_y - b * mean_x), b


def crossover(sizes: Sequence[float], slow_small: Sequence[float], fast_small: Sequence[float]) -> float | None:
    """The size where ``slow_small`` (slower at small sizes) becomes faster than ``fast_small``.

    Interpolated in log-log space between the first measured pair of sizes where the order flips;
    ``None`` when it never flips within the measured sizes."""
    for i in range(1, len(sizes)):
        before = slow_small[i - 1] - fast_small[i - 1]
        after = slow_small[i] - fast_small[i]
        if before > 0 >= after:
            d0 = math.log(slow_small[i - 1]) - math.log(fast_small[i - 1])
            d1 = math.log(slow_small[i]) - math.log(fast_small[i])
            share = d0 / (d0 - d1) if d0 != d1 else 1.0
            return math.exp(math.log(sizes[i - 1]) + share * (math.log(sizes[i]) - math.log(sizes[i - 1])))
    return None


def extrapolated_crossover(fit_slow: tuple[float, float], fit_fast: tuple[float, float]) -> float | None:
    """Where two power laws meet (``a1 n^b1 = a2 n^b2``), if the slower one grows more slowly."""
    (a1, b1), (a2, b2) = fit_slow, fit_fast
    if b2 <= b1:
        return None if a1 > a2 else 0.0
    return (a1 / a2) ** (1 / (b2 - b1))


def _notebook_seconds(out_dir: Path) -> list[dict[str, Any]]:
    from helpers import runner

    results = runner.run(runner.discover(notebooks_dir()), out_dir / "notebooks", "default", refresh=False,
                         timeout=900)
    return [{"notebook": r.notebook, "status": r.status, "seconds": r.seconds} for r in results]


def _serving(out_dir: Path) -> dict[str, Any] | None:
    try:
        from helpers import serving  # noqa: F401  (notebook 21's model server)
    except ImportError:
        return None
    measure = getattr(serving, "benchmark", None)
    return measure(out_dir) if measure else None


def collect(out_dir: Path, sizes: Sequence[int], notebooks: bool, format_rows: int = FORMAT_ROWS) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
    }
    print("Tuned vs default Spark session", flush=True)
    results["session"] = [_measure("session", out_dir, "--kind", kind) for kind in ("tuned", "default")]
    print("A chapter's set-up with vs without the class-data archive", flush=True)
    results["startup"] = _measure("startup", out_dir)
    print("Arrow vs no Arrow in toPandas", flush=True)
    results["arrow"] = _measure("arrow", out_dir)
    print("Parquet vs CSV", flush=True)
    results["formats"] = _measure("formats", out_dir, "--rows", str(format_rows), "--folder", str(out_dir / "data"))
    print("MLlib vs scikit-learn", flush=True)
    results["scaling"] = [_measure("scaling", out_dir, "--rows", str(n)) for n in sizes]
    serving = _serving(out_dir)
    if serving:
        results["serving"] = serving
    if notebooks:
        print("Every notebook at the default scale", flush=True)
        results["notebooks"] = _notebook_seconds(out_dir)
    results["bench_s"] = time.perf_counter() - started
    return results


def _figures(results: dict[str, Any], out_dir: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.plots import use_style

    use_style()
    figures = []
    scaling = results["scaling"]
    sizes = [r["rows"] for r in scaling]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    left.loglog(sizes, [r["mllib_fit_s"] for r in scaling], "o-", label="MLlib LogisticRegression")
    left.loglog(sizes, [r["sklearn_fit_s"] for r in scaling], "s-", label="scikit-learn LogisticRegression")
    left.loglog(sizes, [r["sklearn_fit_s"] + r["handoff_s"] for r in scaling], "s--",
                label="scikit-learn incl. the Parquet hand-off")
    left.set(xlabel="training rows", ylabel="fit seconds", title="Training time vs rows")
    left.legend()
    right.semilogx(sizes, [r["peak_total_bytes"] / 2**30 for r in scaling], "o-", label="peak driver memory (GiB)")
    right.set(xlabel="training rows", ylabel="GiB", title="Peak driver memory (Python + JVM)")
    fig.savefig(out_dir / "scaling.png", dpi=110)
    figures.append(("MLlib vs scikit-learn", "scaling.png"))
    plt.close(fig)

    if results.get("notebooks"):
        rows = results["notebooks"]
        fig, ax = plt.subplots(figsize=(10, 0.3 * len(rows) + 1.5), layout="constrained")
        ax.barh([r["notebook"].removesuffix(".ipynb") for r in rows][::-1], [r["seconds"] for r in rows][::-1])
        ax.set(xlabel="seconds at the default scale", title="Seconds per notebook")
        fig.savefig(out_dir / "notebooks.png", dpi=110)
        figures.append(("Seconds per notebook", "notebooks.png"))
        plt.close(fig)
    return figures


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def failed_notebooks(results: dict[str, Any]) -> list[str]:
    """The notebooks of ``results`` that did not run through (empty when the timings were left out)."""
    return [r["notebook"] for r in results.get("notebooks", []) if r["status"] != "ok"]


def _startup_rows(startup: dict[str, Any] | None) -> list[str]:
    """The report's rows for a chapter's set-up without vs with the driver's class-data archive."""
    if not startup or not startup.get("archive"):
        return []
    return [
        f"| a chapter's `helpers.start(...)` without vs with the class-data archive (fresh process each, median of "
        f"{startup['repeats']}) | {startup['without_start_s']:.2f} s | {startup['with_start_s']:.2f} s "
        f"| {startup['without_start_s'] / startup['with_start_s']:.1f}x |",
        f"| its first job (a pandas frame through Arrow, grouped, back) without vs with the archive "
        f"| {startup['without_first_job_s']:.2f} s | {startup['with_first_job_s']:.2f} s "
        f"| {startup['without_first_job_s'] / startup['with_first_job_s']:.1f}x |",
    ]


def report(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``report.md`` (and its figures) from ``results``; returns its path."""
    tuned, default = results["session"]
    arrow, formats, scaling = results["arrow"], results["formats"], results["scaling"]
    sizes = [r["rows"] for r in scaling]
    mllib = [r["mllib_fit_s"] for r in scaling]
    sklearn = [r["sklearn_fit_s"] for r in scaling]
    lines = [
        "# Benchmark report", "",
        f"Measured {results['when']} on {results['machine']}; the whole run took {results['bench_s']:.0f} s.",
        "Each ratio compares two things measured one after the other in the same run (median of repeats).", "",
        "## Ratios", "",
        "| comparison | A | B | A / B |", "|---|---:|---:|---:|",
        f"| default `SparkSession` vs the helpers' tuned session (join + aggregate, all flights) "
        f"| {default['seconds']:.2f} s | {tuned['seconds']:.2f} s | {default['seconds'] / tuned['seconds']:.1f}x |",
        *_startup_rows(results.get("startup")),
        f"| `toPandas` without vs with Arrow ({arrow['rows']:,} rows x {arrow['columns']} columns) "
        f"| {arrow['no_arrow_s']:.2f} s | {arrow['arrow_s']:.2f} s | {arrow['no_arrow_s'] / arrow['arrow_s']:.1f}x |",
        f"| CSV vs Parquet scan, same query ({formats['rows']:,} rows) "
        f"| {formats['csv_s']:.2f} s | {formats['parquet_s']:.2f} s | {formats['csv_s'] / formats['parquet_s']:.1f}x |",
        f"| CSV with `inferSchema` vs Parquet | {formats['csv_infer_s']:.2f} s | {formats['parquet_s']:.2f} s "
        f"| {formats['csv_infer_s'] / formats['parquet_s']:.1f}x |",
        f"| Parquet full scan vs reading the same bytes raw ({formats['parquet_bytes'] / 2**20:.0f} MiB) "
        f"| {formats['parquet_full_scan_s']:.2f} s | {formats['raw_read_s']:.3f} s "
        f"| {formats['parquet_full_scan_s'] / formats['raw_read_s']:.0f}x |",
        "",
        f"Shuffle partitions: default session {default['shuffle_partitions']}, tuned {tuned['shuffle_partitions']}"
        + ("; both sessions run with adaptive query execution on (Spark's default), which coalesces the default's "
           "small shuffle partitions at run time, so a tuned partition count gains little on one machine — notebook "
           "25 shows what it costs with AQE off. " if default.get("adaptive") and tuned.get("adaptive") else ". ")
        + f"On disk: CSV {formats['csv_bytes'] / 2**20:.0f} MiB vs Parquet {formats['parquet_bytes'] / 2**20:.0f} MiB. "
        "Raw bytes were read from the page cache (warm), so the last row is the decoding cost per byte.", "",
        "## MLlib vs scikit-learn: logistic regression from 10 thousand rows up", "",
        "Data: real flights (label: arrival more than 15 minutes late; month, scheduled hour, distance, weather at "
        "the origin, carrier and origin one-hot), split 80/20 by flight; the training rows are drawn with "
        "replacement from the real training flights (a seeded hash of the row number), so every size has the "
        "same distribution. Both libraries run the same number of L-BFGS iterations on the same standardised "
        "columns; ROC AUC is on the same held-out real flights.", "",
        "| rows | MLlib fit | scikit-learn fit | hand-off (Parquet → NumPy) | MLlib / sklearn | AUC MLlib "
        "| AUC sklearn | peak memory |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in scaling:
        lines.append(f"| {r['rows']:,} | {r['mllib_fit_s']:.2f} s | {r['sklearn_fit_s']:.2f} s "
                     f"| {r['handoff_s']:.2f} s "
                     f"| {r['mllib_fit_s'] / r['sklearn_fit_s']:.2f} | {r['mllib_auc']:.4f} | {r['sklearn_auc']:.4f} "
                     f"| {_gib(r['peak_total_bytes'])} |")
    lines.append("")
    if len(sizes) >= 2:
        fit_mllib, fit_sklearn = power_law(sizes, mllib), power_law(sizes, sklearn)
        tail = slice(-2, None)
        lines += [
            f"Cost growth (time ~ rows^b, least squares over all sizes): MLlib b = {fit_mllib[1]:.2f}, "
            f"scikit-learn b = {fit_sklearn[1]:.2f}; over the two largest sizes: MLlib "
            f"{power_law(sizes[tail], mllib[tail])[1]:.2f}, "
            f"scikit-learn {power_law(sizes[tail], sklearn[tail])[1]:.2f}.",
        ]
        measured = crossover(sizes, mllib, sklearn)
        if measured is not None:
            lines.append(f"Crossover: MLlib becomes faster than scikit-learn at about {measured:,.0f} rows (measured).")
        else:
            projected = extrapolated_crossover(fit_mllib, fit_sklearn)
            where = (f"the fitted power laws meet at about {projected:,.0f} rows (extrapolated)"
                     if projected else "the fitted power laws do not meet: MLlib's fixed cost is never repaid here")
            lines.append(f"Crossover: none within the measured sizes on this machine; {where}. On one machine "
                         "scikit-learn wins while the data fit in memory; MLlib's case is data that do not fit, "
                         "and more cores than one machine has.")
        largest = scaling[-1]
        lines += ["", f"Largest run: {largest['rows']:,} rows, MLlib fit {largest['mllib_fit_s']:.1f} s, "
                  f"scikit-learn fit {largest['sklearn_fit_s']:.1f} s "
                  f"(+{largest['handoff_s']:.1f} s to hand the rows over as Parquet), "
                  f"peak driver memory {_gib(largest['peak_total_bytes'])} (of which Python "
                  f"{_gib(largest['peak_python_bytes'])}; "
                  f"during the MLlib fit {_gib(largest['peak_mllib_bytes'])}).", ""]
    if results.get("serving"):
        s = results["serving"]
        lines += ["## REST serving (notebook 21's server)", "",
                  f"{s['requests']:,} requests: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                  f"{s['requests_per_s']:.0f} requests/s, errors {s['errors']}.", ""]
    else:
        lines += ["## REST serving", "", "Not measured: `helpers.serving` (notebook 21) is not present yet.", ""]
    if results.get("notebooks"):
        lines += ["## Seconds per notebook (default scale)", "", "| notebook | status | seconds |", "|---|---|---:|"]
        lines += [f"| {r['notebook']} | {r['status']} | {r['seconds']:.1f} |" for r in results["notebooks"]]
        ok = [r for r in results["notebooks"] if r["status"] == "ok"]
        lines += ["", f"Total: {sum(r['seconds'] for r in ok):.0f} s over the {len(ok)} notebooks that ran through.",
                  ""]
        failed = failed_notebooks(results)
        if failed:
            lines += [f"**{len(failed)} notebook(s) did not run through** ({', '.join(failed)}): their executed "
                      "copies in `notebooks/` beside this report show the error; their seconds are not timings.", ""]
    for title, file in _figures(results, out_dir):
        lines += [f"![{title}]({file})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--format-rows", type=int, default=FORMAT_ROWS, help="rows of the Parquet vs CSV files")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from results.json")
    args = parser.parse_args(argv)
    out_dir = args.out or work_dir("bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads((out_dir / "results.json").read_text())
    else:
        results = collect(out_dir, sorted(args.sizes), not args.skip_notebooks, args.format_rows)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    path = report(results, out_dir)
    print(f"Report: {display_path(path)}")
    failed = failed_notebooks(results)
    if failed:
        print(f"FAILED: {len(failed)} notebook(s) did not run through: {', '.join(failed)} "
              f"(executed copies in {display_path(out_dir / 'notebooks')})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
