"""HTTP client of the meme service: keep-alive pool, per-kind timeouts, AI readiness."""

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
from shared.aio import sleep_unless
from shared.contract import Kind
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
        self.timeouts = {
            "text": aiohttp.ClientTimeout(total=timeout_s),
            "ai": aiohttp.ClientTimeout(total=ai_timeout_s),
        }
        # What the last readiness watch saw; nothing else changes them.
        self.up = False
        self.ai_available = False
        self._session: aiohttp.ClientSession | None = None

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
                    if params.format == "png":
                        return Meme(body=None, png=raw)
                    return Meme(body=orjson.loads(raw))
                return self._upstream_error(response.status, raw)
        except TimeoutError:
            raise ApiError("upstream_timeout", "the meme service timed out") from None
        except (aiohttp.ClientError, orjson.JSONDecodeError):
            raise ApiError("upstream_error", "the meme service failed") from None

    @staticmethod
    def _upstream_error(status: int, raw: bytes) -> Meme:
        code = ""
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            code = orjson.loads(raw)["error"]["code"]
        if code == "ai_unavailable" or status == 503:
            raise ApiError("upstream_unavailable", "AI memes are unavailable right now")
        if code == "upstream_timeout" or status == 504:
            raise ApiError("upstream_timeout", "the meme generator timed out")
        raise ApiError("upstream_error", f"the meme service answered {status}")

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
        self.up = bool(body)
        return self.up

    async def watch_readiness(self, stop: asyncio.Event, every_s: float = 2.0) -> None:
        while not stop.is_set():
            await self.ready()
            await sleep_unless(stop, every_s)
