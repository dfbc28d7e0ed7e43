"""The public contract of the gateway, against the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from services.gateway.openapi import render
from tests.stack import PARIS, ServiceStack

GENEROUS = {"default": {"rate": 100_000, "burst": 100_000}}


@pytest.fixture(scope="module")
async def stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str, shared_meme: str
) -> AsyncIterator[ServiceStack]:
    overrides = {"rate_limits": GENEROUS}
    stack = ServiceStack(servers_dir / "stacks", sqs_endpoint, mongo_url, overrides, shared_meme)
    await stack.start()
    yield stack
    await stack.close()


async def balance_and_seq(stack: ServiceStack, account: str) -> tuple[str, str]:
    live = await stack.redis_account(account)
    return live["balance"], live["seq"]


BAD_PARAMS: list[dict[str, Any]] = [
    {"lat": "40.7", "query": "x"},
    {"lon": "-73.9", "query": "x"},
    {"lat": "nan", "lon": "1", "query": "x"},
    {"lat": "NaN", "lon": "1", "query": "x"},
    {"lat": "inf", "lon": "1", "query": "x"},
    {"lat": "-Infinity", "lon": "1", "query": "x"},
    {"lat": "1e999", "lon": "1", "query": "x"},
    {"lat": "4e1", "lon": "1", "query": "x"},
    {"lat": "0x1F", "lon": "1", "query": "x"},
    {"lat": "40°42'51\"N", "lon": "74°0'21\"W", "query": "x"},
    {"lat": "40,7", "lon": "1", "query": "x"},
    {"lat": "91", "lon": "1", "query": "x"},
    {"lat": "-90.5", "lon": "1", "query": "x"},
    {"lat": "1", "lon": "180.01", "query": "x"},
    {"lat": "1", "lon": "-181", "query": "x"},
    {"lat": "", "lon": "1", "query": "x"},
    {"lat": "abc", "lon": "def", "query": "x"},
    {"lat": " ", "lon": "1", "query": "x"},
    {"lat": "1", "lon": "1"},
    {"query": ""},
    {"query": "     "},
    {"query": "x" * 201},
    {"query": "line\nbreak"},
    {"query": "null\x00byte"},
    {"query": "esc\x1b[31m"},
    {"query": "rtl\u202eoverride"},
    {"query": "x", "kind": "video"},
    {"query": "x", "kind": "AI"},
    {"query": "x", "format": "gif"},
    {"query": "x", "format": "jpeg"},
]


@pytest.mark.parametrize("params", BAD_PARAMS)
async def test_every_bad_parameter_is_a_400_that_charges_nothing(
    stack: ServiceStack, http: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    account = "bad-params"
    if await stack.mongo_account(account) is None:
        await stack.create_account(http, account, 10)
    before = await balance_and_seq(stack, account)
    async with http.get(
        f"{stack.gateway}/memes", params=params, headers=stack.auth(account)
    ) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["code"] == "invalid_params"
    assert body["error"]["message"]
    assert await balance_and_seq(stack, account) == before


async def test_post_takes_the_reference_clients_body(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "poster", 5)
    body = {"lat": 35.6762, "lng": 139.6503, "query": "ramen"}
    for path in ("/v1/meme", "/v1/memes"):
        async with http.post(
            f"{stack.gateway}{path}", json=body, headers=stack.auth("poster")
        ) as response:
            assert response.status == 200, await response.text()
            meme = await response.json()
            assert meme["location"]["country"] == "JP"
            assert meme["query"] == "ramen"
            assert response.headers["X-Tokens-Remaining"] == str(meme["tokens_remaining"])
    async with http.post(
        f"{stack.gateway}/v1/memes", data=b"{not json", headers=stack.auth("poster")
    ) as response:
        assert response.status == 400


async def test_memes_without_coordinates_have_no_location(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "nowhere", 1)
    async with http.get(
        f"{stack.gateway}/v1/memes", params={"query": "cats"}, headers=stack.auth("nowhere")
    ) as response:
        assert response.status == 200
        assert (await response.json())["location"] is None


async def test_png_memes_pass_through(stack: ServiceStack, http: aiohttp.ClientSession) -> None:
    await stack.create_account(http, "pictures", 1)
    async with http.get(
        f"{stack.gateway}/memes",
        params={**PARIS, "format": "png"},
        headers=stack.auth("pictures"),
    ) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert (await response.read()).startswith(b"\x89PNG\r\n\x1a\n")
        assert response.headers["X-Tokens-Remaining"] == "0"


async def test_ai_memes_need_the_ai_role_and_cost_nothing_when_refused(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "plain", 5)
    async with http.get(
        f"{stack.gateway}/memes", params={**PARIS, "kind": "ai"}, headers=stack.auth("plain")
    ) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    # This stack has no AI endpoint: premium callers get text by default, 503 when explicit.
    premium = stack.auth("plain", ("ai",))
    async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=premium) as response:
        assert (await response.json())["kind"] == "text"
    async with http.get(
        f"{stack.gateway}/memes", params={**PARIS, "kind": "ai"}, headers=premium
    ) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "upstream_unavailable"
    assert await balance_and_seq(stack, "plain") == ("4", "1")


async def test_a_token_for_an_unknown_account_is_403(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        f"{stack.gateway}/memes", params=PARIS, headers=stack.auth("nobody-here")
    ) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "unknown_account"


async def test_accounts_see_themselves_and_not_each_other(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "alice", 7)
    await stack.create_account(http, "bob", 9)
    async with http.get(f"{stack.gateway}/v1/account", headers=stack.auth("alice")) as response:
        own = await response.json()
    assert (own["id"], own["tokens"], own["roles"]) == ("alice", 7, [])
    assert own["usage"]["calls"] == 0
    for path in ("/v1/accounts/bob", "/v1/accounts/bob/credits"):
        method = http.get if path.endswith("bob") else http.post
        async with method(
            f"{stack.gateway}{path}", headers={**stack.auth("alice"), "Idempotency-Key": "k"}
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "forbidden"


async def test_the_admin_view_has_live_and_ledger_balances(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "viewed", 4)
    async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=stack.auth("viewed")):
        pass
    await stack.drained("viewed")
    async with http.get(f"{stack.gateway}/v1/accounts/viewed", headers=stack.admin) as response:
        view = await response.json()
    assert view["tokens"] == 3
    assert view["ledger"] == {"balance": 3, "epoch": 1, "seq": 1}
    assert view["usage"]["calls"] == 1
    async with http.get(f"{stack.gateway}/v1/accounts/missing", headers=stack.admin) as response:
        assert response.status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x"},
        {"tokens": 5},
        {"id": "bad id", "tokens": 1},
        {"id": "n", "tokens": -1},
        {"id": "n", "tokens": 1.5},
        {"id": "n", "tokens": "5"},
        [],
    ],
)
async def test_account_creation_validates_its_body(
    stack: ServiceStack, http: aiohttp.ClientSession, body: Any
) -> None:
    async with http.post(
        f"{stack.gateway}/v1/accounts", data=orjson.dumps(body), headers=stack.admin
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_params"


async def test_creating_an_account_twice_is_409(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, "twice", 1)
    async with http.post(
        f"{stack.gateway}/v1/accounts", json={"id": "twice", "tokens": 99}, headers=stack.admin
    ) as response:
        assert response.status == 409
    assert (await stack.redis_account("twice"))["balance"] == "1"


async def test_errors_are_json_with_a_request_id(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{stack.gateway}/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
        assert response.headers["X-Request-ID"]
    async with http.delete(f"{stack.gateway}/memes") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    async with http.post(
        f"{stack.gateway}/v1/memes", data=b"x" * 100_000, headers=stack.auth("alice")
    ) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_health_readiness_metrics_and_openapi(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{stack.gateway}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{stack.gateway}/readyz") as response:
        ready = await response.json()
        assert response.status == 200
        assert ready["checks"] == {"redis": True, "sqs": True, "meme": True}
    async with http.get(f"{stack.gateway}/metrics") as response:
        text = await response.text()
        assert "maas_http_requests_total" in text
        assert "maas_tokens_charged_total" in text
    async with http.get(f"{stack.gateway}/openapi.json") as response:
        assert await response.read() == render()


async def test_clients_cannot_set_properties_the_server_owns(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    """Mass assignment: extra fields in bodies and queries change nothing they name."""
    owned = {"balance": 10**9, "epoch": 7, "seq": 99, "usage": {"calls": -5}, "roles": ["admin"]}
    async with http.post(
        f"{stack.gateway}/v1/accounts",
        json={"id": "mass", "tokens": 3, **owned},
        headers=stack.admin,
    ) as response:
        assert (response.status, await response.json()) == (201, {"id": "mass", "tokens": 3})
    async with http.post(
        f"{stack.gateway}/v1/accounts/mass/credits",
        json={"amount": 1, "account": "someone-else", **owned},
        headers={**stack.admin, "Idempotency-Key": "mass-1"},
    ) as response:
        assert (response.status, (await response.json())["tokens"]) == (202, 4)
    params = {**PARIS, "price": "0", "tokens_charged": "0", "kind": "text", "account": "bob"}
    async with http.get(f"{stack.gateway}/memes", params=params, headers=stack.auth("mass")) as r:
        body = await r.json()
        assert (r.status, body["tokens_charged"], body["tokens_remaining"]) == (200, 1, 3)
    async with http.get(f"{stack.gateway}/v1/account", headers=stack.auth("mass")) as response:
        own = await response.json()
    assert (own["tokens"], own["roles"], own["usage"]["calls"]) == (3, [], 1)
    await stack.drained("mass")
    stored = await stack.mongo_account("mass")
    assert stored is not None
    assert (stored["balance"], stored["epoch"], stored["seq"]) == (3, 1, 2)
