"""Messages the ledger does not delete come back when they can do some good: a held one
after a short backoff, one a stopping ledger leaves unfinished at once (visibility 0)."""

from __future__ import annotations

import asyncio
import signal

from tests.faults.test_ledger_faults import (
    applied_up_to,
    create_accounts,
    dead_letter_lines,
    event,
)
from tests.stack import PrivateStore, StackFactory, wait_for


async def test_a_message_that_cannot_apply_reaches_the_dlq_in_seconds_not_visibility_timeouts(
    make_stack: StackFactory,
) -> None:
    """Waiting does not fill a gap (a group's messages arrive in order), so a held message
    comes back after 1, 2, 4 s, not after a minute each time, and its group moves on."""
    stack = await make_stack(visibility_timeout_s=60, max_receive_count=4)
    await create_accounts(stack, {"held-x": 10})
    await stack.send_batches([event("held-x", 2)], per_message=1)

    async def dead_letter() -> bool:
        return await stack.dead_letters() == 1

    await wait_for(dead_letter, 40, "the held message to reach the DLQ (4 receives)")
    (line,) = await dead_letter_lines(stack)
    assert "reason=gap for 'held-x'" in line


async def test_a_ledger_stopped_while_holding_messages_gives_them_back_at_once(
    private_store: PrivateStore, make_stack: StackFactory
) -> None:
    """A rolling deploy during a MongoDB outage: the messages the stopping ledger held
    are not stuck for a visibility timeout (a minute here) before another one applies."""
    stack = await make_stack(mongo_url=private_store.url, visibility_timeout_s=60)
    try:
        await create_accounts(stack, {"handed-over": 10})
        await asyncio.to_thread(private_store.stop, private_store.front)
        await stack.send_batches([event("handed-over", 1)], per_message=1)
        ledger = stack.processes.pop("ledger")

        async def holding() -> bool:
            return "holding the messages" in ledger.log.read_text()

        await wait_for(holding, 30, "the ledger to hold the message through the outage")
        ledger.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(ledger.process.wait, 30) == 0
        await asyncio.to_thread(private_store.start, private_store.front)
        await stack.start("ledger")
        await applied_up_to(stack, {"handed-over": 1}, 30)
    finally:
        await stack.close()


async def test_what_a_stopping_ledgers_long_poll_brings_is_given_back_at_once(
    make_stack: StackFactory,
) -> None:
    """A long poll outlives the stop that abandons it and takes the messages that arrive
    meanwhile: they come back at once, not after a visibility timeout (a minute here)."""
    # Polls of 12 s: the stop below lands well inside the first ones (begun at start),
    # whatever creating the account took on a busy machine.
    stack = await make_stack(visibility_timeout_s=60, ledger_wait_time_s=12)
    await create_accounts(stack, {"late-poll": 10})
    ledger = stack.processes.pop("ledger")
    ledger.process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.2)  # its receivers are in their long polls, as an idle ledger is
    await stack.send_batches([event("late-poll", 1)], per_message=1)
    assert await asyncio.to_thread(ledger.process.wait, 30) == 0
    assert "giving back messages received while stopping" in ledger.log.read_text()
    await stack.start("ledger")
    await applied_up_to(stack, {"late-poll": 1}, 20)
