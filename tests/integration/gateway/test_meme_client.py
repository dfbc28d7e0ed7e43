"""The gateway's meme client against the real meme service: batches of one loop step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from services.gateway.adapters.meme_client import MemeClient
from services.gateway.domain.params import MemeRequest
from services.meme.bootstrap import build_app
from shared.contract import MAX_MEME_BATCH
from shared.errors import ApiError
from tests.integration.meme.test_meme_service import meme_settings
from tests.metrics import sample

PARIS = MemeRequest("cats", 48.8566, 2.3522, None, "json")


@pytest.fixture
async def memes() -> AsyncIterator[MemeClient]:
    async with TestServer(build_app(meme_settings())) as server:
        client = MemeClient(str(server.make_url("/")), timeout_s=2, ai_timeout_s=2)
        await client.start()
        try:
            await client.ready()
            assert client.batches, "the service says it takes batches"
            yield client
        finally:
            await client.close()


def posts(route: str) -> float:
    return sample(
        "maas_http_requests_total", service="meme", route=route, method="POST", status="200"
    )


def generated() -> float:
    return sample("maas_meme_generated_total", generator="template", outcome="ok")


async def test_memes_asked_for_in_one_step_go_as_one_call_each_with_its_own_answer(
    memes: MemeClient,
) -> None:
    singles, batches = posts("/v1/generate"), posts("/v1/generate-batch")
    count = MAX_MEME_BATCH + 8  # more than one batch holds
    answers = await asyncio.gather(
        *(memes.generate(PARIS, "text", f"req-{i}") for i in range(count))
    )
    assert (posts("/v1/generate") - singles, posts("/v1/generate-batch") - batches) == (0, 2)
    alone = await memes._single(
        {"query": "cats", "lat": 48.8566, "lon": 2.3522, "kind": "text", "format": "json",
         "request_id": "req-3"}, "text", "json",
    )  # fmt: skip
    assert answers[3] == alone
    assert {a.body["location"]["name"] for a in answers if a.body} == {"Paris"}
    assert len({a.body["text"] for a in answers if a.body}) > 3, "each its own request id"


async def test_a_caller_that_gave_up_before_the_step_ended_is_not_sent(
    memes: MemeClient,
) -> None:
    batches, made = posts("/v1/generate-batch"), generated()
    gone = asyncio.ensure_future(memes.generate(PARIS, "text", "gone"))
    await asyncio.sleep(0)  # it has asked
    gone.cancel()
    kept = await memes.generate(PARIS, "text", "kept")
    assert kept.body is not None
    assert gone.cancelled()
    assert (posts("/v1/generate-batch") - batches, generated() - made) == (1, 1)


async def test_a_meme_service_without_batches_is_called_call_by_call(memes: MemeClient) -> None:
    memes.batch_url = URL(f"{memes.base_url}/v1/no-such-route")  # an older meme service
    singles = posts("/v1/generate")
    answers = await asyncio.gather(*(memes.generate(PARIS, "text", f"r{i}") for i in range(3)))
    assert all(a.body and a.body["location"]["name"] == "Paris" for a in answers)
    assert posts("/v1/generate") - singles == 3
    assert memes.batches is False, "until its readiness says otherwise"
    await memes.generate(PARIS, "text", "after")
    assert posts("/v1/generate") - singles == 4


async def test_a_failed_batch_is_each_callers_error(memes: MemeClient) -> None:
    memes.batch_url = URL("http://127.0.0.1:1/v1/generate-batch")  # nothing listens
    outcomes = await asyncio.gather(
        *(memes.generate(PARIS, "text", f"r{i}") for i in range(3)), return_exceptions=True
    )
    assert [(type(o), getattr(o, "code", None)) for o in outcomes] == [
        (ApiError, "upstream_error")
    ] * 3
    assert len({id(o) for o in outcomes}) == 3, "one error each: raised in its own task"
