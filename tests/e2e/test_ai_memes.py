"""AI memes end to end: the premium role, the price, the refund when the model is slow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.stack import PARIS, StackFactory


@pytest.fixture
async def ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(caption="When the croissant\nis flakier than your plans") as server:
        yield server


async def test_premium_callers_get_the_models_caption_for_two_tokens(
    make_stack: StackFactory, ai: FakeOpenAI, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(openai_base_url=ai.url, openai_api_key="fake-key")
    await stack.create_account(http, "premium", 10)
    headers = stack.auth("premium", ("ai",))
    async with http.get(f"{stack.gateway}/memes", params=PARIS, headers=headers) as r:
        meme = await r.json()
    assert (r.status, meme["kind"], meme["tokens_charged"]) == (200, "ai", 2)
    assert meme["text"] == "When the croissant\nis flakier than your plans"
    assert meme["location"]["name"] == "Paris"
    prompt = str(ai.requests[0]["messages"])
    assert "croissants" in prompt
    assert "Paris" in prompt
    async with http.get(
        f"{stack.gateway}/memes", params={**PARIS, "kind": "text"}, headers=headers
    ) as r:
        assert (await r.json())["tokens_charged"] == 1
    assert (await stack.redis_account("premium"))["balance"] == "7"


async def test_a_model_too_slow_is_504_and_refunded(
    make_stack: StackFactory, ai: FakeOpenAI, http: aiohttp.ClientSession
) -> None:
    stack = await make_stack(
        openai_base_url=ai.url, openai_api_key="fake-key", ai_timeout_s=0.5, ai_max_retries=0
    )
    await stack.create_account(http, "premium-slow", 10)
    ai.slow(5)
    async with http.get(
        f"{stack.gateway}/memes", params=PARIS, headers=stack.auth("premium-slow", ("ai",))
    ) as r:
        body = await r.json()
    assert r.status == 504
    assert body["error"]["code"] == "upstream_timeout"
    assert body["error"]["tokens_remaining"] == 10
    ai.release()
    await stack.drained("premium-slow")
    stored = await stack.mongo_account("premium-slow")
    assert stored is not None
    assert (stored["balance"], stored["seq"]) == (10, 2)
    assert stored["usage"]["calls"] == 0
