"""Tracing's switches and its sampler, without a collector."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from shared import tracing
from shared.tracing_sdk import WorkOnly, sampled_ratio


def test_traces_are_off_unless_an_otlp_endpoint_is_set_and_the_sdk_not_disabled() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1"})
    assert not tracing.wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"}
    )


def test_off_a_span_is_nothing_and_no_context_is_written_into_events() -> None:
    assert not tracing.enabled()
    with tracing.span("charge", links=["00-" + "a" * 32 + "-" + "b" * 16 + "-01"]) as span:
        assert span is None
    assert tracing.traceparent() == ""
    assert tracing.log_fields() == {}


def test_a_link_is_made_only_from_a_valid_traceparent() -> None:
    link = tracing.linked("00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert link is not None
    assert link.context.trace_id == int("a" * 32, 16)
    assert tracing.linked("") is None
    assert tracing.linked("00-not-a-context") is None
    assert tracing.linked("00-" + "0" * 32 + "-" + "b" * 16 + "-01") is None


def test_the_sampler_setting_gives_the_share_of_new_traces() -> None:
    assert sampled_ratio({}) == 1.0
    assert sampled_ratio({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}) == 0.0
    ratio = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
    assert sampled_ratio(ratio) == 0.01
    assert sampled_ratio({"OTEL_TRACES_SAMPLER": "traceidratio"}) == 1.0


def link(sampled: bool) -> Link:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return Link(SpanContext(int("a" * 32, 16), int("b" * 16, 16), True, flags))


def test_a_background_client_call_never_starts_a_trace_and_linked_work_follows_its_request() -> (
    None
):
    sampler = WorkOnly(0.0)
    trace_id = int("c" * 32, 16)
    poll = sampler.should_sample(None, trace_id, "XRANGE", SpanKind.CLIENT)
    assert poll.decision == Decision.DROP
    assert WorkOnly(1.0).should_sample(None, trace_id, "PING", SpanKind.CLIENT).decision == (
        Decision.DROP
    )
    served = WorkOnly(1.0).should_sample(None, trace_id, "GET /memes", SpanKind.SERVER)
    assert served.decision == Decision.RECORD_AND_SAMPLE
    apply = sampler.should_sample(
        None, trace_id, "ledger apply", SpanKind.CONSUMER, links=[link(False), link(True)]
    )
    assert apply.decision == Decision.RECORD_AND_SAMPLE, "a sampled request's events"
    unsampled = sampler.should_sample(
        None, trace_id, "ledger apply", SpanKind.CONSUMER, links=[link(False)]
    )
    assert unsampled.decision == Decision.DROP
