"""HTTP client of the meme service: keep-alive pool, per-kind timeouts, AI readiness,
and text memes of one loop step sent as one batch.

An HTTP exchange costs both processes more than a text meme does (aiohttp's client here
and its server there were half the hop's CPU, docs/performance.md). So, like the Redis
calls (shared/pipelining.py), the text memes asked for in one step of the event loop go
as one `POST /v1/generate-batch`, each caller keeping its own answer or error. Only
requests whose trace is not sampled are batched: a sampled one goes alone, so the meme
service's spans are children of its request's. Batches start once the meme service's
readiness says it takes them (a rolling deploy may still run an older one), and a batch
answered 404 goes again call by call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from services.gateway.domain.params import MemeRequest
from shared import tracing
from shared.aio import StepBatcher, sleep_unless
from shared.contract import MAX_MEME_BATCH, Kind
from shared.errors import ApiError
from shared.tally import Tally

log = logging.getLogger(__name__)
TROUBLE = Tally(log, "the meme service failed requests (by kind:error; each refunded)")


@dataclass(frozen=True, slots=True)
class Meme:
    body: dict[str, Any] | None
    png: bytes | None = None


class MemeClient:
    def __init__(self, base_url: str, timeout_s: float, ai_timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        # Parsed once: a string URL is parsed again on every request.
        self.generate_url = URL(f"{self.base_url}/v1/generate")
        self.batch_url = URL(f"{self.base_url}/v1/generate-batch")
        self.timeouts = {
            "text": aiohttp.ClientTimeout(total=timeout_s),
            "ai": aiohttp.ClientTimeout(total=ai_timeout_s),
        }
        # What the last readiness watch saw; nothing else changes them.
        self.up = False
        self.ai_available = False
        self.batches = False
        self._session: aiohttp.ClientSession | None = None
        self._batch = StepBatcher[dict[str, Any], Meme](self._post_batch, MAX_MEME_BATCH)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=256, keepalive_timeout=30, enable_cleanup_closed=True
        )
        # No cookies between services: the jar would only be work on every answer.
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "MemeClient.start() not called"
        return self._session

    async def generate(self, params: MemeRequest, kind: Kind, request_id: str) -> Meme:
        """The meme, or an `ApiError` with a 502/503/504 that the caller refunds (and
        counted in the interval's trouble line)."""
        try:
            return await self._generate(params, kind, request_id)
        except ApiError as error:
            TROUBLE.add(f"{kind}:{error.code}")
            raise

    async def _generate(self, params: MemeRequest, kind: Kind, request_id: str) -> Meme:
        payload = {
            "query": params.query,
            "lat": params.lat,
            "lon": params.lon,
            "kind": kind,
            "format": params.format,
            "request_id": request_id,
        }
        batchable = self.batches and kind == "text" and params.format == "json"
        if batchable and not tracing.traceparent():  # off, or this trace is not sampled
            return await self._batch.add(payload)
        return await self._single(payload, kind, params.format)

    async def _single(self, payload: dict[str, Any], kind: Kind, fmt: str) -> Meme:
        request_id = payload["request_id"]
        try:
            async with self.session.post(
                self.generate_url,
                data=orjson.dumps(payload),
                headers={
                    "Content-Type": "application/json",
                    "X-Request-ID": request_id,
                    **tracing.headers(),
                },
                timeout=self.timeouts[kind],
            ) as response:
                raw = await response.read()
                if response.status == 200:
                    if fmt == "png":
                        return Meme(body=None, png=raw)
                    return Meme(body=orjson.loads(raw))
                raise _upstream_error(response.status, _error_code(raw))
        except TimeoutError:
            raise ApiError("upstream_timeout", "the meme service timed out") from None
        except (aiohttp.ClientError, orjson.JSONDecodeError):
            raise ApiError("upstream_error", "the meme service failed") from None

    async def _post_batch(self, payloads: list[dict[str, Any]]) -> list[Meme | BaseException]:
        """Each payload's meme or error; a failure of the whole call is each one's."""
        try:
            async with self.session.post(
                self.batch_url,
                data=orjson.dumps({"requests": payloads}),
                headers={"Content-Type": "application/json"},
                timeout=self.timeouts["text"],
            ) as response:
                raw = await response.read()
                status = response.status
            if status == 404:  # an older meme service: call by call until it says it can
                self.batches = False
                answers = [self._single(p, "text", "json") for p in payloads]
                return list(await asyncio.gather(*answers, return_exceptions=True))
            if status != 200:
                code = _error_code(raw)
                return [_upstream_error(status, code) for _ in payloads]
            results = orjson.loads(raw)["results"]
            if len(results) != len(payloads):
                raise TypeError("the batch's answer does not match its requests")
            return [
                Meme(body=r["meme"]) if r["status"] == 200
                else _upstream_error(r["status"], r["error"]["code"])
                for r in results
            ]  # fmt: skip
        except TimeoutError:
            return [ApiError("upstream_timeout", "the meme service timed out") for _ in payloads]
        except (aiohttp.ClientError, orjson.JSONDecodeError, KeyError, TypeError):
            return [ApiError("upstream_error", "the meme service failed") for _ in payloads]

    async def ready(self) -> bool:
        """Ask the meme service whether it is up and whether it can make AI memes."""
        try:
            async with self.session.get(
                f"{self.base_url}/readyz", timeout=aiohttp.ClientTimeout(total=1)
            ) as response:
                body = orjson.loads(await response.read()) if response.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            body = {}
        self.ai_available = bool(body.get("ai_available"))
        self.batches = bool(body.get("batch"))
        self.up = bool(body)
        return self.up

    async def watch_readiness(self, stop: asyncio.Event, every_s: float = 2.0) -> None:
        while not stop.is_set():
            await self.ready()
            await sleep_unless(stop, every_s)


def _error_code(raw: bytes) -> str:
    """The `error.code` of an error answer's body, or "" when it has none."""
    with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
        return str(orjson.loads(raw)["error"]["code"])
    return ""


def _upstream_error(status: int, code: str) -> ApiError:
    """What the gateway answers for an error of the meme service (each one refunded)."""
    if code == "ai_unavailable" or status == 503:
        return ApiError("upstream_unavailable", "AI memes are unavailable right now")
    if code == "upstream_timeout" or status == 504:
        return ApiError("upstream_timeout", "the meme generator timed out")
    return ApiError("upstream_error", f"the meme service answered {status}")
