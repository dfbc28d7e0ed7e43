"""Session-wide real servers: LocalStack SQS, the store (FerretDB on PostgreSQL) and a
meme service for the stacks that need no meme service of their own."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from infra.local.stack import (
    free_port,
    localstack_server,
    redis_server,
    service,
    start,
    stop_pid,
    store_servers,
)
from shared.settings import to_environment
from tests.fakes.identity_provider import IdentityProvider
from tests.stack import TEST_SETTINGS, PrivateStore, ServiceStack, StackFactory


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def sqs_endpoint(servers_dir: Path) -> Iterator[str]:
    port = free_port()
    data = servers_dir / "localstack"
    data.mkdir()
    running = start(localstack_server(port, data), servers_dir, timeout_s=120)
    yield f"http://127.0.0.1:{port}"
    stop_pid(running.process.pid)


@pytest.fixture(scope="session")
def store_dir() -> Iterator[Path]:
    """Store data outside pytest's private temp dir, where the postgres user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="maas-store-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def private_store(store_dir: Path) -> AsyncIterator[PrivateStore]:
    """A store of the test's own, for tests that stop and start it."""
    store = PrivateStore(store_dir)
    await asyncio.to_thread(store.start)
    yield store
    await asyncio.to_thread(store.stop)


@pytest.fixture(scope="session")
def mongo_url(servers_dir: Path, store_dir: Path) -> Iterator[str]:
    port = free_port()
    running = [start(server, servers_dir) for server in store_servers(port, store_dir / "main")]
    yield f"mongodb://127.0.0.1:{port}"
    for server in reversed(running):
        stop_pid(server.process.pid)


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    """One Redis for tests that need live balances beside the store but no whole stack."""
    port = free_port()
    data = servers_dir / "redis"
    data.mkdir()
    running = start(redis_server(port, data), servers_dir)
    yield f"redis://127.0.0.1:{port}/0"
    stop_pid(running.process.pid)


@pytest.fixture(scope="session")
def shared_meme(servers_dir: Path) -> Iterator[str]:
    """One meme service for the stacks that need no meme service of their own: it keeps
    no state, and its start is a third of a stack's."""
    port = free_port()
    values = {**TEST_SETTINGS, "meme_port": port}
    running = start(service("meme", port, to_environment(values)), servers_dir / "shared-meme")
    yield f"http://127.0.0.1:{port}"
    stop_pid(running.process.pid)


@pytest.fixture
async def make_stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str, shared_meme: str
) -> AsyncIterator[StackFactory]:
    """Start a fresh service stack with settings overrides; stopped after the test. It
    uses the session's meme service unless told `own_meme` or its overrides concern the
    meme service (tests/stack.py)."""
    stacks: list[ServiceStack] = []

    async def make(start: bool = True, own_meme: bool = False, **overrides: Any) -> ServiceStack:
        shared = None if own_meme else shared_meme
        stack = ServiceStack(servers_dir / "stacks", sqs_endpoint, mongo_url, overrides, shared)
        stacks.append(stack)
        if start:
            await stack.start()
        return stack

    yield make
    for stack in stacks:
        await stack.close()


@pytest.fixture(scope="module")
async def shared_stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str, shared_meme: str
) -> AsyncIterator[ServiceStack]:
    """One stack for a module of tests that use distinct accounts."""
    stack = ServiceStack(servers_dir / "stacks", sqs_endpoint, mongo_url, shared_meme=shared_meme)
    await stack.start()
    yield stack
    await stack.close()


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    """An identity provider publishing one RS256 key, "current", at its JWKS URL."""
    provider = IdentityProvider()
    provider.add_key("current")
    async with provider:
        yield provider


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
