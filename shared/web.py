"""aiohttp pieces every service uses: JSON answers, JSON errors, health and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from shared.aio import sleep_unless
from shared.errors import ApiError
from shared.stores import STORE_UNAVAILABLE
from shared.tally import Tally

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# How long a client may take to send a request body: a slow sender holds a handler.
BODY_TIMEOUT_S = web.AppKey("body_timeout_s", float)

CLOSE = {"Connection": "close"}

_HTTP_ERROR_CODES = {
    400: "invalid_params",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), status=error.status, headers=error.headers)


STORE_TROUBLE = Tally(log, "a store was unavailable; requests answered 503 (by error)")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; never let a stack trace reach a client."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_ERROR_CODES.get(
            exc.status, "invalid_params" if exc.status < 500 else "internal_error"
        )
        message = (
            exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
        )
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_response(
            {"error": {"code": code, "message": message}}, status=exc.status, headers=headers
        )
    # The client's answer is 503 with Retry-After, not 500: retrying is right and nothing
    # is wrong with the request or the code.
    except STORE_UNAVAILABLE as error:
        STORE_TROUBLE.add(type(error).__name__)
        return error_response(
            ApiError(
                "upstream_unavailable",
                "a store behind this service is unavailable; retry shortly (nothing is "
                "charged for a meme you did not get, and a credit's Idempotency-Key makes "
                "its retry safe)",
                headers={"Retry-After": "1"},
            )
        )
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(ApiError("internal_error", "internal error"))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 the client can act on.

    The size limit is the application's `client_max_size` (aiohttp answers 413); the
    time limit is the application's BODY_TIMEOUT_S (408).
    """
    try:
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT_S, 5.0)):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(
            "request_timeout", "the request body did not arrive in time", headers=CLOSE
        ) from None
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ApiError("invalid_params", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_params", "body must be a JSON object")
    return body


class AnswerTooLarge(ValueError):
    """An upstream answered more bytes than we are willing to hold."""


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """An upstream answer's body, refused once it passes `limit` bytes.

    aiohttp reads a whole body into memory; an identity provider or a geocoder that
    answers gigabytes (broken or hostile) must not take the process's memory with it.
    """
    if response.content_length is not None and response.content_length > limit:
        raise AnswerTooLarge(f"answer of {response.content_length} bytes, limit {limit}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(f"answer over {limit} bytes")
    return bytes(body)


class Readiness:
    """Whether a process can serve, from checks run in the background.

    `/readyz` is unauthenticated and public, so it answers from the last result: a
    flood of it costs nothing downstream (no Redis PING, no billed SQS call per probe).
    `probes` reach dependencies, at most once per `every_s`; `flags` are read as they
    are (a supervised loop is running, a watch saw the peer up).

    A probe that has not answered within `within_s` counts as failed but is never
    cancelled: it ends by its client's own timeouts, and the next check waits for it
    instead of starting another. Cancelling a driver's call from outside can break the
    driver for good: an async pymongo client cancelled while its server selection was
    giving up a wait keeps its topology lock, and every later MongoDB call of the
    process hangs (a ledger stopped applying, holding its messages).
    """

    def __init__(
        self,
        probes: Mapping[str, Callable[[], Awaitable[object]]],
        flags: Mapping[str, Callable[[], bool]] | None = None,
        *,
        every_s: float = 2.0,
        within_s: float = 2.0,
        extra: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.probes = probes
        self.flags = flags or {}
        self.every_s = every_s
        self.within_s = within_s
        self.extra = extra
        self._results: dict[str, bool] = {}
        self._probing: dict[str, asyncio.Future[object]] = {}

    async def check(self) -> None:
        for name, probe in self.probes.items():
            if name not in self._probing or self._probing[name].done():
                self._probing[name] = asyncio.ensure_future(probe())
                self._probing[name].add_done_callback(_answered)
        if self._probing:
            await asyncio.wait(self._probing.values(), timeout=self.within_s)
        self._results = {name: _answered(p) for name, p in self._probing.items()}

    async def run(self, stop: asyncio.Event) -> None:
        """Check every `every_s` until `stop`, then give the probes still out `within_s`
        to end (one stuck on a frozen dependency is left, never cancelled)."""
        while not stop.is_set():
            await self.check()
            await sleep_unless(stop, self.every_s)
        if self._probing:
            await asyncio.wait(self._probing.values(), timeout=self.within_s)

    def checks(self) -> dict[str, bool]:
        probes = {name: self._results.get(name, False) for name in self.probes}
        return probes | {name: flag() for name, flag in self.flags.items()}

    def answer(self) -> web.Response:
        checks = self.checks()
        ready = all(checks.values())
        return json_response(
            {"status": "ready" if ready else "unavailable", "checks": checks, **self.extra()},
            status=200 if ready else 503,
        )


def _answered(probe: asyncio.Future[object]) -> bool:
    """Whether `probe` ended with an answer; reading its error also keeps asyncio from
    reporting it as never retrieved."""
    return probe.done() and not probe.cancelled() and probe.exception() is None


READINESS = web.AppKey("readiness", Readiness)


async def serve_readiness(
    app: web.Application, readiness: Readiness, stop: asyncio.Event
) -> asyncio.Task[None]:
    """Check once, so `/readyz` has a verdict from the start, then keep checking."""
    await readiness.check()
    app[READINESS] = readiness
    return asyncio.create_task(readiness.run(stop))


async def readyz(request: web.Request) -> web.Response:
    """The last background check's verdict (503 until the process has one)."""
    readiness = request.app.get(READINESS)
    if readiness is None:
        return json_response({"status": "starting", "checks": {}}, status=503)
    return readiness.answer()


async def healthz(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def metrics_handler() -> Handler:
    """Prometheus text; summed over the worker processes when they share a port."""
    registry: CollectorRegistry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    return metrics
