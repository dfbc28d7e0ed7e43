"""The validators every way in shares: the HTTP API, the console and the CLI."""

from __future__ import annotations

import pytest

from shared.errors import ApiError
from shared.validation import credit_reason, journal_reason


@pytest.mark.parametrize("reason", ["purchase", "tab\there", "line\nbreak", "🙂 gift", "\ue000"])
def test_credit_reasons_sqs_carries_pass(reason: str) -> None:
    assert credit_reason(reason) == reason


@pytest.mark.parametrize(
    "reason", ["", "r" * 101, "x\ufffe", "x\uffff", "a\x00b", "bell\x07", "\ud800", 7]
)
def test_credit_reasons_sqs_would_refuse_are_400(reason: object) -> None:
    with pytest.raises(ApiError) as raised:
        credit_reason(reason)
    assert (raised.value.status, raised.value.details["field"]) == (400, "reason")


def test_journal_reasons_are_trimmed_printable_text() -> None:
    assert journal_reason("  purged by hand ") == "purged by hand"
    for bad in ("", "   ", "x\x1b[2J", "r" * 501, None):
        with pytest.raises(ApiError):
            journal_reason(bad)
