"""The OpenTelemetry SDK wired for MaaS: imported by shared/tracing.py only when traces
are wanted, so a process without them never loads it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class WorkOnly(Sampler):
    """Which traces start here: work someone asked for, at the configured ratio.

    A client call at the root of a trace has no request behind it (the relay's poll of
    the outbox every few milliseconds, a lease renewed, a readiness probe): it is not a
    trace, or idle processes would export a stream of them. A span linked to a sampled
    span (the relay's send and the ledger's apply, linked to the requests whose events
    they carry) is sampled with it, so a request's trace is whole at any ratio.
    """

    def __init__(self, ratio: float) -> None:
        self.ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        if any(link.context.trace_flags.sampled for link in links or ()):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self.ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WorkOnly({self.ratio.get_description()})"


@web.middleware
async def unsampled_untraced(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request its trace does not sample makes no spans below its own: the Redis,
    MongoDB and HTTP client instrumentations step aside (at 1 %, for the other 99 %), so
    sampling saves their cost and not only the export. The meme service still learns the
    request is unsampled: the meme client sends `traceparent` itself."""
    if trace.get_current_span().is_recording():
        return await handler(request)
    with suppress_instrumentation():
        return await handler(request)


def sampled_ratio(environ: Mapping[str, str]) -> float:
    """The share of new traces `OTEL_TRACES_SAMPLER` asks for (always_on, always_off,
    traceidratio with `OTEL_TRACES_SAMPLER_ARG`, or their parentbased_ forms; a
    caller's sampled `traceparent` is always followed)."""
    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name.endswith("always_off"):
        return 0.0
    if name.endswith("traceidratio"):
        return min(1.0, max(0.0, float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))))
    return 1.0


def install(service_name: str) -> None:
    """A provider exporting batches over OTLP/HTTP (its settings from `OTEL_*`), and the
    instrumentations of the libraries every request goes through."""
    resource = Resource.create({"service.name": service_name}).merge(
        OTELResourceDetector().detect()
    )
    sampler = ParentBased(root=WorkOnly(sampled_ratio(os.environ)))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AioHttpServerInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    PymongoInstrumentor().instrument()
