"""SQS FIFO access shared by the relay, the ledger and the operators' CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import aioboto3
from botocore.config import Config

from shared.settings import Settings

# aiobotocore clients are generated at run time; their calls answer plain dicts.
SQSClient: TypeAlias = Any

LOCALSTACK_DEV_CREDENTIALS = ("test", "test")  # DEV-ONLY: LocalStack accepts any key


@asynccontextmanager
async def sqs_client(settings: Settings) -> AsyncIterator[SQSClient]:
    credentials: dict[str, str] = {}
    if settings.aws_access_key_id:
        credentials = {
            "aws_access_key_id": settings.aws_access_key_id,
            "aws_secret_access_key": settings.aws_secret_access_key or "",
        }
    elif settings.sqs_endpoint_url and settings.env != "prod":
        key, secret = LOCALSTACK_DEV_CREDENTIALS
        credentials = {"aws_access_key_id": key, "aws_secret_access_key": secret}
    session = aioboto3.Session(region_name=settings.aws_region, **credentials)
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=2,
        read_timeout=settings.ledger_wait_time_s + 5,
        max_pool_connections=50,
    )
    async with session.client("sqs", endpoint_url=settings.sqs_endpoint_url, config=config) as c:
        yield c


async def queue_url(client: SQSClient, name: str) -> str:
    return str((await client.get_queue_url(QueueName=name))["QueueUrl"])


@dataclass
class QueueAddress:
    """A queue's URL, asked of SQS when first needed, then kept.

    A gateway that starts while SQS is unreachable still starts and serves memes (the
    outbox is in Redis); its relay asks again on its next round.
    """

    client: SQSClient
    name: str
    known: str | None = None

    async def url(self) -> str:
        if self.known is None:
            self.known = await queue_url(self.client, self.name)
        return self.known


async def provision_queues(client: SQSClient, settings: Settings) -> tuple[str, str]:
    """Create the FIFO queue and its dead-letter queue; safe to run any number of times."""
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq = await client.create_queue(
        QueueName=settings.dlq_name,
        Attributes={**fifo, "MessageRetentionPeriod": str(settings.dlq_retention_s)},
    )
    dlq_arn = (
        await client.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])
    )["Attributes"]["QueueArn"]
    attributes = {
        **fifo,
        "VisibilityTimeout": str(settings.visibility_timeout_s),
        "MessageRetentionPeriod": str(settings.message_retention_s),
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count}
        ),
    }
    try:
        main = await client.create_queue(QueueName=settings.queue_name, Attributes=attributes)
    except client.exceptions.QueueNameExists:
        main = {"QueueUrl": await queue_url(client, settings.queue_name)}
        await client.set_queue_attributes(QueueUrl=main["QueueUrl"], Attributes=attributes)
    return main["QueueUrl"], dlq["QueueUrl"]


async def queue_depth(client: SQSClient, url: str) -> int:
    """Messages in a queue, waiting or in flight (SQS's approximate counts)."""
    attributes = await client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for v in attributes["Attributes"].values())
