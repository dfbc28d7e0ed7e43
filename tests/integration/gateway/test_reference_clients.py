"""Clients of the reference implementation: its tokens, routes and load, unchanged."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest

from tests.stack import ServiceStack

REFERENCE_CLAIMS = {
    "jwt_account_claim": "user_id",
    "jwt_roles_claim": "permissions",
    "jwt_role_map": {"GenerateLlmMeme": "ai", "ManageAccounts": "admin"},
}
USER = "65a1f0c2e4b0a1b2c3d4e5f6"
LOAD_SCRIPT_BODY = {
    "lat": 40.730610,
    "lng": -73.935242,
    "query": "generate an image with 1000 shoes",
}
VIRTUAL_USERS = 200


@pytest.fixture(scope="module")
async def stack(
    servers_dir: Path, sqs_endpoint: str, mongo_url: str, shared_meme: str
) -> AsyncIterator[ServiceStack]:
    """The default rate limits, and tokens read the way the reference issues them."""
    stack = ServiceStack(
        servers_dir / "stacks", sqs_endpoint, mongo_url, REFERENCE_CLAIMS, shared_meme
    )
    await stack.start()
    yield stack
    await stack.close()


def reference_token(stack: ServiceStack, user: str, permissions: dict[str, bool]) -> str:
    claims = {
        "user_id": user,
        "email": "shoes@example.com",
        "permissions": permissions,
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, stack.settings.jwt_secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_reference_token_gets_a_meme_and_its_balance(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    await stack.create_account(http, USER, 10)
    headers = bearer(reference_token(stack, USER, {"GenerateLlmMeme": True}))
    async with http.post(
        f"{stack.gateway}/v1/meme", json=LOAD_SCRIPT_BODY, headers=headers
    ) as response:
        meme = await response.json()
        assert response.status == 200, meme
    assert (meme["kind"], meme["tokens_remaining"]) == ("text", 9)  # no AI backend here
    async with http.get(f"{stack.gateway}/v1/tokens", headers=headers) as response:
        assert (response.status, await response.json()) == (200, {"tokens": 9})
    async with http.get(f"{stack.gateway}/v1/account", headers=headers) as response:
        assert (await response.json())["roles"] == ["ai"]


async def test_v1_tokens_answers_errors_as_v1_account_does(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    stranger = bearer(reference_token(stack, "65a1f0c2e4b0a1b2c3d4ffff", {}))
    await stack.create_account(http, "dev-token-holder", 1)
    dev_token = bearer(stack.token("dev-token-holder"))
    for path in ("/v1/tokens", "/v1/account"):
        async with http.get(f"{stack.gateway}{path}", headers=stranger) as response:
            assert (response.status, (await response.json())["error"]["code"]) == (
                403,
                "unknown_account",
            )
        for headers in ({}, {"Authorization": "Bearer nope"}):
            async with http.get(f"{stack.gateway}{path}", headers=headers) as response:
                assert response.status == 401
        async with http.get(f"{stack.gateway}{path}", headers=dev_token) as response:
            assert response.status == 200  # dev tokens follow the configured claims
        async with http.post(f"{stack.gateway}{path}", headers=stranger) as response:
            assert response.status == 405


async def test_the_default_limits_admit_the_load_scripts_first_wave(
    stack: ServiceStack, http: aiohttp.ClientSession
) -> None:
    """All 200 virtual users start at once on one token: none of them is turned away."""
    await stack.create_account(http, "load-script", 1_000)
    headers = bearer(reference_token(stack, "load-script", {"GenerateLlmMeme": False}))

    async def one() -> int:
        async with http.post(
            f"{stack.gateway}/v1/meme", json=LOAD_SCRIPT_BODY, headers=headers
        ) as response:
            await response.read()
            return response.status

    statuses = Counter(await asyncio.gather(*(one() for _ in range(VIRTUAL_USERS))))
    assert statuses == {200: VIRTUAL_USERS}
    async with http.get(f"{stack.gateway}/v1/tokens", headers=headers) as response:
        assert await response.json() == {"tokens": 1_000 - VIRTUAL_USERS}
