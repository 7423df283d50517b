"""A real nats-server with JetStream: the streams, the per-agent consumer, W3C headers across it."""

from __future__ import annotations

import asyncio

import nats
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from obslib.catalogue.hops import TASK_ID
from obslib.fleet import NatsServer
from obslib.fleet.nats_server import RESULTS_STREAM, ensure_streams
from obslib.fleet.telemetry import extract_context, has_span, inject_context
from obslib.settings import Settings


def test_server_is_stopped_and_its_store_removed_even_when_the_body_fails() -> None:
    server = NatsServer()
    with pytest.raises(RuntimeError), server:
        store = server.work_dir
        assert (
            store is not None
            and server.running
            and store.exists()
            and server.url.startswith("nats://127.0.0.1:")
        )
        raise RuntimeError("body failed")
    assert not server.running and not store.exists()


def test_headers_carry_trace_context_through_jetstream(
    nats_server: NatsServer, settings: Settings
) -> None:
    tracer = TracerProvider().get_tracer("test")
    upstream = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("daedalus", "ingress")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(upstream))
    parent = baggage.set_baggage(TASK_ID, "task-42", context=parent)
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span("nats.publish") as producer:
            headers = inject_context()
    finally:
        otel_context.detach(token)
    assert {"traceparent", "tracestate", "baggage"} <= headers.keys()
    subject = settings.task_subject("codex")

    async def scenario() -> tuple[list, dict]:
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await ensure_streams(js, settings.nats_stream)
            await ensure_streams(js, settings.nats_stream)  # declaring again is harmless
            streams = {
                name: (await js.stream_info(name)).config.subjects
                for name in (settings.nats_stream, RESULTS_STREAM)
            }
            sub = await js.pull_subscribe(subject, durable="codex", stream=settings.nats_stream)
            consumer = await js.consumer_info(settings.nats_stream, "codex")
            streams["consumer filter"] = [consumer.config.filter_subject]
            await js.publish(subject, b"with", headers=headers)
            await js.publish(subject, b"without")
            messages = await sub.fetch(2, timeout=5)
            for msg in messages:
                await msg.ack()
            return messages, streams
        finally:
            await nc.close()

    messages, streams = asyncio.run(scenario())
    assert streams == {
        settings.nats_stream: ["agent.tasks.>"],
        RESULTS_STREAM: ["agent.results.>"],
        "consumer filter": [subject],
    }
    with_headers, without_headers = messages
    assert with_headers.metadata.stream == settings.nats_stream
    received = extract_context(with_headers.headers)
    remote = trace.get_current_span(received).get_span_context()
    assert remote.trace_id == upstream.trace_id
    assert remote.span_id == producer.get_span_context().span_id
    assert remote.trace_state.get("daedalus") == "ingress"
    assert baggage.get_baggage(TASK_ID, received) == "task-42"
    # A message without headers carries no context: a consumer span would start a new trace.
    assert not has_span(extract_context(without_headers.headers))
