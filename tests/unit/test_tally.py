"""Trouble logged as one line per interval with counts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.tally import Tally


async def test_a_burst_is_one_line_with_counts_at_the_end_of_its_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = Tally(logging.getLogger("tally-test"), "the thing failed", every_s=0.05)
    with caplog.at_level(logging.WARNING, logger="tally-test"):
        for _ in range(30):
            tally.add("timeout")
        tally.add("5xx")
        assert caplog.records == [], "nothing before the interval ends"
        await asyncio.sleep(0.1)
        tally.add("timeout")
        await asyncio.sleep(0.1)
    first, second = caplog.records
    assert first.getMessage() == "the thing failed"
    assert (first.counts, first.total) == ({"timeout": 30, "5xx": 1}, 31)  # type: ignore[attr-defined]
    assert second.counts == {"timeout": 1}  # type: ignore[attr-defined]
