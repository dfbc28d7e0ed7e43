"""The drain window: handlers still waiting on a meme when it closes answer 503."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.drain import Drain
from shared.errors import ApiError


async def never() -> str:
    await asyncio.Event().wait()
    return "never"


async def test_the_close_turns_each_waiting_handler_into_a_503_it_can_go_on_from() -> None:
    drain = Drain(0.01)

    async def handler() -> tuple[str, int]:
        try:
            await drain.unless_closed(never())
        except ApiError as error:
            task = asyncio.current_task()
            assert task is not None
            await asyncio.sleep(0.01)  # the refund that follows runs as usual
            return error.code, task.cancelling()
        return "delivered", 0

    handlers = [asyncio.ensure_future(handler()) for _ in range(3)]
    await asyncio.sleep(0)
    drain.begin()
    assert await asyncio.gather(*handlers) == [("shutting_down", 0)] * 3


async def test_a_cancellation_that_is_not_the_close_stays_a_cancellation() -> None:
    drain = Drain(60)
    handler = asyncio.ensure_future(drain.unless_closed(never()))
    await asyncio.sleep(0)
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler


async def test_after_the_close_a_meme_is_not_waited_for() -> None:
    drain = Drain(0)
    drain.begin()
    await asyncio.sleep(0.01)
    started = []

    async def work() -> str:
        started.append(1)
        return "meme"

    with pytest.raises(ApiError) as raised:
        await drain.unless_closed(work())
    assert (raised.value.code, started) == ("shutting_down", [])


async def test_a_meme_done_before_the_close_is_its_result() -> None:
    drain = Drain(60)
    drain.begin()

    async def work() -> str:
        return "meme"

    assert await drain.unless_closed(work()) == "meme"
