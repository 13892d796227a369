"""tests/nbval_sanitize.cfg: nbval masks what legitimately differs between two runs, and nothing that must be compared.

nbval reads each ``regex:`` line with the ``replace:`` line right after it and applies them in file order with
``re.sub`` to the committed and to the fresh text of every output before comparing the two. The duration rule masks
only measured durations, which the notebooks print with a decimal fraction; whole numbers of seconds are settings or
labels, and a changed setting must fail the comparison.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import coalesce_streams, get_sanitize_patterns

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "nbval_sanitize.cfg"
#: Every number followed by a unit of time: what the duration rule once masked, and what it now looks through.
NUMBER_AND_UNIT = re.compile(r"\b\d+(\.\d+)? ?(ms|s|seconds)\b")
#: The whole numbers of seconds that committed outputs print, each a setting or a label, never a measurement.
SETTINGS_AND_LABELS = {
    r"train timeout \d+ s\b": "a job task's timeout_seconds (lab 25)",
    r"train stopped after \d+ s\b": "the same timeout, as the lab's check states it (lab 25)",
    r"^\d+ s on Spark, 2 trials at a time": "FLAML's time budget, TIME_BUDGET seconds (chapter 17)",
    r"\b\d+ of them 0s\b|\b0s among the \d+ highest scores": "the digit 0, plural (chapter 11)",
}


def _rules() -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(CONFIG)
    return [(parser.get(section, "regex"), parser.get(section, "replace")) for section in parser.sections()]


def sanitize(text: str) -> str:
    """What nbval compares for ``text``: every rule of the file applied in order."""
    for regex, replace in _rules():
        text = re.sub(regex, replace, text)
    return text


def test_every_rule_is_one_nbval_reads() -> None:
    """nbval does not use configparser: a rule whose ``replace:`` line does not follow its ``regex:`` line directly
    (a comment between them, say) would be dropped without a word."""
    rules = _rules()
    assert len(rules) >= 6
    assert get_sanitize_patterns(CONFIG.read_text()) == rules
    for regex, _ in rules:
        re.compile(regex)


# The forms the committed notebooks print, by chapter: (printed, what nbval compares).
MEASURED = [
    (  # 01
        "first count 1.27 s (reads and joins), second 0.13 s (from the cache)",
        "first count N s (reads and joins), second N s (from the cache)",
    ),
    (  # 04
        "requirements inferred: 31.2 s; requirements given: 2.0 s (16× the time)",
        "requirements inferred: N s; requirements given: N s (16× the time)",
    ),
    ("      LightGBM: 0.06 s to train, ROC AUC 0.7526", "      LightGBM: N s to train, ROC AUC 0.7526"),  # 08
    ("45 fits on Spark in 8.92 s; best {'svc__C': 100}", "45 fits on Spark in N s; best {'svc__C': 100}"),  # 09
    ("PCA, 10 components     training 4.54 s", "PCA, 10 components     training N s"),  # 11
    (  # 12
        "2 processes, gloo backend on the cpu: 10.01 s in all, of which training 2.52 s (one process: 1.42 s)",
        "2 processes, gloo backend on the cpu: N s in all, of which training N s (one process: N s)",
    ),
    ("embedded 1,501 reviews in 34.57 s: 23.03 ms per review", "embedded 1,501 reviews in N s: N s per review"),  # 14
    (  # 16
        "search took 41.90 s of wall time for 42.61 s of trial time",
        "search took N s of wall time for N s of trial time",
    ),
    (  # 19
        "driver (pandas)                0.63 s      51,503 rows/s",
        "driver (pandas)                N s      51,503 rows/s",
    ),
    ("answering on http://127.0.0.1:5100 after 4.78 s", "answering on http://127.0.0.1:PORT after N s"),  # 21
    (  # 23: a job run's history, as HTML
        "      <td>2026-12-06 10:42:55</td>\n      <td>0003.28 s</td>",
        "      <td>TIMESTAMP</td>\n      <td>N s</td>",
    ),
    ("0  2026-12-06 10:42:55  0003.28 s   ", "0  TIMESTAMP  N s   "),  # 23: a job run's history, as text
    ("1 partition: 0.84 s  2 partitions: 0.61 s", "1 partition: N s  2 partitions: N s"),  # 25
    ("local[1]: 0.89 s", "local[1]: N s"),  # 25
    ("quality        1 SUCCESS 2026-12-06 06:33:16 0019.61 s", "quality        1 SUCCESS TIMESTAMP N s"),  # 26
]

SETTINGS_OR_LABELS = [
    "flight_delay_retraining: 4 tasks, train timeout 900 s, schedule '0 0 3 * * ?' (UTC)",  # lab 25
    "ingest retried up to 2×, train stopped after 900 s",  # lab 25
    "10 s on Spark, 2 trials at a time: 23 trials, best learner lgbm",  # 17: the time budget
    "fitted on 1,058 training images of the digits 1-9; scored 448 test images, 38 of them 0s",  # 11
    "<th>0s among the 38 highest scores</th>",  # 11
    "train timeout 900.0 s",  # a setting written as a float is still a setting
    "timed out after 900 s (timeout_seconds)",  # helpers.jobs' report of a task that ran out of time
]


@pytest.mark.parametrize(("printed", "compared"), MEASURED)
def test_measured_durations_are_masked(printed: str, compared: str) -> None:
    assert sanitize(printed) == compared


@pytest.mark.parametrize("printed", SETTINGS_OR_LABELS)
def test_settings_and_labels_are_compared(printed: str) -> None:
    assert sanitize(printed) == printed


def test_two_runs_compare_equal_only_when_nothing_but_a_measurement_changed() -> None:
    assert sanitize("trained in one process in 1.42 s") == sanitize("trained in one process in 12.07 s")
    assert sanitize("embedded 1,501 reviews in 34.57 s: 23.03 ms per review") == sanitize(
        "embedded 1,501 reviews in 9.10 s: 6.06 ms per review"
    )
    assert sanitize("train timeout 900 s") != sanitize("train timeout 600 s")
    assert sanitize("10 s on Spark, 2 trials at a time") != sanitize("30 s on Spark, 2 trials at a time")


def _compared_texts(cell: nbformat.NotebookNode):
    """The strings of one cell that nbval sanitizes and compares: each stream (coalesced, as nbval does) and each
    data value that is text (nbval leaves images out)."""
    for output in coalesce_streams(cell.get("outputs", [])):
        if output.output_type == "stream":
            yield output.text
        for mime, value in (output.get("data") or {}).items():
            if isinstance(value, str) and not mime.startswith("image/"):
                yield value


def test_committed_outputs_print_each_duration_in_a_form_the_rule_knows() -> None:
    """A measured duration printed as a whole number ("took 3 s") would not be masked, so nbval would fail on the
    next run; a setting printed with decimals would be masked and so never compared. Every number with a unit of
    time in a committed output must either be masked or be a known setting or label."""
    notebooks = sorted(
        [
            *ROOT.glob("notebooks/*.ipynb"),
            *ROOT.glob("notebooks/labs/*.ipynb"),
            *ROOT.glob("notebooks/labs/solutions/*.ipynb"),
        ]
    )
    assert len(notebooks) > 20
    unknown, used = [], set()
    for path in notebooks:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for text in _compared_texts(cell):
                for line in sanitize(text).splitlines():
                    for match in NUMBER_AND_UNIT.finditer(line):
                        known = [
                            k
                            for k in SETTINGS_AND_LABELS
                            for m in re.finditer(k, line)
                            if m.start() <= match.start() and match.end() <= m.end()
                        ]
                        used.update(known)
                        if not known:
                            unknown.append(f"{path.relative_to(ROOT)} cell {index}: {match.group(0)!r} in {line!r}")
    assert not unknown, (
        "These numbers with a unit of time are not masked by tests/nbval_sanitize.cfg. A measured duration must be "
        'printed with a decimal fraction (f"{seconds:.2f} s") so that nbval masks it; a setting or a label must be '
        "added to SETTINGS_AND_LABELS in tests/test_nbval_sanitize.py:\n" + "\n".join(unknown)
    )
    unused = set(SETTINGS_AND_LABELS) - used
    assert not unused, f"no committed output prints these any more; remove them from SETTINGS_AND_LABELS: {unused}"
