"""Real servers for the tests: backends and the three services as processes.

Each `ServiceStack` gets its own Redis and its own queue and database names, so
stacks never see each other's outboxes, while LocalStack and FerretDB are shared by
the whole session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import pty
import signal
import struct
import sys
import termios
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from infra.local.stack import (
    Running,
    cache_redis_server,
    free_port,
    redis_server,
    service,
    start,
    stop_pid,
    store_servers,
)
from shared.accounting.bank import TokenBank
from shared.accounting.events import Batch, Event
from shared.auth import issue_dev_token
from shared.keys import Keys
from shared.settings import Settings, to_environment
from shared.sqs import SQSClient, provision_queues, queue_url, sqs_client
from shared.stores import MongoDoc, mongo_client, redis_client

SERVICES = ("meme", "ledger", "gateway")
# Settings only the gateway and the ledger read: a stack that changes no others can use
# the session's meme service (it keeps no state) instead of starting its own.
GATEWAY_AND_LEDGER_ONLY = frozenset({
    "charge_settle_margin_s", "gateway_drain_s", "gateway_workers", "jwt_account_claim",
    "jwt_algorithms", "jwt_jwks_cooldown_s", "jwt_jwks_ttl_s", "jwt_jwks_url", "jwt_role_map",
    "jwt_roles_claim", "ledger_receivers", "ledger_stuck_after_s", "ledger_summary_every_s",
    "ledger_wait_time_s", "max_receive_count", "meme_timeout_s", "mongo_db", "mongo_url",
    "pipeline_sample_interval_s", "rate_limits", "reconcile_interval_s", "reconcile_page_size",
    "region", "relay_idle_sleep_ms", "relay_lease_ttl_ms", "relay_linger_ms",
    "slice_idle_return_s", "slice_wait_s",
    "visibility_timeout_s",
})  # fmt: skip
PARIS = {"lat": "48.8566", "lon": "2.3522", "query": "croissants"}  # a text meme's query
CACHE_MAXMEMORY = "2mb"  # small, so a test can fill it

# Short timeouts and counts so fault tests finish quickly.
TEST_SETTINGS: dict[str, Any] = {
    "env": "test",
    "shards": 8,
    "visibility_timeout_s": 2,
    "max_receive_count": 3,
    "ledger_wait_time_s": 1,
    "ledger_receivers": 4,
    "relay_linger_ms": 20,
    "relay_idle_sleep_ms": 10,
    "relay_lease_ttl_ms": 2000,
    "meme_timeout_s": 2.0,
    "log_level": "INFO",
}


def debit_event(account: str, seq: int, epoch: int = 1) -> Event:
    """A one-token text-meme debit, as the charge script would have written it."""
    return Event(
        id=uuid.uuid4().hex,
        type="debit",
        account=account,
        amount=1,
        epoch=epoch,
        seq=seq,
        reason="meme:text",
        request_id=uuid.uuid4().hex,
        at="2026-11-28T12:00:00.000Z",
    )


async def memes_in_flight(
    stack: ServiceStack,
    headers: dict[str, str],
    count: int,
    after: int,
    meanwhile: Callable[[], Awaitable[None]],
    spread_s: float = 0.0,
) -> list[str]:
    """`count` concurrent text memes, each with its own request id, sent evenly over
    `spread_s`; once `after` are delivered, `meanwhile` runs (a kill, a freeze) with the
    rest in flight or still to come. Returns the request ids delivered.

    A spread keeps requests coming while `meanwhile` runs: sent at once, all of them may
    be answered before the client has read `after` answers (the gateway sends a loop
    step's memes as one batch)."""
    delivered: list[str] = []
    reached = asyncio.Event()

    async def one(client: aiohttp.ClientSession, index: int) -> None:
        request_id = uuid.uuid4().hex
        await asyncio.sleep(spread_s * index / count)
        try:
            async with client.get(
                f"{stack.gateway}/memes",
                params=PARIS,
                headers={**headers, "X-Request-ID": request_id},
            ) as response:
                if response.status == 200:
                    assert (await response.json())["id"] == request_id
                    delivered.append(request_id)
                    if len(delivered) == after:
                        reached.set()
        except (TimeoutError, aiohttp.ClientError):
            pass

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as client:
        load = asyncio.gather(*(one(client, index) for index in range(count)))
        await reached.wait()
        await meanwhile()
        await load
    return delivered


class StackFactory(Protocol):
    """The `make_stack` fixture: a fresh stack with settings overrides."""

    async def __call__(
        self, start: bool = True, own_meme: bool = False, **overrides: Any
    ) -> ServiceStack: ...


def make_settings(values: dict[str, Any]) -> Settings:
    return Settings(**values)


def log_lines(log: Path, msg: str | None = None) -> list[dict[str, Any]]:
    """A service's JSON log lines (with this `msg`), as the process wrote them."""
    found = []
    for raw in log.read_bytes().splitlines():
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and (msg is None or entry.get("msg") == msg):
            found.append(entry)
    return found


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout_s: float = 30, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class ServiceStack:
    """Redis plus meme, ledger and gateway processes wired to shared SQS and MongoDB.

    Given `shared_meme` (the URL of a running meme service), a stack whose overrides
    are all `GATEWAY_AND_LEDGER_ONLY` uses it and starts no meme service of its own: a
    third of a stack's start. A test that stops or freezes the meme service asks for
    its own (`make_stack(own_meme=True)`)."""

    base_dir: Path
    sqs_endpoint: str
    mongo_url: str
    overrides: dict[str, Any] = field(default_factory=dict)
    shared_meme: str | None = None
    values: dict[str, Any] = field(init=False)
    processes: dict[str, Running] = field(default_factory=dict)
    _clients: contextlib.AsyncExitStack = field(
        init=False, default_factory=contextlib.AsyncExitStack
    )
    _sqs: SQSClient | None = field(init=False, default=None)
    _mongo: AsyncMongoClient[MongoDoc] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        run_id = uuid.uuid4().hex[:10]
        self.run_dir = self.base_dir / run_id
        self.values = {
            **TEST_SETTINGS,
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "cache_redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "sqs_endpoint_url": self.sqs_endpoint,
            "mongo_url": self.mongo_url,
            "mongo_db": f"maas_{run_id}",
            "queue_name": f"maas-{run_id}.fifo",
            "dlq_name": f"maas-{run_id}-dlq.fifo",
            "gateway_port": free_port(),
            "meme_port": free_port(),
            "ledger_port": free_port(),
            **self.overrides,
        }
        shared = self.shared_meme if self.overrides.keys() <= GATEWAY_AND_LEDGER_ONLY else None
        own_meme = f"http://127.0.0.1:{self.values['meme_port']}"
        self.values.setdefault("meme_url", shared or own_meme)
        self.services = tuple(s for s in SERVICES if s != "meme" or not shared)
        self.settings = make_settings(self.values)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    async def start(self, *names: str) -> None:
        """Start Redis and all services (or just `names`); a failed start stops the rest."""
        try:
            await self._start(*names)
        except BaseException:
            await self.close()
            raise

    async def _start(self, *names: str) -> None:
        if not names:
            (self.run_dir / "redis").mkdir(parents=True, exist_ok=True)
            self.processes["redis"] = await asyncio.to_thread(
                start, redis_server(self.settings.redis_port, self.run_dir / "redis"), self.run_dir
            )
            if self.settings.geocoder != "offline":  # only remote geocoders use the cache
                cache = cache_redis_server(
                    self.settings.cache_redis_port, self.run_dir / "cache", CACHE_MAXMEMORY
                )
                (self.run_dir / "cache").mkdir(parents=True, exist_ok=True)
                self.processes["redis-cache"] = await asyncio.to_thread(start, cache, self.run_dir)
            await provision_queues(await self.sqs(), self.settings)
        await self._start_services(list(names or self.services))

    async def _start_services(self, names: list[str]) -> None:
        """Side by side, but the gateway after the meme service: it asks the meme service,
        as it starts, whether AI memes can be made."""

        async def one(name: str) -> None:
            port = getattr(self.settings, f"{name}_port")
            server = service(name, port, to_environment(self.values))
            self.processes[name] = await asyncio.to_thread(start, server, self.run_dir)

        async def in_order(*chain: str) -> None:
            for name in chain:
                await one(name)

        chains = [[name] for name in names if name not in ("meme", "gateway")]
        chains.append([name for name in ("meme", "gateway") if name in names])
        results = await asyncio.gather(*(in_order(*c) for c in chains), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def start_replica(self, kind: str, name: str) -> str:
        """One more `kind` process (ledger, gateway) on a port of its own; its base URL."""
        port = free_port()
        server = service(kind, port, to_environment({**self.values, f"{kind}_port": port}))
        running = await asyncio.to_thread(
            start, dataclasses.replace(server, name=name), self.run_dir
        )
        self.processes[name] = running
        return f"http://127.0.0.1:{port}"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        running = self.processes.pop(name)
        os.killpg(running.process.pid, sig)
        running.process.wait(timeout=30)

    async def stop(self, name: str) -> None:
        running = self.processes.pop(name)
        await asyncio.to_thread(stop_pid, running.process.pid)

    async def close(self) -> None:
        for name in [n for n in self.processes if n != "redis"]:
            await self.stop(name)
        if "redis" in self.processes:
            await self.stop("redis")
        await self._clients.aclose()
        self._sqs = self._mongo = None

    async def sqs(self) -> SQSClient:
        """The stack's one SQS client for what the tests send and check: a new client
        costs 0.1 s of CPU (botocore loads its service model), and waits poll the queues
        twenty times a second."""
        if self._sqs is None:
            self._sqs = await self._clients.enter_async_context(sqs_client(self.settings))
        return self._sqs

    def mongo(self) -> AsyncDatabase[MongoDoc]:
        """The stack's database, through one client kept for the stack's life."""
        if self._mongo is None:
            self._mongo = mongo_client(self.settings)
            self._clients.push_async_callback(self._mongo.close)
        return self._mongo[self.settings.mongo_db]

    def token(self, account: str, roles: tuple[str, ...] = (), ttl_s: int = 3600) -> str:
        return issue_dev_token(self.settings, account, list(roles), ttl_s)

    def auth(self, account: str, roles: tuple[str, ...] = ()) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(account, roles)}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth("operator", ("admin",))

    async def create_account(
        self, http: aiohttp.ClientSession, account: str, tokens: int
    ) -> dict[str, str]:
        """Open a funded account; returns its holder's request headers."""
        async with http.post(
            f"{self.gateway}/v1/accounts",
            json={"id": account, "tokens": tokens},
            headers=self.admin,
        ) as response:
            assert response.status == 201, await response.text()
        return self.auth(account)

    async def mongo_account(self, account: str) -> dict[str, Any] | None:
        return await self.mongo()["accounts"].find_one({"_id": account})

    async def redis_account(self, account: str) -> dict[str, str]:
        redis = redis_client(self.settings)
        try:
            return await redis.hgetall(Keys(self.settings.shards).account(account))  # type: ignore[return-value]
        finally:
            await redis.aclose()

    async def maas(self, *args: str) -> tuple[int, str]:
        """Run the operators' CLI against this stack, as an operator would."""
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("maas")),
            *args,
            env={**os.environ, **to_environment(self.values)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, output.decode()

    async def maas_at_a_terminal(self, *args: str) -> tuple[int, str]:
        """Run the operators' CLI as on a terminal: stdout and stderr on a pseudo-terminal."""
        controller, terminal = pty.openpty()
        # 40 rows of 120 columns, as a terminal window has (a new pty has none).
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("maas")),
            *args,
            env={**os.environ, **to_environment(self.values)},
            stdout=terminal,
            stderr=terminal,
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = await asyncio.to_thread(os.read, controller, 65536)
            except OSError:  # the terminal closed: the process is done writing
                break
            if not chunk:
                break
            output += chunk
        os.close(controller)
        return await process.wait(), output.decode(errors="replace")

    async def send_batches(
        self, events: list[Event], per_message: int, copies: int = 1, dead_letters: bool = False
    ) -> None:
        """Publish events straight to the queue (or the DLQ, as a message moved there by
        hand would be), packed per shard like the relay does."""
        keys = Keys(self.settings.shards)
        by_shard: dict[int, list[Event]] = {}
        for event in events:
            by_shard.setdefault(keys.shard_of(event.account), []).append(event)
        entries: list[dict[str, str]] = []
        for shard, shard_events in by_shard.items():
            for first in range(0, len(shard_events), per_message):
                batch = Batch(shard, shard_events[first : first + per_message])
                for copy in range(copies):
                    entries.append(
                        {
                            "Id": str(len(entries)),
                            "MessageBody": batch.encode(),
                            "MessageGroupId": batch.group_id,
                            "MessageDeduplicationId": f"{batch.deduplication_id[:60]}-{copy}",
                        }
                    )
        sqs = await self.sqs()
        url = await queue_url(
            sqs, self.settings.dlq_name if dead_letters else self.settings.queue_name
        )
        for first in range(0, len(entries), 10):
            answer = await sqs.send_message_batch(QueueUrl=url, Entries=entries[first : first + 10])
            assert not answer.get("Failed"), answer

    async def send_raw(self, body: str, group: str) -> None:
        """Publish any body to the queue, as a broken or hostile producer could."""
        sqs = await self.sqs()
        await sqs.send_message(
            QueueUrl=await queue_url(sqs, self.settings.queue_name),
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
        )

    async def queue_depth(self, dead_letters: bool = False) -> int:
        name = self.settings.dlq_name if dead_letters else self.settings.queue_name
        sqs = await self.sqs()
        attributes = await sqs.get_queue_attributes(
            QueueUrl=await queue_url(sqs, name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        return sum(int(v) for v in attributes["Attributes"].values())

    async def credit(
        self, http: aiohttp.ClientSession, account: str, amount: object, key: str
    ) -> tuple[int, dict[str, Any]]:
        """Billing credits the account with an idempotency key: the status and the answer."""
        async with http.post(
            f"{self.gateway}/v1/accounts/{account}/credits",
            json={"amount": amount},
            headers={**self.admin, "Idempotency-Key": key},
        ) as response:
            return response.status, await response.json()

    async def dead_letters(self) -> int:
        """Dead letters as the ledger counts them (`maas_ledger_dlq_depth`): the index's
        count, or the SQS DLQ's if it counts more (messages not moved into the index yet)."""
        indexed = await self.mongo()["dead_letters"].count_documents({"resolved_at": None})
        return max(indexed, await self.queue_depth(dead_letters=True))

    async def flush_redis(self) -> None:
        """Data loss: Redis forgets every balance, outbox entry and lease."""
        redis = redis_client(self.settings)
        try:
            await redis.flushall()
        finally:
            await redis.aclose()

    async def redis_outbox_entries(self) -> int:
        return await self._sum_over_shards(
            lambda redis, keys, shard: redis.xlen(keys.outbox(shard))
        )

    async def redis_pending_charges(self) -> int:
        """Charges neither delivered nor refunded yet."""
        return await self._sum_over_shards(
            lambda redis, keys, shard: redis.hlen(keys.pending(shard))
        )

    async def _sum_over_shards(self, count: Callable[[Any, Keys, int], Awaitable[int]]) -> int:
        redis = redis_client(self.settings)
        keys = Keys(self.settings.shards)
        try:
            return sum([await count(redis, keys, s) for s in range(self.settings.shards)])
        finally:
            await redis.aclose()

    async def drained(self, *accounts: str, timeout_s: float = 30) -> None:
        """Wait until MongoDB has applied every event Redis assigned to these accounts."""

        async def caught_up() -> bool:
            for account in accounts:
                live, stored = await self.redis_account(account), await self.mongo_account(account)
                if not live or stored is None:
                    return False
                if int(live["seq"]) == 0:
                    continue
                if (stored["epoch"], stored["seq"]) != (int(live["epoch"]), int(live["seq"])):
                    return False
            return True

        await wait_for(caught_up, timeout_s, f"the ledger to drain {accounts}")


class PrivateStore:
    """A store of a test's own (see `local_store`), with extra PostgreSQL settings."""

    def __init__(self, store_dir: Path, *settings: str) -> None:
        self.dir = store_dir / f"private-{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.servers = store_servers(self.port, self.dir, *settings)
        self.running: dict[str, Running] = {}

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    @property
    def front(self) -> str:
        """The server clients talk to (FerretDB, or mongo-java-server alone)."""
        return self.servers[-1].name

    def start(self, *names: str) -> None:
        """Start its servers in order, PostgreSQL first (or only those named)."""
        for server in self.servers:
            if not names or server.name in names:
                self.running[server.name] = start(server, self.dir)

    def stop(self, *names: str) -> None:
        """Stop its servers in reverse order, FerretDB first (or only those named)."""
        for server in reversed(self.servers):
            if (not names or server.name in names) and server.name in self.running:
                stop_pid(self.running.pop(server.name).process.pid)

    def kill(self) -> None:
        """SIGKILL every process of the store at once, as a crash would."""
        for name in list(self.running):
            process = self.running.pop(name).process
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    @property
    def log(self) -> Path:
        return self.dir / "logs" / "postgres.log"

    def client(self, connections: int = 100) -> AsyncMongoClient[MongoDoc]:
        return AsyncMongoClient(self.url, tz_aware=True, maxPoolSize=connections)


@contextlib.asynccontextmanager
async def real_bank(request: pytest.FixtureRequest) -> AsyncIterator[TokenBank]:
    """`TokenBank` as the services build it, on the session's real Redis and store
    (8 shards): the real side of a contract suite."""
    settings = Settings(
        redis_url=request.getfixturevalue("redis_url"),
        mongo_url=request.getfixturevalue("mongo_url"),
        mongo_db="contracts",
        shards=8,
    )
    redis, mongo = redis_client(settings), mongo_client(settings)
    try:
        yield TokenBank.for_settings(settings, redis, mongo[settings.mongo_db])
    finally:
        await redis.aclose()
        await mongo.close()
