"""The meme service as the gateway sees it: a real app on loopback, real fakes, real Redis."""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from infra.local.stack import cache_redis_server, free_port, start, stop_pid
from services.meme.bootstrap import build_app
from services.meme.domain.places import geohash
from shared.contract import MAX_MEME_BATCH, MAX_MEME_BATCH_BYTES
from shared.settings import Settings
from tests.fakes.geocoder_server import FakeGeocoder
from tests.fakes.openai_server import FakeOpenAI
from tests.metrics import sample


def meme_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "OPENAI_BASE_URL": None,
        "OPENAI_API_KEY": None,
        "MAAS_GOOGLE_API_KEY": None,
        "geocoder": "offline",
        "geocoder_url": None,
        "ai_model": "fake-model",
        "ai_timeout_s": 10.0,
        "ai_max_retries": 2,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def meme_service(**overrides: Any) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(meme_settings(**overrides)))) as client:
        yield client


async def generate(client: TestClient[Any, Any], **body: Any) -> tuple[int, dict[str, Any]]:
    body = {"lat": None, "lon": None, "kind": "text", **body}
    async with client.post("/v1/generate", json=body) as response:
        return response.status, orjson.loads(await response.read())


@pytest.fixture(scope="module")
def cache_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    run_dir = tmp_path_factory.mktemp("meme-cache")
    running = start(cache_redis_server(port, run_dir), run_dir)
    yield f"redis://127.0.0.1:{port}/0"
    stop_pid(running.process.pid)


@pytest.fixture
async def fake_ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def fake_geocoder() -> AsyncIterator[FakeGeocoder]:
    async with FakeGeocoder() as server:
        yield server


# --- places --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "name", "country"),
    [
        (40.7306, -73.9352, "Long Island City", "US"),
        (48.8566, 2.3522, "Paris", "FR"),
        (35.6762, 139.6503, "Tokyo", "JP"),
        (-33.8688, 151.2093, "Sydney", "AU"),
    ],
)
async def test_known_coordinates_name_the_place_in_the_meme(
    lat: float, lon: float, name: str, country: str
) -> None:
    async with meme_service() as client:
        status, body = await generate(client, query="rent prices", lat=lat, lon=lon)
    assert status == 200
    location = body["location"]
    assert (location["name"], location["country"], location["source"]) == (name, country, "offline")
    assert location["distance_km"] < 5
    assert isinstance(location["lat"], float)
    assert isinstance(location["lon"], float)
    assert name in body["text"]
    assert "rent prices" in body["text"]
    assert body["kind"] == "text"
    assert body["generator"].startswith("template/")


async def test_open_pacific_answers_open_water_with_the_nearest_place() -> None:
    async with meme_service() as client:
        status, body = await generate(client, query="sharks", lat=0, lon=-140)
    assert status == 200
    location = body["location"]
    assert location["name"].startswith("the open ocean near ")
    assert location["distance_km"] > 500
    assert location["name"] in body["text"]


async def test_no_coordinates_no_location() -> None:
    async with meme_service() as client:
        status, body = await generate(client, query="cats", request_id="r1")
    assert status == 200
    assert body["location"] is None
    assert "cats" in body["text"]


async def test_same_request_same_meme_different_ids_vary() -> None:
    async with meme_service() as client:
        first = await generate(client, query="cats", lat=48.85, lon=2.35, request_id="same")
        again = await generate(client, query="cats", lat=48.85, lon=2.35, request_id="same")
        texts = {
            (await generate(client, query="cats", lat=48.85, lon=2.35, request_id=f"r{i}"))[1][
                "text"
            ]
            for i in range(10)
        }
    assert first == again
    assert len(texts) > 3


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        orjson.dumps({"query": "", "lat": None, "lon": None, "kind": "text"}),
        orjson.dumps({"query": "cats", "lat": 100, "lon": 0, "kind": "text"}),
        orjson.dumps({"query": "cats", "lat": None, "lon": None, "kind": "video"}),
    ],
)
async def test_bad_bodies_are_400_invalid_params(body: bytes) -> None:
    async with meme_service() as client, client.post("/v1/generate", data=body) as response:
        status, answer = response.status, orjson.loads(await response.read())
    assert status == 400
    assert answer["error"]["code"] == "invalid_params"


async def test_oversized_body_is_413() -> None:
    body = {"query": "x" * (MAX_MEME_BATCH_BYTES + 1), "lat": None, "lon": None, "kind": "text"}
    async with (
        meme_service() as client,
        client.post("/v1/generate", json=body) as response,
    ):
        assert response.status == 413
        assert orjson.loads(await response.read())["error"]["code"] == "payload_too_large"


# --- batches -------------------------------------------------------------------------


async def generate_batch(
    client: TestClient[Any, Any], items: list[Any]
) -> tuple[int, dict[str, Any]]:
    async with client.post("/v1/generate-batch", json={"requests": items}) as response:
        return response.status, orjson.loads(await response.read())


async def test_a_batch_answers_each_item_as_its_own_call_would() -> None:
    items: list[dict[str, Any]] = [
        {"query": "rent prices", "lat": 48.8566, "lon": 2.3522, "kind": "text",
         "request_id": "b-1"},
        {"query": "cats", "lat": None, "lon": None, "kind": "text", "request_id": "b-2"},
        {"query": "sharks", "lat": 0, "lon": -140, "kind": "text", "request_id": "b-3"},
        {"query": "tokyo rent", "lat": 35.6762, "lon": 139.6503, "kind": "text",
         "request_id": "b-4"},
    ]  # fmt: skip
    async with meme_service() as client:
        status, answer = await generate_batch(client, items)
        singles = [await generate(client, **item) for item in items]
    assert status == 200
    assert [r["status"] for r in answer["results"]] == [200] * len(items)
    assert [r["meme"] for r in answer["results"]] == [body for _, body in singles]


async def test_a_bad_item_gets_its_own_error_and_the_others_their_memes() -> None:
    good = {"query": "cats", "lat": 48.85, "lon": 2.35, "kind": "text", "request_id": "g"}
    items = [
        good,
        {"query": "", "kind": "text"},
        {"query": "cats", "kind": "ai"},
        {"query": "cats", "kind": "text", "format": "png"},
        "not an object",
        {**good, "lat": 91},
    ]
    async with meme_service() as client:
        status, answer = await generate_batch(client, items)
        _, single = await generate(client, **good)
    assert status == 200
    results = answer["results"]
    assert results[0] == {"status": 200, "meme": single}
    assert [r["status"] for r in results[1:]] == [400] * 5
    assert {r["error"]["code"] for r in results[1:]} == {"invalid_params"}
    assert "text memes as JSON" in results[2]["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"requests": []},
        {"requests": "cats"},
        {"requests": [{"query": "a"}] * (MAX_MEME_BATCH + 1)},
    ],
)
async def test_a_batch_that_is_not_a_list_of_one_to_the_maximum_is_400(
    body: dict[str, Any],
) -> None:
    async with meme_service() as client, client.post("/v1/generate-batch", json=body) as response:
        assert response.status == 400
        assert orjson.loads(await response.read())["error"]["code"] == "invalid_params"


async def test_readiness_says_the_service_takes_batches() -> None:
    async with meme_service() as client, client.get("/readyz") as response:
        assert orjson.loads(await response.read())["batch"] is True


# --- images --------------------------------------------------------------------------


async def test_png_format_renders_the_same_caption_at_the_configured_size() -> None:
    request = {"query": "pineapple pizza", "lat": 48.8566, "lon": 2.3522, "request_id": "png-1"}
    async with meme_service(image_width=480, image_height=360) as client:
        _, as_json = await generate(client, **request)
        async with client.post(
            "/v1/generate", json={**request, "kind": "text", "format": "png"}
        ) as response:
            assert response.status == 200
            assert response.content_type == "image/png"
            header_text = response.headers["X-Meme-Text"]
            generator = response.headers["X-Meme-Generator"]
            png = await response.read()
    assert header_text.isascii()
    assert unquote(header_text) == as_json["text"]
    assert generator == as_json["generator"]
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (480, 360))


# --- AI ------------------------------------------------------------------------------


async def test_ai_meme_is_the_fake_models_caption(fake_ai: FakeOpenAI) -> None:
    fake_ai.caption = '"Croissants at dawn\nParis never sleeps"'
    async with meme_service(OPENAI_BASE_URL=fake_ai.url, OPENAI_API_KEY="sk-test") as client:
        status, body = await generate(
            client, query="croissants", lat=48.8566, lon=2.3522, kind="ai"
        )
    assert status == 200
    assert body["text"] == "Croissants at dawn\nParis never sleeps"
    assert (body["kind"], body["generator"]) == ("ai", "ai/fake-model")
    assert body["location"]["name"] == "Paris"
    sent = fake_ai.requests[0]
    assert sent["model"] == "fake-model"
    user = orjson.loads(sent["messages"][-1]["content"])
    assert user == {"topic": "croissants", "place": "Paris"}


async def test_slow_ai_does_not_delay_text_memes(fake_ai: FakeOpenAI) -> None:
    fake_ai.slow(5.0)
    async with meme_service(
        OPENAI_BASE_URL=fake_ai.url, ai_concurrency=4, ai_timeout_s=30.0
    ) as client:
        ai_calls = [
            asyncio.create_task(generate(client, query=f"slow {i}", kind="ai")) for i in range(8)
        ]
        await fake_ai.wait_for_calls(4)

        async def timed_text_meme(i: int) -> float:
            started = time.perf_counter()
            status, _ = await generate(
                client, query=f"topic {i}", lat=35.6762, lon=139.6503, request_id=f"t{i}"
            )
            assert status == 200
            return time.perf_counter() - started

        latencies = sorted(await asyncio.gather(*(timed_text_meme(i) for i in range(50))))
        still_hanging = sum(not task.done() for task in ai_calls)
        fake_ai.release()
        ai_answers = await asyncio.gather(*ai_calls)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert still_hanging == 8
    # Every text meme was answered while all AI calls still hung (above): they never queue
    # behind AI. The bound only catches a text meme waiting for a slot; speed is the bench's.
    assert p99 < 1.0, f"text meme p99 {p99 * 1000:.1f} ms, median {statistics.median(latencies)}"
    assert all(status == 200 for status, _ in ai_answers)


@pytest.mark.parametrize("statuses", [(500,), (429,)])
async def test_ai_retries_a_failed_answer(fake_ai: FakeOpenAI, statuses: tuple[int, ...]) -> None:
    fake_ai.fail_with(*statuses)
    async with meme_service(OPENAI_BASE_URL=fake_ai.url) as client:
        status, body = await generate(client, query="retries", kind="ai")
    assert status == 200
    assert body["text"] == fake_ai.caption
    assert fake_ai.calls == 2


async def test_ai_failing_after_retries_is_502(fake_ai: FakeOpenAI) -> None:
    fake_ai.fail_with(500, 502, 503)
    before = sample("maas_meme_generated_total", generator="ai", outcome="upstream_error")
    async with meme_service(OPENAI_BASE_URL=fake_ai.url, ai_max_retries=2) as client:
        status, body = await generate(client, query="doomed", kind="ai")
    assert (status, body["error"]["code"]) == (502, "upstream_error")
    assert fake_ai.calls == 3
    after = sample("maas_meme_generated_total", generator="ai", outcome="upstream_error")
    assert after == before + 1


async def test_ai_timeout_is_504_within_the_deadline(fake_ai: FakeOpenAI) -> None:
    fake_ai.slow(5.0)
    async with meme_service(
        OPENAI_BASE_URL=fake_ai.url, ai_timeout_s=0.3, ai_max_retries=2
    ) as client:
        started = time.perf_counter()
        status, body = await generate(client, query="too slow", kind="ai")
        elapsed = time.perf_counter() - started
    assert (status, body["error"]["code"]) == (504, "upstream_timeout")
    assert elapsed < 1.5


async def test_no_endpoint_is_503_and_not_advertised() -> None:
    async with meme_service() as client:
        status, body = await generate(client, query="cats", kind="ai")
        async with client.get("/readyz") as response:
            ready = orjson.loads(await response.read())
    assert (status, body["error"]["code"]) == (503, "ai_unavailable")
    assert ready == {"status": "ready", "ai_available": False, "batch": True}


async def test_configured_endpoint_is_advertised(fake_ai: FakeOpenAI) -> None:
    async with meme_service(OPENAI_BASE_URL=fake_ai.url) as client:
        async with client.get("/readyz") as response:
            ready = orjson.loads(await response.read())
        async with client.get("/healthz") as response:
            health = orjson.loads(await response.read())
    assert ready == {"status": "ready", "ai_available": True, "batch": True}
    assert health == {"status": "ok"}


# --- remote geocoders ----------------------------------------------------------------


async def test_nominatim_cache_hit_skips_the_network(
    fake_geocoder: FakeGeocoder, cache_url: str
) -> None:
    first_point, nearby = (45.76400, 4.83560), (45.76405, 4.83565)
    assert geohash(*first_point, 7) == geohash(*nearby, 7)
    hits = sample("maas_geocoder_cache_total", result="hit")
    async with meme_service(
        geocoder="nominatim",
        geocoder_url=fake_geocoder.base_url,
        cache_redis_url=cache_url,
        geohash_precision=7,
    ) as client:
        _, first = await generate(client, query="cats", lat=first_point[0], lon=first_point[1])
        _, second = await generate(client, query="cats", lat=nearby[0], lon=nearby[1])
        _, elsewhere = await generate(client, query="cats", lat=45.9, lon=4.9)
    assert first["location"]["name"] == second["location"]["name"] == "Fakeville"
    assert first["location"]["source"] == second["location"]["source"] == "nominatim"
    assert "Fakeville" in second["text"]
    assert fake_geocoder.calls == 2
    assert elsewhere["location"]["source"] == "nominatim"
    assert sample("maas_geocoder_cache_total", result="hit") == hits + 1
    assert fake_geocoder.last_params["format"] == "jsonv2"


async def test_a_batch_asks_a_remote_geocoder_each_point_through_the_cache(
    fake_geocoder: FakeGeocoder, cache_url: str
) -> None:
    points = [(45.1, 4.1), (45.2, 4.2), (45.1, 4.1)]  # the third: the first's cached cell
    async with meme_service(
        geocoder="nominatim", geocoder_url=fake_geocoder.base_url, cache_redis_url=cache_url
    ) as client:
        await generate(client, query="warm", lat=points[0][0], lon=points[0][1])
        status, answer = await generate_batch(
            client,
            [{"query": "cats", "lat": lat, "lon": lon, "kind": "text"} for lat, lon in points],
        )
    assert status == 200
    places = [r["meme"]["location"] for r in answer["results"]]
    assert [(p["name"], p["source"]) for p in places] == [("Fakeville", "nominatim")] * 3
    assert fake_geocoder.calls == 2  # the warm-up and the second point


async def test_google_wire_format_and_key(fake_geocoder: FakeGeocoder, cache_url: str) -> None:
    fake_geocoder.name = "Googleton"
    async with meme_service(
        geocoder="google",
        geocoder_url=fake_geocoder.base_url,
        MAAS_GOOGLE_API_KEY="g-key",
        cache_redis_url=cache_url,
    ) as client:
        status, body = await generate(client, query="cats", lat=-12.0464, lon=-77.0428)
    assert status == 200
    location = body["location"]
    assert (location["name"], location["admin1"], location["source"]) == (
        "Googleton",
        "Fake State",
        "google",
    )
    assert location["lat"] == pytest.approx(-12.0464)
    assert fake_geocoder.last_params["key"] == "g-key"
    assert fake_geocoder.last_params["latlng"] == "-12.046400,-77.042800"


async def test_provider_down_falls_back_offline(
    fake_geocoder: FakeGeocoder, cache_url: str
) -> None:
    fake_geocoder.down = True
    errors = sample("maas_geocoder_errors_total", provider="nominatim")
    async with meme_service(
        geocoder="nominatim", geocoder_url=fake_geocoder.base_url, cache_redis_url=cache_url
    ) as client:
        status, body = await generate(client, query="cats", lat=48.8566, lon=2.3522)
    assert status == 200
    assert (body["location"]["name"], body["location"]["source"]) == ("Paris", "offline-fallback")
    assert fake_geocoder.calls == 1
    assert sample("maas_geocoder_errors_total", provider="nominatim") == errors + 1


HOSTILE_ANSWERS = {
    "oversized": b'{"address": {"city": "' + b"x" * (4 << 20) + b'"}}',
    "not json": b"<html>surprise</html>",
    "wrong types": b'{"address": ["city"], "lat": {"deg": 1}, "lon": null}',
    "not an object": b"[1, 2, 3]",
}


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
async def test_hostile_geocoder_answers_fall_back_offline(
    fake_geocoder: FakeGeocoder, cache_url: str, answer: bytes
) -> None:
    fake_geocoder.raw_answer = answer
    async with meme_service(
        geocoder="nominatim", geocoder_url=fake_geocoder.base_url, cache_redis_url=cache_url
    ) as client:
        status, body = await generate(client, query="cats", lat=41.9028, lon=12.4964)
    assert status == 200
    assert (body["location"]["name"], body["location"]["source"]) == ("Rome", "offline-fallback")


HOSTILE_AI_ANSWERS = {
    "oversized": b'{"choices": [{"message": {"content": "' + b"x" * (8 << 20) + b'"}}]}',
    "not json": b"<html>surprise</html>",
    "no choices": b'{"id": "x", "object": "chat.completion"}',
    "wrong types": b'{"choices": [{"message": {"content": ["a", "b"]}}]}',
    "null content": b'{"choices": [{"message": null}]}',
}


@pytest.mark.parametrize("answer", HOSTILE_AI_ANSWERS.values(), ids=HOSTILE_AI_ANSWERS.keys())
async def test_hostile_ai_answers_are_502(fake_ai: FakeOpenAI, answer: bytes) -> None:
    fake_ai.raw_answer = answer
    async with meme_service(OPENAI_BASE_URL=fake_ai.url, ai_max_retries=0) as client:
        status, body = await generate(client, query="cats", kind="ai")
    assert (status, body["error"]["code"]) == (502, "upstream_error")


async def test_provider_unreachable_and_redis_down_still_answer() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    no_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with meme_service(
        geocoder="nominatim", geocoder_url=closed, cache_redis_url=no_redis
    ) as client:
        status, body = await generate(client, query="cats", lat=35.6762, lon=139.6503)
    assert status == 200
    assert (body["location"]["name"], body["location"]["source"]) == ("Tokyo", "offline-fallback")


async def test_metrics_expose_generators_and_http() -> None:
    async with meme_service() as client:
        await generate(client, query="cats", lat=1.0, lon=1.0)
        async with client.get("/metrics") as response:
            text = (await response.text()).splitlines()
    assert any(line.startswith('maas_meme_generated_total{generator="template"') for line in text)
    assert any(line.startswith("maas_meme_generate_duration_seconds_bucket") for line in text)
    assert any('service="meme"' in line and "/v1/generate" in line for line in text)
