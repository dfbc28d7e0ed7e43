"""Unrestricted resource consumption: large bodies, slow senders, many idle connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.stack import ServiceStack

BODY_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
async def limited(
    servers_dir: Any, sqs_endpoint: str, mongo_url: str
) -> AsyncIterator[ServiceStack]:
    stack = ServiceStack(
        servers_dir / "stacks", sqs_endpoint, mongo_url, {"body_timeout_s": BODY_TIMEOUT_S}
    )
    await stack.start()
    yield stack
    await stack.close()


async def raw_exchange(stack: ServiceStack, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes over one connection and read one answer (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.gateway_port)
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            headers = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            length = int(headers.partition("content-length:")[2].split()[0])
            answer = await reader.readexactly(length)
    finally:
        writer.close()
    return int(status_line.split()[1]), answer


async def test_a_body_over_the_limit_is_413_and_charges_nothing(
    limited: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await limited.create_account(http, "limits-big", 5)
    body = orjson.dumps({"query": "x" * 1_000_000})
    headers = {**limited.auth("limits-big"), "Content-Type": "application/json"}
    async with http.post(f"{limited.gateway}/v1/meme", data=body, headers=headers) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"
    live = await limited.redis_account("limits-big")
    assert (live["balance"], live["seq"]) == ("5", "0")


async def test_a_client_that_stalls_its_body_gets_408(limited: ServiceStack) -> None:
    token = limited.token("limits-slow")
    head = (
        "POST /v1/meme HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    started = time.monotonic()
    status, body = await raw_exchange(limited, head, b'{"query": "')
    assert status == 408
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < BODY_TIMEOUT_S + 2


async def test_many_idle_and_half_sent_connections_do_not_starve_real_clients(
    limited: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await limited.create_account(http, "limits-busy", 10)
    hogs = []
    try:
        for n in range(400):
            _, writer = await asyncio.open_connection("127.0.0.1", limited.settings.gateway_port)
            writer.write(b"GET /memes?query=x HTTP/1.1\r\nHost: g\r\n" if n % 2 else b"")
            hogs.append(writer)
        await asyncio.gather(*(w.drain() for w in hogs))
        started = time.monotonic()
        async with http.get(
            f"{limited.gateway}/memes",
            params={"query": "crowds"},
            headers=limited.auth("limits-busy"),
        ) as response:
            assert response.status == 200
        assert time.monotonic() - started < 1.0
    finally:
        for writer in hogs:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
