"""Trouble logged as one line per interval with counts."""

from __future__ import annotations

import asyncio
import logging

from shared.logging import request_id_var
from shared.tally import Tally


class Lines(logging.Handler):
    """Each record, and the request id the JSON formatter would put on its line."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[logging.LogRecord, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record, request_id_var.get()))


async def test_a_burst_is_one_line_with_counts_at_the_end_of_its_interval() -> None:
    logger = logging.getLogger("tally-test")
    lines = Lines()
    logger.addHandler(lines)
    tally = Tally(logger, "the thing failed", every_s=0.05)
    request_id_var.set("the-first-failing-request")
    for _ in range(30):
        tally.add("timeout")
    tally.add("5xx")
    assert lines.seen == [], "nothing before the interval ends"
    await asyncio.sleep(0.1)
    tally.add("timeout")
    await asyncio.sleep(0.1)
    logger.removeHandler(lines)
    (first, first_request), (second, _) = lines.seen
    assert first.getMessage() == "the thing failed"
    assert (first.counts, first.total) == ({"timeout": 30, "5xx": 1}, 31)  # type: ignore[attr-defined]
    assert second.counts == {"timeout": 1}  # type: ignore[attr-defined]
    assert first_request is None, "the line speaks for the interval, not one request"
