"""The charging scripts and the relay on a 3-node Redis Cluster give the single-node results."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.stack import Running, free_port, redis_server, start, stop_pid
from services.gateway.adapters.relay import Relay
from shared.accounting.accounts import AccountStore
from shared.accounting.bank import Outcome, TokenBank
from shared.accounting.events import decode_batch
from shared.keys import Keys
from shared.settings import RateLimit, Settings
from shared.sqs import QueueAddress, provision_queues, sqs_client
from shared.stores import mongo_client, redis_client

ACCOUNTS = [f"cluster-{n}" for n in range(30)]
SHARDS = 16


@pytest.fixture(scope="module")
def cluster(servers_dir: Path) -> Iterator[list[int]]:
    ports = [free_port() for _ in range(3)]
    nodes: list[Running] = []
    try:
        yield from _cluster(servers_dir, ports, nodes)
    finally:
        for node in nodes:
            stop_pid(node.process.pid)


def _cluster(servers_dir: Path, ports: list[int], nodes: list[Running]) -> Iterator[list[int]]:
    for port in ports:
        data = servers_dir / f"cluster-{port}"
        data.mkdir()
        nodes.append(
            start(
                redis_server(
                    port,
                    data,
                    *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                    *("--cluster-port", str(free_port())),
                ),
                data,
            )
        )
    subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = 200
    while (
        b"cluster_state:ok"
        not in subprocess.run(
            ["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True, check=True
        ).stdout
    ):
        deadline -= 1
        assert deadline, "the cluster never became ready"
        subprocess.run(["sleep", "0.05"], check=True)
    yield ports


@pytest.fixture(scope="module")
def single(servers_dir: Path) -> Iterator[int]:
    port = free_port()
    data = servers_dir / f"single-{port}"
    data.mkdir()
    node = start(redis_server(port, data), data)
    yield port
    stop_pid(node.process.pid)


def settings_for(redis_url: str, cluster: bool, sqs: str, mongo: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        redis_url=redis_url,
        redis_cluster=cluster,
        sqs_endpoint_url=sqs,
        mongo_url=mongo,
        mongo_db=f"cluster_{run}",
        queue_name=f"cluster-{run}.fifo",
        dlq_name=f"cluster-{run}-dlq.fifo",
        shards=SHARDS,
        ledger_wait_time_s=1,
    )


async def exercise(settings: Settings) -> tuple[list[Any], dict[str, list[int]]]:
    """Charge, refund and credit every account, relay everything, read SQS back."""
    redis, mongo = redis_client(settings), mongo_client(settings)
    keys = Keys(settings.shards)
    store = AccountStore(mongo[settings.mongo_db])
    bank = TokenBank(redis, keys, store, settings.idempotency_ttl_s)
    limit = RateLimit(rate=1000, burst=1000)
    results: list[Any] = []
    try:
        for account in ACCOUNTS:
            await store.create(account, 3)
        for account in ACCOUNTS:
            outcomes: list[Outcome] = []
            charges = []
            for _ in range(4):
                outcome, charge = await bank.charge(account, 1, limit, "meme:text", "r", 5.0)
                outcomes.append(outcome)
                charges.append(charge)
            assert charges[0] is not None
            outcomes.append(await bank.refund(charges[0]))
            assert charges[1] is not None
            await bank.confirm(charges[1])
            for _ in range(2):
                outcomes.append(await bank.credit(account, 10, "purchase", "key-1", "fp"))
            outcomes.append(await bank.credit(account, 10, "purchase", "key-1", "other"))
            results.append([(o.status, o.balance, o.seq) for o in outcomes])
        async with sqs_client(settings) as sqs:
            queue, _ = await provision_queues(sqs, settings)
            relay = Relay(redis, sqs, QueueAddress(sqs, "", queue), keys, "test", 100, 5000, 0, 10)
            await relay.renew_leases()
            assert len(relay.held) == settings.shards
            assert await relay.relay_once(flush=True) == len(ACCOUNTS) * 5
            seqs: dict[str, list[int]] = {}
            while True:
                answer = await sqs.receive_message(
                    QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                if not answer.get("Messages"):
                    break
                for message in answer["Messages"]:
                    for event in decode_batch(message["Body"]).events:
                        seqs.setdefault(event.account, []).append(event.seq)
                    await sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    finally:
        await redis.aclose()
        await mongo.close()
    return results, seqs


async def test_cluster_and_single_node_agree(
    cluster: list[int], single: int, sqs_endpoint: str, mongo_url: str
) -> None:
    on_cluster = settings_for(f"redis://127.0.0.1:{cluster[0]}/0", True, sqs_endpoint, mongo_url)
    on_single = settings_for(f"redis://127.0.0.1:{single}/0", False, sqs_endpoint, mongo_url)

    slots_by_node = set()
    probe = redis_client(on_cluster)
    try:
        await probe.initialize()
        for account in ACCOUNTS:
            node = probe.get_node_from_key(Keys(SHARDS).account(account))  # type: ignore[union-attr]
            assert node is not None
            slots_by_node.add(node.port)
    finally:
        await probe.aclose()
    assert slots_by_node == set(cluster), "the accounts must span every node"

    (cluster_results, cluster_seqs), (single_results, single_seqs) = await asyncio.gather(
        exercise(on_cluster), exercise(on_single)
    )
    assert cluster_results == single_results
    # 3 debits, a refused 4th, a refund, a credit, its replay (with the credit's position),
    # then a conflicting replay.
    assert cluster_results[0] == [
        (0, 2, 1),
        (0, 1, 2),
        (0, 0, 3),
        (2, 0, 0),
        (0, 1, 4),
        (0, 11, 5),
        (4, 11, 5),
        (5, 0, 0),
    ]
    assert cluster_seqs == single_seqs
    assert all(seqs == [1, 2, 3, 4, 5] for seqs in cluster_seqs.values())
    assert set(cluster_seqs) == set(ACCOUNTS)
