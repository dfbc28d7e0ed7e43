"""OpenTelemetry traces across the pipeline, configured by the standard `OTEL_*` settings.

Off unless an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` turns it off again). Off,
nothing is installed: no instrumentation wraps a library, and `span` is a null context,
so the hot path pays one flag test. On, the SDK reads the rest of `OTEL_*` itself (the
sampler, `OTEL_TRACES_SAMPLER=parentbased_traceidratio` with `OTEL_TRACES_SAMPLER_ARG`;
the exporter's headers and timeouts; `OTEL_SERVICE_NAME`, by default `maas-<service>`),
and spans leave in batches over OTLP/HTTP.

A request's context crosses HTTP in `traceparent` (the aiohttp client and server
instrumentations). It crosses SQS inside each event (`Event.trace`, written with the
event into the outbox): a message packs events of many requests, so the relay's send
span and the ledger's apply span are linked to each event's context rather than
parented by one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

__all__ = ["OTEL_SETTINGS", "SpanKind", "configure", "enabled", "headers", "linked",
           "log_fields", "middlewares", "shutdown", "span", "traceparent", "wanted"]  # fmt: skip

# The SDK's settings the deployment files set beside MaaS's own (docker-compose.yml, the
# Helm chart's `config`); the SDK reads them, and every other `OTEL_*` it knows.
OTEL_SETTINGS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)

# Probes and scrapes would be most of the spans and say nothing about a request; a batch
# of memes holds only requests whose traces are not sampled (see the meme client).
DEFAULT_EXCLUDED_URLS = "healthz,readyz,metrics,generate-batch"

_state = {"enabled": False}
tracer = trace.get_tracer("maas")


def enabled() -> bool:
    return _state["enabled"]


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the `OTEL_*` settings ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(service: str) -> bool:
    """Install the SDK and the instrumentations if traces are wanted; whether they are.

    Before the application and its clients are built: the aiohttp server instrumentation
    replaces `web.Application`, and MongoDB's listener is registered for clients made
    after it.
    """
    if not wanted():
        return False
    # The SDK, its exporter and the instrumentations are imported only when wanted.
    from shared import tracing_sdk  # noqa: PLC0415

    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_CLIENT_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
    tracing_sdk.install(f"maas-{service}")
    _state["enabled"] = True
    return True


def middlewares() -> list[Any]:
    """The services' aiohttp middlewares tracing needs (none when it is off)."""
    if not enabled():
        return []
    from shared import tracing_sdk  # noqa: PLC0415 - loaded only when traces are wanted

    return [tracing_sdk.unsampled_untraced]


def headers() -> dict[str, str]:
    """The current trace context as HTTP headers, sampled or not (see tracing_sdk's
    `unsampled_untraced`); none when tracing is off."""
    if not enabled():
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def shutdown() -> None:
    """Send the spans still batched; called as the process stops."""
    provider = trace.get_tracer_provider()
    if enabled() and hasattr(provider, "shutdown"):
        provider.shutdown()


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    links: Iterable[str] = (),
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span | None]:
    """A span of this process's work, or nothing when tracing is off. `links`: the
    `traceparent`s of the events the work handles (see the module's docstring)."""
    if not enabled() or _unsampled():
        yield None
        return
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        links=[link for tp in links if (link := linked(tp))],
    ) as current:
        yield current


def _unsampled() -> bool:
    """Inside a request its trace does not sample (no span of its work is kept)."""
    current = trace.get_current_span()
    return current.get_span_context().is_valid and not current.is_recording()


def traceparent() -> str:
    """The current context as a W3C `traceparent` for an event, or "" (off, not in a
    span, or in a request that is not sampled: nothing would link to it)."""
    if not enabled() or _unsampled():
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def linked(traceparent_value: str) -> Link | None:
    """A link to the span a `traceparent` names, or None for "" or a malformed one."""
    if not traceparent_value:
        return None
    context = trace.get_current_span(
        propagate.extract({"traceparent": traceparent_value})
    ).get_span_context()
    return Link(context) if context.is_valid else None


def log_fields() -> dict[str, str]:
    """The current trace and span ids for a log line, when a span is current."""
    if not enabled():
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
