"""One OpenTelemetry SDK pipeline per service, exporting OTLP/HTTP protobuf to a collector.

Every service of the reference pipeline (orchestrator, proxy, each agent process) owns a
``TracerProvider`` with its own resource (``service.name``, ``k8s.namespace.name``), a batch
processor and an OTLP span exporter; nothing is registered globally. The exporter is wrapped
so it can apply the service's span faults and count the spans the collector accepted.

Span names and kinds come from ``hops.PASS1`` (:meth:`ServiceTelemetry.hop_span`), tracer
(scope) names from ``hops``; trace context crosses NATS headers and the ACP ``_meta`` object
through one TraceContext + Baggage propagator.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from obslib.catalogue.hops import (
    DESTINATION,
    PASS1,
    SCOPE_ORCHESTRATOR,
    SCOPE_PROXY,
    SCOPE_QUEUE,
    TASK_ID,
)
from obslib.fleet.faults import SpanFaults, hop_key
from obslib.fleet.logs import JsonLog

# Attribute names of reference/daedalus-platform.md that hops.py does not define.
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION = "messaging.operation"
MESSAGING_BODY_SIZE = "messaging.message.body.size"
MESSAGING_NATS_STREAM = "messaging.nats.stream"
MESSAGE_ID = "daedalus.message.id"
CONTEXT_ID = "daedalus.context.id"
RPC_SYSTEM = "rpc.system"
RPC_METHOD = "rpc.method"
SESSION_ID = "daedalus.session.id"
PROMPT_LENGTH = "daedalus.prompt.length"
RESPONSE_LENGTH = "daedalus.response.length"
NAMESPACE = "k8s.namespace.name"
SERVICE_NAME = "service.name"

# The agent CLI is not platform code, so it has no scope in hops.py: it gets its module name.
SCOPE_AGENT = "obslib.fleet.agent_cli"
HOP_SCOPES = {
    "ingress": SCOPE_ORCHESTRATOR,
    "dispatch": SCOPE_ORCHESTRATOR,
    "task_publish": SCOPE_QUEUE,
    "task_consume": SCOPE_QUEUE,
    "proxy": SCOPE_PROXY,
    "acp_new": SCOPE_PROXY,
    "agent_new": SCOPE_AGENT,
    "acp_prompt": SCOPE_PROXY,
    "agent_prompt": SCOPE_AGENT,
    "acp_update": SCOPE_PROXY,
    "result_publish": SCOPE_QUEUE,
    "result_collect": SCOPE_ORCHESTRATOR,
}
_KINDS = {kind.name: kind for kind in SpanKind}

# Environment variables that hand W3C context to a process serving one task (set at spawn).
ENV_CONTEXT_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def messaging_attributes(
    operation: str, subject: str, body: bytes, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Attributes of a NATS publish or receive span (as the platform's queue package sets them)."""
    return {
        MESSAGING_SYSTEM: "nats",
        DESTINATION: subject,
        MESSAGING_OPERATION: operation,
        MESSAGING_BODY_SIZE: len(body),
        **(extra or {}),
    }


def inject_context(context: Context | None = None) -> dict[str, str]:
    """W3C ``traceparent`` (and ``tracestate``, ``baggage`` when non-empty) for ``context``."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> Context:
    """The context carried by W3C headers (an empty context when there are none)."""
    return PROPAGATOR.extract(dict(carrier or {}), context=Context())


def has_span(context: Context) -> bool:
    """Whether ``context`` holds a valid (remote or local) span context."""
    return trace.get_current_span(context).get_span_context().is_valid


def trace_id_hex(span: Span) -> str:
    """The 32 lowercase hex characters of ``span``'s trace id."""
    return format(span.get_span_context().trace_id, "032x")


_FORCED_TRACE_ID: ContextVar[int | None] = ContextVar("fleet_forced_trace_id", default=None)
_FORCED_SPAN_ID: ContextVar[int | None] = ContextVar("fleet_forced_span_id", default=None)


class FleetIdGenerator(RandomIdGenerator):
    """Random ids, unless the caller forces the next ones with :func:`forced_ids`."""

    def generate_span_id(self) -> int:
        """A random span id, or the forced one."""
        return _FORCED_SPAN_ID.get() or super().generate_span_id()

    def generate_trace_id(self) -> int:
        """A random trace id, or the forced one."""
        return _FORCED_TRACE_ID.get() or super().generate_trace_id()


@contextlib.contextmanager
def forced_ids(trace_id: int | None = None, span_id: int | None = None) -> Iterator[None]:
    """Make spans started inside this block (in this task or thread) take these ids.

    A span started without a valid parent takes ``trace_id``: that is how the collector starts
    a root span inside the envelope's trace, as the platform's Go collector does. ``span_id``
    reproduces the duplicate-span-id fault.
    """
    trace_token = _FORCED_TRACE_ID.set(trace_id)
    span_token = _FORCED_SPAN_ID.set(span_id)
    try:
        yield
    finally:
        _FORCED_SPAN_ID.reset(span_token)
        _FORCED_TRACE_ID.reset(trace_token)


def _shifted(span: ReadableSpan, shift_ns: int) -> ReadableSpan:
    events = [Event(e.name, e.attributes, e.timestamp + shift_ns) for e in span.events]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=(span.start_time or 0) + shift_ns,
        end_time=(span.end_time or 0) + shift_ns,
        instrumentation_scope=span.instrumentation_scope,
    )


class FleetSpanExporter(SpanExporter):
    """Apply a service's span faults, export, and count what the collector accepted."""

    def __init__(self, inner: SpanExporter, faults: SpanFaults | None = None) -> None:
        self._inner = inner
        self._faults = faults or SpanFaults()
        self._lock = threading.Lock()
        self.exported = 0
        self.failed = 0
        self.withheld = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export ``spans`` after dropping and shifting the faulted ones."""
        batch = []
        for span in spans:
            task_id = str((span.attributes or {}).get(TASK_ID, ""))
            if hop_key(span.name, span.attributes) in self._faults.dropped.get(task_id, ()):
                with self._lock:
                    self.withheld += 1
                continue
            shift = self._faults.skew_ns.get(task_id, 0)
            batch.append(_shifted(span, shift) if shift else span)
        if not batch:
            return SpanExportResult.SUCCESS
        result = self._inner.export(batch)
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self.failed += len(batch)
        return result

    def shutdown(self) -> None:
        """Shut the inner exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis)


DEFAULT_QUEUE_SIZE = 2048  # the SDK's default batch queue; run_fleet sizes it for its load
_EXPORT_BATCH = 512  # the SDK's default batch per export


class _EndCounter(SpanProcessor):
    """Counts spans as they end, before any queue: ended minus exported is what was lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        """Count one ended span."""
        with self._lock:
            self.ended += 1


class ServiceTelemetry:
    """Traces and logs of one service: provider, tracers per scope, OTLP export, a JSON log.

    Args:
        service: ``service.name`` of the resource.
        endpoint: the collector's base URL; spans go to ``<endpoint>/v1/traces`` and, with
            ``export_logs``, log records to ``<endpoint>/v1/logs``.
        namespace: ``k8s.namespace.name`` of the resource (``settings.namespace``).
        log_path: where the slog-shaped JSON lines go (None: no file).
        faults: span faults this service's exporter applies.
        export_logs: also send log records over OTLP.
        queue_size: spans (and log records) the batch processors hold before they drop the
            oldest: it must exceed what the service ends while an export is in flight.
    """

    def __init__(
        self,
        service: str,
        *,
        endpoint: str,
        namespace: str,
        log_path: Path | None = None,
        faults: SpanFaults | None = None,
        export_logs: bool = True,
        resource_attributes: Mapping[str, Any] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.service = service
        base = endpoint.rstrip("/")
        resource = Resource.create(
            {**(resource_attributes or {}), SERVICE_NAME: service, NAMESPACE: namespace}
        )
        self.exporter = FleetSpanExporter(OTLPSpanExporter(endpoint=f"{base}/v1/traces"), faults)
        self.provider = TracerProvider(resource=resource, id_generator=FleetIdGenerator())
        self._ended = _EndCounter()
        self.provider.add_span_processor(self._ended)
        self.provider.add_span_processor(
            BatchSpanProcessor(
                self.exporter,
                max_queue_size=queue_size,
                max_export_batch_size=min(_EXPORT_BATCH, queue_size),
                schedule_delay_millis=200,
            )
        )
        self._tracers: dict[str, Tracer] = {}
        self._log_provider: LoggerProvider | None = None
        otel_logger = None
        if export_logs:
            self._log_provider = LoggerProvider(resource=resource)
            self._log_provider.add_log_record_processor(
                BatchLogRecordProcessor(
                    OTLPLogExporter(endpoint=f"{base}/v1/logs"),
                    max_queue_size=queue_size,
                    max_export_batch_size=min(_EXPORT_BATCH, queue_size),
                    schedule_delay_millis=200,
                )
            )
            otel_logger = self._log_provider.get_logger(service)
        self.log = JsonLog(log_path, otel_logger)
        self._closed = False

    def tracer(self, scope: str) -> Tracer:
        """The tracer of instrumentation scope ``scope`` (one per scope, reused)."""
        if scope not in self._tracers:
            self._tracers[scope] = self.provider.get_tracer(scope)
        return self._tracers[scope]

    def hop_span(
        self,
        key: str,
        *,
        context: Context | None = None,
        attributes: Mapping[str, Any] | None = None,
        start_time: int | None = None,
    ) -> Span:
        """Start the span of PASS1 hop ``key`` (its name, kind and scope) under ``context``.

        The span is not made current; use ``trace.use_span(span, end_on_exit=True)``.
        """
        hop = PASS1.hop(key)
        return self.tracer(HOP_SCOPES[key]).start_span(
            hop.span,
            context=context,
            kind=_KINDS[hop.kind],
            attributes=dict(attributes or {}),
            start_time=start_time,
        )

    @property
    def spans_exported(self) -> int:
        """Spans the collector accepted so far."""
        return self.exporter.exported

    @property
    def spans_lost(self) -> int:
        """Spans that ended but neither reached the collector nor were withheld by a fault.

        A full batch queue drops spans before the exporter ever sees them; a failed export
        loses a batch after. Both count here.
        """
        return self._ended.ended - self.exporter.exported - self.exporter.withheld

    def flush(self) -> None:
        """Export every span and log record ended so far (blocks until done or timed out)."""
        self.provider.force_flush()
        if self._log_provider is not None:
            self._log_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and shut down the span and log pipelines, then close the log file."""
        if self._closed:
            return
        self._closed = True
        self.provider.force_flush()
        self.provider.shutdown()
        if self._log_provider is not None:
            self._log_provider.force_flush()
            self._log_provider.shutdown()
        self.log.close()

    def __enter__(self) -> ServiceTelemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
