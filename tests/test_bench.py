"""The benchmark's arithmetic (growth exponent, crossover) and one real measurement at a tiny size."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import bench

ROOT = Path(__file__).resolve().parents[1]


def test_power_law_recovers_a_known_exponent() -> None:
    sizes = [1e4, 1e5, 1e6, 1e7]
    a, b = bench.power_law(sizes, [0.002 * n**0.9 for n in sizes])
    assert b == pytest.approx(0.9)
    assert a == pytest.approx(0.002)


def test_power_law_needs_two_sizes() -> None:
    with pytest.raises(ValueError, match="two sizes"):
        bench.power_law([1e4], [1.0])


def test_crossover_is_interpolated_where_the_order_flips() -> None:
    sizes = [1e4, 1e5, 1e6, 1e7]
    slow_small = [10.0, 12.0, 20.0, 30.0]   # large fixed cost, slow growth
    fast_small = [0.1, 1.0, 10.0, 100.0]    # linear
    at = bench.crossover(sizes, slow_small, fast_small)
    assert at is not None and 1e6 < at < 1e7
    assert bench.crossover(sizes, [10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0]) is None


def test_extrapolated_crossover_solves_the_two_power_laws() -> None:
    slow, fast = (1.0, 0.5), (0.001, 1.0)
    n = bench.extrapolated_crossover(slow, fast)
    assert n is not None
    assert slow[0] * n ** slow[1] == pytest.approx(fast[0] * n ** fast[1])
    assert bench.extrapolated_crossover((1.0, 1.0), (0.1, 0.5)) is None


def test_a_tiny_scaling_measurement_gives_the_same_model_in_both_libraries(tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    subprocess.run([sys.executable, "-m", "helpers.bench_workloads", "scaling", "--rows", "20000", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert result["rows"] == 20000
    assert result["mllib_auc"] > 0.6, "the delay features carry signal on real flights"
    assert math.isclose(result["mllib_auc"], result["sklearn_auc"], abs_tol=0.01), result
    assert result["peak_total_bytes"] > result["peak_python_bytes"] > 0


def test_result_files_stay_in_the_output_folder(tmp_path) -> None:
    from helpers.bench import result_file

    path = result_file(tmp_path, "formats", "--rows", "5000000", "--folder", str(tmp_path / "data"))
    assert path.parent == tmp_path
    assert path.name == "formats-rows-5000000-folder-data.json"
    assert result_file(tmp_path, "arrow").name == "arrow.json"


def test_failed_notebooks_names_those_that_did_not_run_through() -> None:
    from helpers.bench import failed_notebooks

    results = {"notebooks": [{"notebook": "00-a.ipynb", "status": "ok", "seconds": 3.0},
                             {"notebook": "01-b.ipynb", "status": "failed", "seconds": 0.1}]}
    assert failed_notebooks(results) == ["01-b.ipynb"]
    assert failed_notebooks({}) == []


def test_startup_rows_compare_without_and_with_the_archive() -> None:
    from helpers.bench import _startup_rows

    rows = _startup_rows({"archive": True, "repeats": 5, "without_start_s": 6.0, "with_start_s": 4.0,
                          "without_first_job_s": 3.0, "with_first_job_s": 1.5})
    assert len(rows) == 2
    assert "| 6.00 s | 4.00 s | 1.5x |" in rows[0] and "median of 5" in rows[0]
    assert "| 3.00 s | 1.50 s | 2.0x |" in rows[1]
    assert _startup_rows({"archive": False}) == [] and _startup_rows(None) == []
