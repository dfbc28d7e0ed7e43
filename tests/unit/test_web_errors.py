"""Every failure becomes a JSON error; a store out of reach is 503 with Retry-After."""

from __future__ import annotations

import aiohttp
import pymongo.errors
import pytest
import redis.exceptions
from aiohttp import web

from shared.web import error_middleware


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"), 503,
         "upstream_unavailable"),
        (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), 503,
         "upstream_unavailable"),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), 503,
         "upstream_unavailable"),
        (pymongo.errors.AutoReconnect("connection closed"), 503, "upstream_unavailable"),
        (pymongo.errors.ServerSelectionTimeoutError("no primary"), 503, "upstream_unavailable"),
        (KeyError("a bug"), 500, "internal_error"),
    ],
)  # fmt: skip
async def test_a_failure_is_answered_as_json_with_the_status_a_client_can_act_on(
    raised: Exception, status: int, code: str
) -> None:
    async def failing(_: web.Request) -> web.Response:
        raise raised

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", failing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as r:
            body = await r.json()
            assert (r.status, body["error"]["code"]) == (status, code)
            assert "Traceback" not in str(body)
            assert (r.headers.get("Retry-After") == "1") == (status == 503)
    finally:
        await runner.cleanup()
