"""Prometheus metrics shared by the services: HTTP traffic by route and status."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import Counter, Histogram

from shared.web import Handler

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

HTTP_REQUESTS = Counter(
    "maas_http_requests_total",
    "HTTP requests answered, by route and status",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "maas_http_request_duration_seconds",
    "Time to answer an HTTP request; `kind` is the meme kind where there is one",
    ["service", "route", "kind"],
    buckets=LATENCY_BUCKETS,
)
METRIC_KIND = "metric_kind"


def http_metrics_middleware(service: str) -> web.middleware:  # type: ignore[valid-type]
    """Count and time every request under its route template, not its raw path.

    The labelled children are kept (a few per route): `labels()` validates and locks on
    every call, a measurable share of a cheap request.
    """
    counted: dict[tuple[str, str, int], Counter] = {}
    timed: dict[tuple[str, str], Histogram] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method, kind = request.method, request.get(METRIC_KIND, "")
            count = counted.get((route, method, status))
            if count is None:
                count = HTTP_REQUESTS.labels(service, route, method, str(status))
                counted[(route, method, status)] = count
            count.inc()
            latency = timed.get((route, kind))
            if latency is None:
                latency = timed[(route, kind)] = HTTP_LATENCY.labels(service, route, kind)
            latency.observe(time.perf_counter() - started)

    return middleware
