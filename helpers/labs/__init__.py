"""Automatic checks for the labs in ``notebooks/labs/``.

A lab is a notebook with ``TODO`` cells: each holds a placeholder assignment such as ``rmse = ...`` that the
learner replaces with code. The cell after it calls a check from this package with the learner's *result*
(never their code text)::

    from helpers.labs import foundations as lab
    lab.test_rmse(rmse)          # ✅ or ❌ with specific feedback

A check returns a :class:`Verdict`, which a notebook shows as one line. A check never raises, so "Run all"
goes through a half-finished lab and shows every verdict; ``summary()`` at the end counts them. The
matching solution notebook, ``notebooks/labs/solutions/<same name>``, passes every check.

Writing a check::

    @check("RMSE of the test predictions, in dollars")
    def test_rmse(rmse: float) -> str:
        require(isinstance(rmse, float), f"rmse should be a float, got {type(rmse).__name__}")
        require(rmse < 25_000, f"RMSE {rmse:,.0f} is above 25,000 — did you transform back from the log scale?")
        return f"RMSE {rmse:,.0f}"      # shown after the ✅

An argument still holding the placeholder ``...`` gives "not answered yet" without running the check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["Verdict", "Wrong", "active_spark", "check", "require", "close", "finished_run", "summary", "verdicts",
           "reset", "PASS", "FAIL"]

PASS = "✅"
FAIL = "❌"
NOT_ANSWERED = "not answered yet: replace the `...` in the TODO cell above with your code"

F = TypeVar("F", bound=Callable[..., Any])


class Wrong(Exception):
    """Raised inside a check with the feedback the learner sees."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: shown as ``✅ title — detail`` or ``❌ title — feedback``."""

    title: str
    passed: bool
    message: str

    def __str__(self) -> str:
        return f"{PASS if self.passed else FAIL} {self.title} — {self.message}"

    def __repr__(self) -> str:  # what a notebook cell ending with a check shows
        return str(self)

    def __bool__(self) -> bool:
        return self.passed


_verdicts: dict[str, Verdict] = {}


def require(condition: Any, feedback: str) -> None:
    """Fail the running check with ``feedback`` unless ``condition`` holds."""
    if not condition:
        raise Wrong(feedback)


def close(actual: float, expected: float, tolerance: float) -> bool:
    """Whether ``actual`` is within ``tolerance`` (absolute) of ``expected``."""
    return abs(float(actual) - float(expected)) <= tolerance


def active_spark() -> SparkSession:
    """The notebook's running Spark session, which a check uses to score the learner's model; a check fails with
    a pointer to the set-up cell when none is running."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    require(session is not None, "no Spark session is running: run the set-up cell at the top of the lab first")
    return session


def finished_run(run_id: Any, name: str = "run", argument: str = "run_id") -> Any:
    """The MLflow run ``run_id`` of the active tracking store, after requiring that the learner passed a run id
    (``<name>.info.run_id``) of a run that exists and has finished; ``name`` is what the lab calls the run
    object, ``argument`` the check's parameter (both appear in the feedback)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    require(isinstance(run_id, str), f"{argument} should be the run's id (`{name}.info.run_id`, a str), not "
                                     f"{type(run_id).__name__}")
    try:
        run = mlflow.get_run(run_id)
    except MlflowException:
        run = None
    require(run is not None, f"no run with id {run_id!r} in this tracking store — use `{name}.info.run_id` of "
                             f"`with mlflow.start_run() as {name}:`")
    label = "run" if name == "run" else f"{name} run"
    require(run.info.status == "FINISHED", f"the {label} is {run.info.status}: end it — log inside "
                                           f"`with mlflow.start_run() as {name}:` and the block ends it")
    return run


def _is_placeholder(value: Any) -> bool:
    if value is Ellipsis:
        return True
    if isinstance(value, (tuple, list)):
        return any(item is Ellipsis for item in value)
    if isinstance(value, dict):
        return any(item is Ellipsis for item in value.values())
    return False


def check(title: str) -> Callable[[F], Callable[..., Verdict]]:
    """Turn a function that raises :class:`Wrong` (via :func:`require`) into a check returning a :class:`Verdict`.

    The function returns the detail shown on success (or ``None``). Any other exception — the learner's
    object was not the expected kind — becomes a failed verdict that names the exception, not a traceback.
    """

    def decorate(function: F) -> Callable[..., Verdict]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Verdict:
            if any(_is_placeholder(value) for value in (*args, *kwargs.values())):
                verdict = Verdict(title, False, NOT_ANSWERED)
            else:
                try:
                    detail = function(*args, **kwargs)
                    verdict = Verdict(title, True, detail or "correct")
                except Wrong as wrong:
                    verdict = Verdict(title, False, str(wrong))
                except Exception as error:  # the learner's value broke the check: say what, not where
                    verdict = Verdict(title, False, f"could not check this answer ({type(error).__name__}: "
                                                    f"{error}); look at what the TODO cell produces")
            _verdicts[f"{function.__module__}.{function.__name__}"] = verdict
            return verdict

        run.title = title  # type: ignore[attr-defined]
        run.is_check = True  # type: ignore[attr-defined]
        return run

    return decorate


def verdicts() -> list[Verdict]:
    """The latest verdict of every check run in this kernel, in the order first run."""
    return list(_verdicts.values())


def reset() -> None:
    """Forget the recorded verdicts (a lab calls this at its start)."""
    _verdicts.clear()


def summary() -> str:
    """One line per check and a total, for the last cell of a lab."""
    results = verdicts()
    passed = sum(v.passed for v in results)
    lines = [str(v) for v in results]
    if results and passed == len(results):
        lines.append(f"{passed} of {len(results)} checks pass: lab complete.")
    else:
        lines.append(f"{passed} of {len(results)} checks pass. Fix the ❌ above, then run all cells again "
                     "(the solution is in notebooks/labs/solutions/ if you are stuck).")
    return "\n".join(lines)


def checks_in(module: Any) -> list[str]:
    """The names of the checks a lab module defines (used by the tests to prove every check is exercised)."""
    return sorted(name for name, value in vars(module).items() if getattr(value, "is_check", False))
