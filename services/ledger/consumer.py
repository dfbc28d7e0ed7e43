"""The SQS consumer: several long-polling receivers, one message at a time each.

FIFO message groups are the outbox shards; SQS hands a group to one receiver at a
time, so receivers run in parallel without breaking any account's order. A message
is deleted only after MongoDB acknowledged it. While MongoDB is unreachable the
receiver keeps the message, extends its visibility and retries, so an outage costs
no receive count and sends nothing to the DLQ.

A message the ledger cannot apply yet (a gap, a reused position) comes back after 1, 2,
4, 8 s rather than a whole visibility timeout each time: waiting does not resolve
either (a group's messages arrive in order), so it reaches the dead letters, where an
operator can act, within seconds instead of minutes, and its group moves on. A message
left unfinished by a stopping ledger is given back at once (visibility 0), so a rolling
deploy does not stall its group for a visibility timeout; so is one its long poll
brings after the stop. A batch whose apply never ends (a store call that hangs) makes the
process exit rather than keep its groups invisible for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from services.ledger.domain.messages import Received
from services.ledger.usecases.apply_messages import Handled, MessageHandler, Summary
from shared.aio import running, sleep_unless
from shared.sqs import SQSClient

log = logging.getLogger(__name__)

MONGO_DOWN = (ConnectionFailure, ServerSelectionTimeoutError)
RETRY_FIRST_S = 1
LATE_POLL_MARGIN_S = 5.0
SQS_BATCH = 10  # entries SQS takes in one batch call
DLQ_DEPTH = Gauge(
    "maas_ledger_dlq_depth",
    "Dead letters: the index's count, or the SQS DLQ's if it counts more (some not moved in)",
)
IN_FLIGHT = Gauge("maas_ledger_messages_in_flight", "Messages being applied now")
EXIT_STUCK = 70  # EX_SOFTWARE: the process is broken, its supervisor starts a fresh one


def exit_at_once() -> None:
    """Leave without a graceful stop: the stuck call would hold the stop up for good."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    os._exit(EXIT_STUCK)


@dataclass
class Consumer:
    sqs: SQSClient
    queue_url: str
    dlq_url: str
    handler: MessageHandler
    receivers: int
    wait_time_s: int
    visibility_timeout_s: int
    summary_every_s: float = 60.0
    stuck_after_s: float = 120.0
    on_stuck: Callable[[], None] = exit_at_once

    def __post_init__(self) -> None:
        self._applying: dict[int, float] = {}  # each apply under way: when it began
        self._apply_ids = itertools.count()
        self._messages = 0
        self._redelivered = 0
        self._late: list[str] = []  # receipts of what long polls brought after the stop

    async def run(self, stop: asyncio.Event) -> None:
        """Receive until `stop`; messages already held are finished before returning."""
        await asyncio.gather(
            *(self._receive_loop(stop) for _ in range(self.receivers)),
            self._watch_dlq(stop),
            self._summarize(stop),
            self._watch_stuck(stop),
        )
        if self._late:
            log.info(
                "giving back messages received while stopping", extra={"messages": len(self._late)}
            )
            await self._show_again([(receipt, 0) for receipt in self._late])
        log.info("receivers stopped; nothing held any more")

    async def _summarize(self, stop: asyncio.Event) -> None:
        """One line a minute while there is traffic: what was applied, held, redelivered."""
        while not stop.is_set():
            await sleep_unless(stop, self.summary_every_s)
            done, self.handler.summary = self.handler.summary, Summary()
            messages, self._messages = self._messages, 0
            redelivered, self._redelivered = self._redelivered, 0
            # Also an interval with no new message: a receive that began in the last one
            # may finish (apply, hold) in this one, and its counts land here.
            if messages or done.applied_events or done.held_messages:
                log.info(
                    "ledger summary",
                    extra={"interval_s": self.summary_every_s, "messages": messages,
                           "events_applied": done.applied_events, "held": done.held_messages,
                           "redelivered": redelivered, "lag_max_s": round(done.lag_max_s, 3)},
                )  # fmt: skip

    async def _receive_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                received = await self._receive(stop)
            except Exception:
                log.warning("receive failed; retrying", exc_info=True)
                await sleep_unless(stop, 1.0)
                continue
            if received:
                await self._process(received, stop)

    async def _receive(self, stop: asyncio.Event) -> list[dict[str, Any]]:
        receive = asyncio.ensure_future(
            self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_time_s,
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "MessageGroupId",
                    "SequenceNumber",
                ],
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receive.done():
            await self._finish_late_poll(receive)
            return []
        return list(receive.result().get("Messages", []))

    async def _finish_late_poll(self, receive: asyncio.Future[Any]) -> None:
        """Stopping during a long poll: let the poll end and keep what it brought.

        A poll the client abandons still takes the messages that arrive before its wait
        ends (SQS cannot tell a closed connection from a slow one), and they would stay
        invisible for a whole visibility timeout: the next ledger found a backlog's first
        messages stalled for 24 s. Waiting for the poll costs the stop at most
        `wait_time_s`. They are given back once every poll has ended (`run`): given back
        sooner, another poll of this stopping process would take them again.
        """
        try:
            answer = await asyncio.wait_for(receive, self.wait_time_s + LATE_POLL_MARGIN_S)
        except Exception:
            log.warning("a long poll did not end while stopping", exc_info=True)
            return
        self._late += [m["ReceiptHandle"] for m in answer.get("Messages", [])]

    async def _process(self, messages: list[dict[str, Any]], stop: asyncio.Event) -> None:
        received = [
            Received(
                m["MessageId"],
                m["Body"],
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                m.get("Attributes", {}).get("MessageGroupId", ""),
                m.get("Attributes", {}).get("SequenceNumber", ""),
            )
            for m in messages
        ]
        receipts = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        self._messages += len(received)
        IN_FLIGHT.inc(len(messages))
        try:
            async with self._keep_invisible(list(receipts.values())):
                handled = await self._apply(received, stop)
            done = [receipts[mid] for mid, h in handled.items() if h.done]
            if done:
                answer = await self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": r} for n, r in enumerate(done)],
                )
                if answer.get("Failed"):
                    # The visibility ran out before the heartbeat renewed it: another worker
                    # got the message and will find its events applied (duplicates).
                    log.warning("applied messages not deleted", extra={"failed": answer["Failed"]})
            await self._show_again(
                [
                    (receipts[m.message_id], self._back_in_s(m, handled.get(m.message_id)))
                    for m in received
                    if m.message_id not in handled or not handled[m.message_id].done
                ]
            )
            for message in received:
                outcome = handled.get(message.message_id)
                if message.receive_count > 1 and outcome is not None:
                    self._redelivered += 1
                    log.info(
                        "redelivered message",
                        extra={"message_id": message.message_id, "group": message.group_id,
                               "receive_count": message.receive_count,
                               "outcome": str(outcome.outcome)},
                    )  # fmt: skip
                if outcome is not None and not outcome.done:
                    log.warning(
                        "message not applied; left for redelivery",
                        extra={
                            "message_id": message.message_id,
                            "outcome": str(outcome.outcome),
                            "reason": outcome.reason,
                            "receive_count": message.receive_count,
                        },
                    )
        except Exception:
            log.exception("message handling failed", extra={"messages": list(receipts)})
        finally:
            IN_FLIGHT.dec(len(messages))

    def _back_in_s(self, message: Received, handled: Handled | None) -> int:
        """When a message not deleted is received again: at once if this ledger stopped
        before finishing it, else after a backoff that doubles with each receive."""
        if handled is None:
            return 0
        backoff: int = RETRY_FIRST_S * 2 ** (message.receive_count - 1)
        return min(self.visibility_timeout_s, backoff)

    async def _show_again(self, messages: list[tuple[str, int]]) -> None:
        """Set each (receipt, seconds) message's visibility, `SQS_BATCH` to a call; on
        failure they come back after the visibility timeout, as before."""
        for first in range(0, len(messages), SQS_BATCH):
            try:
                await self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                        for n, (receipt, seconds) in enumerate(messages[first : first + SQS_BATCH])
                    ],
                )
            except Exception:
                log.warning("could not shorten the visibility of messages left", exc_info=True)

    async def _apply(self, received: list[Received], stop: asyncio.Event) -> dict[str, Handled]:
        """Apply, waiting out a MongoDB outage; nothing is handled if stopped meanwhile."""
        delay = 0.2
        while True:
            apply_id = next(self._apply_ids)
            self._applying[apply_id] = asyncio.get_running_loop().time()
            try:
                return await self.handler.handle(received)
            except MONGO_DOWN:
                if stop.is_set():
                    return {}
                log.warning(
                    "MongoDB unreachable; holding the messages", extra={"retry_in_s": delay}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                del self._applying[apply_id]

    async def _watch_stuck(self, stop: asyncio.Event) -> None:
        """Call `on_stuck` (exit) once an apply has run `stuck_after_s`.

        Store calls end by their own timeouts, and an unreachable store fails them
        (the apply is retried, each try timed afresh); one that never ends (a store that
        accepts and answers nothing, a client whose lock broke) would keep its messages
        invisible, the heartbeat renewing them, and their groups would stop for good.
        Exiting hands them to another ledger after the visibility timeout.
        """
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            oldest = min(self._applying.values(), default=loop.time())
            if loop.time() - oldest > self.stuck_after_s:
                log.critical(
                    "an apply is stuck; exiting so a fresh process takes over",
                    extra={"stuck_s": round(loop.time() - oldest, 1),
                           "applying": len(self._applying), "exit_code": EXIT_STUCK},
                )  # fmt: skip
                self.on_stuck()
                return
            await sleep_unless(stop, min(1.0, self.stuck_after_s / 4))

    @contextlib.asynccontextmanager
    async def _keep_invisible(self, receipts: list[str]) -> AsyncIterator[None]:
        """Extend the messages' visibility while they are being worked on."""

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.visibility_timeout_s / 3)
                with contextlib.suppress(Exception):
                    await self.sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url,
                        Entries=[
                            {
                                "Id": str(n),
                                "ReceiptHandle": receipt,
                                "VisibilityTimeout": self.visibility_timeout_s,
                            }
                            for n, receipt in enumerate(receipts)
                        ],
                    )

        async with running(heartbeat()):
            yield

    async def _watch_dlq(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                attributes = await self.sqs.get_queue_attributes(
                    QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                arrived = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
                DLQ_DEPTH.set(max(arrived, await self.handler.store.dead_letter_count()))
            await sleep_unless(stop, 5.0)
