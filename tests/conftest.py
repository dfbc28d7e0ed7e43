"""Session-wide real servers: LocalStack SQS and the store (FerretDB on PostgreSQL)."""

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
    start,
    stop_pid,
    store_servers,
)
from tests.fakes.identity_provider import IdentityProvider
from tests.stack import PrivateStore, ServiceStack, StackFactory


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


@pytest.fixture
async def make_stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str
) -> AsyncIterator[StackFactory]:
    """Start a fresh service stack with settings overrides; stopped after the test."""
    stacks: list[ServiceStack] = []

    async def make(start: bool = True, **overrides: Any) -> ServiceStack:
        stack = ServiceStack(servers_dir / "stacks", sqs_endpoint, mongo_url, overrides)
        stacks.append(stack)
        if start:
            await stack.start()
        return stack

    yield make
    for stack in stacks:
        await stack.close()


@pytest.fixture(scope="module")
async def shared_stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str
) -> AsyncIterator[ServiceStack]:
    """One stack for a module of tests that use distinct accounts."""
    stack = ServiceStack(servers_dir / "stacks", sqs_endpoint, mongo_url)
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
