"""What the lab tests share: the assertion that a check failed with the words of its feedback."""

from __future__ import annotations

from helpers.labs import Verdict


def fails_with(verdict: Verdict, *words: str) -> None:
    assert not verdict.passed, f"expected a failure, got {verdict}"
    assert "could not check" not in verdict.message, verdict.message
    for word in words:
        assert word in verdict.message, f"{word!r} not in {verdict.message!r}"
