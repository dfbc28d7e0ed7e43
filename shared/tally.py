"""Trouble logged as one line per interval with counts, not one line per request.

A burst of meme-service failures or a Redis restart under load would otherwise write a
line per request: thousands a second, burying everything else an operator needs. The
first occurrence in a quiet period starts an interval; at its end one line says what
happened in it, by kind. Hand-written because the standard library's logging has no
rate limiting and the libraries that add it drop lines rather than count them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import Counter


class Tally:
    def __init__(self, log: logging.Logger, message: str, every_s: float = 10.0) -> None:
        self.log = log
        self.message = message
        self.every_s = every_s
        self.counts: Counter[str] = Counter()
        self._flush: asyncio.TimerHandle | None = None

    def add(self, kind: str) -> None:
        """Count one occurrence; the line for this interval comes at its end."""
        self.counts[kind] += 1
        if self._flush is None:  # in a context of its own: no one request's id on the line
            self._flush = asyncio.get_running_loop().call_later(
                self.every_s, self.flush, context=contextvars.Context()
            )

    def flush(self) -> None:
        self._flush = None
        if self.counts:
            self.log.warning(
                self.message,
                extra={"counts": dict(self.counts), "total": self.counts.total(),
                       "interval_s": self.every_s},
            )  # fmt: skip
            self.counts.clear()
