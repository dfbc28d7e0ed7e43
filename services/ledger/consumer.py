"""The SQS consumer: several long-polling receivers, one message at a time each.

FIFO message groups are the outbox shards; SQS hands a group to one receiver at a
time, so receivers run in parallel without breaking any account's order. A message
is deleted only after MongoDB acknowledged it. While MongoDB is unreachable the
receiver keeps the message, extends its visibility and retries, so an outage costs
no receive count and sends nothing to the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import Gauge
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from services.ledger.handler import Handled, MessageHandler
from shared.aio import sleep_unless
from shared.sqs import SQSClient

log = logging.getLogger(__name__)

MONGO_DOWN = (ConnectionFailure, ServerSelectionTimeoutError)
DLQ_DEPTH = Gauge("maas_ledger_dlq_depth", "Messages in the dead-letter queue")
IN_FLIGHT = Gauge("maas_ledger_messages_in_flight", "Messages being applied now")


class Consumer:
    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        dlq_url: str,
        handler: MessageHandler,
        receivers: int,
        wait_time_s: int,
        visibility_timeout_s: int,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.handler = handler
        self.receivers = receivers
        self.wait_time_s = wait_time_s
        self.visibility_timeout_s = visibility_timeout_s

    async def run(self, stop: asyncio.Event) -> None:
        """Receive until `stop`; messages already held are finished before returning."""
        await asyncio.gather(
            *(self._receive_loop(stop) for _ in range(self.receivers)), self._watch_dlq(stop)
        )

    async def _receive_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                received = await self._receive(stop)
            except Exception:
                log.warning("receive failed; retrying", exc_info=True)
                await sleep_unless(stop, 1.0)
                continue
            for message in received:
                await self._process(message, stop)

    async def _receive(self, stop: asyncio.Event) -> list[dict[str, Any]]:
        receive = asyncio.ensure_future(
            self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_time_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receive.done():
            # Whatever the cancelled call had received becomes visible again after the timeout.
            receive.cancel()
            return []
        return list(receive.result().get("Messages", []))

    async def _process(self, message: dict[str, Any], stop: asyncio.Event) -> None:
        receipt = message["ReceiptHandle"]
        receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        IN_FLIGHT.inc()
        try:
            async with self._keep_invisible(receipt):
                handled = await self._apply(message, receive_count, stop)
            if handled is not None and handled.done:
                await self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
            elif handled is not None:
                log.warning(
                    "message not applied; left for redelivery",
                    extra={
                        "message_id": message["MessageId"],
                        "outcome": str(handled.outcome),
                        "reason": handled.reason,
                        "receive_count": receive_count,
                    },
                )
        except Exception:
            log.exception("message handling failed", extra={"message_id": message["MessageId"]})
        finally:
            IN_FLIGHT.dec()

    async def _apply(
        self, message: dict[str, Any], receive_count: int, stop: asyncio.Event
    ) -> Handled | None:
        delay = 0.2
        while True:
            try:
                return await self.handler.handle(
                    message["Body"], message["MessageId"], receive_count
                )
            except MONGO_DOWN:
                if stop.is_set():
                    return None
                log.warning("MongoDB unreachable; holding the message", extra={"retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @contextlib.asynccontextmanager
    async def _keep_invisible(self, receipt: str) -> AsyncIterator[None]:
        """Extend the message's visibility while it is being worked on."""

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.visibility_timeout_s / 2)
                with contextlib.suppress(Exception):
                    await self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=receipt,
                        VisibilityTimeout=self.visibility_timeout_s,
                    )

        task = asyncio.create_task(heartbeat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch_dlq(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                attributes = await self.sqs.get_queue_attributes(
                    QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                DLQ_DEPTH.set(int(attributes["Attributes"]["ApproximateNumberOfMessages"]))
            await sleep_unless(stop, 5.0)
