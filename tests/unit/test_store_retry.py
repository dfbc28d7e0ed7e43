"""Which store errors are worth another attempt, and that the attempts stop."""

from __future__ import annotations

import pytest
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from shared import store_retry
from shared.store_retry import transient, with_retries


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("connection reset"),
        ServerSelectionTimeoutError("no server"),
        OperationFailure("lock busy", code=46),
        OperationFailure("write conflict", code=112),
        OperationFailure("database is locked (SQLITE_BUSY)", code=1),
    ],
)
def test_busy_or_unreachable_is_transient(error: Exception) -> None:
    assert transient(error)


@pytest.mark.parametrize(
    "error",
    [
        DuplicateKeyError("E11000", code=11000),
        OperationFailure("bad value", code=2),
        ValueError("not a store error"),
    ],
)
def test_a_refusal_is_not_transient(error: Exception) -> None:
    assert not transient(error)


async def test_a_busy_write_is_sent_again_until_it_lands() -> None:
    attempts = []

    async def write() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationFailure("lock busy", code=46)
        return "done"

    assert await with_retries(write) == "done"
    assert len(attempts) == 3


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    attempts = []

    async def write() -> None:
        attempts.append(1)
        raise AutoReconnect("still away")

    with pytest.raises(AutoReconnect):
        await with_retries(write)
    assert len(attempts) == store_retry.ATTEMPTS


async def test_a_refusal_is_raised_at_once() -> None:
    attempts = []

    async def write() -> None:
        attempts.append(1)
        raise DuplicateKeyError("E11000", code=11000)

    with pytest.raises(DuplicateKeyError):
        await with_retries(write)
    assert len(attempts) == 1
