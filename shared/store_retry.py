"""Bounded retries of store writes that hit a busy or briefly unreachable store.

A write refused because the store was busy (a lock, a write conflict) had no effect, so
it is sent again. A dropped connection may have carried a write that took effect; every
caller's write is safe to repeat (a conditional update finds its position moved, an
insert finds its key taken), so those are retried as well. Anything else is raised at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import AutoReconnect, OperationFailure
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

T = TypeVar("T")

# LockTimeout, LockBusy, WriteConflict, ExceededTimeLimit, TemporarilyUnavailable
BUSY_CODES = frozenset({24, 46, 112, 262, 365})
BUSY_MESSAGES = ("database is locked", "SQLITE_BUSY", "could not serialize access", "deadlock")
ATTEMPTS = 6
BUDGET_S = 5.0


def transient(error: BaseException) -> bool:
    if isinstance(error, AutoReconnect):
        return True
    if isinstance(error, OperationFailure):
        return (
            error.code in BUSY_CODES
            or error.has_error_label("TransientTransactionError")
            or any(message in str(error) for message in BUSY_MESSAGES)
        )
    return False


async def with_retries(write: Callable[[], Awaitable[T]]) -> T:
    """`await write()`, again after a transient error, up to ATTEMPTS times within BUDGET_S."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(ATTEMPTS) | stop_after_delay(BUDGET_S),
        wait=wait_exponential_jitter(multiplier=0.01, max=0.5, jitter=0.02),
        reraise=True,
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable: AsyncRetrying either returns or raises")
