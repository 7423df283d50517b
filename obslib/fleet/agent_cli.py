"""A stand-in agent CLI that speaks ACP on stdin/stdout and exports its own spans.

Run it as ``python -m obslib.fleet.agent_cli --agent-type copilot --otlp-endpoint URL``. It is
an ACP agent built on the protocol's Python SDK (``acp.run_agent`` over stdio): it answers
``initialize``, ``session/new`` and ``session/prompt`` (streaming its answer as
``session/update`` notifications before the response) and serves any number of sessions at
once. Its spans, ``agent.session.new`` and ``agent.session.prompt`` (SERVER, service
``daedalus-agent-<type>``), join the caller's trace through the W3C keys of the request's
``_meta``; when ``_meta`` carries none it falls back on ``TRACEPARENT``/``TRACESTATE``/
``BAGGAGE`` from its environment, which is how a process that serves one task can be handed
its context at spawn. The extension method ``_daedalus/telemetry`` flushes its telemetry and
answers with the totals; when stdin closes it shuts its telemetry down and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import acp
from acp.schema import (
    AgentCapabilities,
    InitializeResponse,
    NewSessionResponse,
    PromptResponse,
)
from opentelemetry import baggage, trace
from opentelemetry.context import Context

from obslib.catalogue.hops import AGENT_TYPE, SERVICE_AGENT_PREFIX, TASK_ID
from obslib.fleet.acp_extensions import (
    META_TASK_ID,
    REPORT_EXPORTED,
    REPORT_FAILED,
    REPORT_LOST,
    REPORT_SERVICE,
    REPORT_WITHHELD,
    SESSION_NEW,
    SESSION_PROMPT,
    TELEMETRY_METHOD,
    implementation,
    text_of,
    trace_carrier,
)
from obslib.fleet.faults import SpanFaults
from obslib.fleet.telemetry import (
    DEFAULT_QUEUE_SIZE,
    ENV_CONTEXT_KEYS,
    PROMPT_LENGTH,
    RESPONSE_LENGTH,
    RPC_METHOD,
    RPC_SYSTEM,
    SESSION_ID,
    ServiceTelemetry,
    extract_context,
)

WORDS_PER_CHUNK = 3


def env_carrier(environ: Mapping[str, str]) -> dict[str, str]:
    """W3C trace context handed over in the environment at spawn (may be empty)."""
    return {key: environ[var] for key, var in ENV_CONTEXT_KEYS.items() if environ.get(var)}


def answer_for(agent_type: str, prompt: str) -> list[str]:
    """The agent's answer to ``prompt``, as the chunks it streams (deterministic)."""
    words = f"[{agent_type}] Done: {prompt}. Changed 3 files; the tests pass.".split()
    return [
        " ".join(words[i : i + WORDS_PER_CHUNK]) + " "
        for i in range(0, len(words), WORDS_PER_CHUNK)
    ]


class AgentServer:
    """The stand-in agent: the SDK's ``acp.Agent`` methods it serves, one span per session call.

    The SDK calls :meth:`on_connect` with the connection to the client, then one method per
    request, each in a task of its own, with the request's ``_meta`` keys as ``**meta``.
    Methods not defined here are answered "method not found" by the SDK.
    """

    def __init__(
        self,
        agent_type: str,
        telemetry: ServiceTelemetry,
        *,
        environ: Mapping[str, str] | None = None,
        chunk_delay_s: float = 0.002,
    ) -> None:
        self.agent_type = agent_type
        self.telemetry = telemetry
        self._client: acp.Client | None = None
        self._env_carrier = env_carrier(os.environ if environ is None else environ)
        self._delay = chunk_delay_s
        self._sessions: dict[str, str] = {}  # session id -> task id
        self._calls: set[asyncio.Task[Any]] = set()  # session calls in flight
        self._log = telemetry.log

    def on_connect(self, conn: acp.Client) -> None:
        """Keep the connection to the client (the SDK calls this once)."""
        self._client = conn

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: Any = None,
        client_info: Any = None,
        **meta: Any,
    ) -> InitializeResponse:
        """The handshake: protocol version 1, no optional capabilities."""
        return InitializeResponse(
            protocol_version=acp.PROTOCOL_VERSION,
            agent_capabilities=AgentCapabilities(load_session=False),
            auth_methods=[],
            agent_info=implementation(f"{SERVICE_AGENT_PREFIX}{self.agent_type}"),
        )

    async def new_session(
        self,
        cwd: str,
        mcp_servers: list[Any] | None = None,
        additional_directories: list[str] | None = None,
        **meta: Any,
    ) -> NewSessionResponse:
        """``session/new``: a session id, under the span ``agent.session.new``."""
        with self._in_flight():
            context, task_id = self._parent(meta)
            span = self.telemetry.hop_span(
                "agent_new", context=context, attributes=self._attributes(SESSION_NEW, task_id)
            )
            with trace.use_span(span, end_on_exit=True):
                session_id = f"sess_{uuid.uuid4().hex[:16]}"
                self._sessions[session_id] = task_id
                span.set_attribute(SESSION_ID, session_id)
                self._log.info(
                    "agent: session created",
                    task_id=task_id,
                    agent_type=self.agent_type,
                    sessionId=session_id,
                )
            return NewSessionResponse(session_id=session_id)

    async def prompt(self, prompt: list[Any], session_id: str, **meta: Any) -> PromptResponse:
        """``session/prompt``: stream the answer as updates, under ``agent.session.prompt``.

        Raises:
            acp.RequestError: "invalid params" for a session this agent did not create.
        """
        if session_id not in self._sessions:
            raise acp.RequestError.invalid_params({"details": f"unknown session {session_id!r}"})
        with self._in_flight():
            context, task_id = self._parent(meta)
            task_id = task_id or self._sessions[session_id]
            text = "".join(text_of(block) for block in prompt)
            attributes = self._attributes(SESSION_PROMPT, task_id)
            attributes.update({SESSION_ID: session_id, PROMPT_LENGTH: len(text)})
            span = self.telemetry.hop_span("agent_prompt", context=context, attributes=attributes)
            with trace.use_span(span, end_on_exit=True):
                sent = 0
                for chunk in answer_for(self.agent_type, text):
                    await self._connection().session_update(
                        session_id=session_id, update=acp.update_agent_message_text(chunk)
                    )
                    sent += len(chunk)
                    await asyncio.sleep(self._delay)
                span.set_attribute(RESPONSE_LENGTH, sent)
                self._log.info(
                    "agent: prompt answered",
                    task_id=task_id,
                    agent_type=self.agent_type,
                    sessionId=session_id,
                )
            return PromptResponse(stop_reason="end_turn")

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """``_daedalus/telemetry``: wait for the session calls in flight, flush, report totals.

        Raises:
            acp.RequestError: "method not found" for any other extension method.
        """
        if method != TELEMETRY_METHOD:
            raise acp.RequestError.method_not_found(f"_{method}")
        if self._calls:
            await asyncio.wait(set(self._calls))
        await asyncio.to_thread(self.telemetry.flush)
        exporter = self.telemetry.exporter
        return {
            REPORT_SERVICE: self.telemetry.service,
            REPORT_EXPORTED: exporter.exported,
            REPORT_FAILED: exporter.failed,
            REPORT_WITHHELD: exporter.withheld,
            REPORT_LOST: self.telemetry.spans_lost,
        }

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is None:  # not called by the SDK's connection: nothing to track
            yield
            return
        self._calls.add(task)
        try:
            yield
        finally:
            self._calls.discard(task)

    def _connection(self) -> acp.Client:
        if self._client is None:
            raise acp.RequestError.internal_error({"details": "no client connection"})
        return self._client

    def _parent(self, meta: Mapping[str, Any]) -> tuple[Context, str]:
        carrier = trace_carrier(meta)
        if "traceparent" not in carrier:
            carrier = self._env_carrier
        context = extract_context(carrier)
        task_id = str(meta.get(META_TASK_ID) or baggage.get_baggage(TASK_ID, context) or "")
        return context, task_id

    def _attributes(self, method: str, task_id: str) -> dict[str, Any]:
        attributes = {RPC_SYSTEM: "jsonrpc", RPC_METHOD: method, AGENT_TYPE: self.agent_type}
        if task_id:
            attributes[TASK_ID] = task_id
        return attributes


async def serve(server: AgentServer) -> None:
    """Serve ACP on stdin/stdout until stdin closes."""
    # The SDK resolves the methods by name; the ones an Agent may leave out are not defined.
    await acp.run_agent(cast(acp.Agent, server))


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the agent CLI."""
    parser = argparse.ArgumentParser(prog="python -m obslib.fleet.agent_cli", description=__doc__)
    parser.add_argument("--agent-type", required=True, help="agent type, e.g. copilot")
    parser.add_argument(
        "--otlp-endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        help="collector base URL (default: $OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    parser.add_argument("--namespace", help="k8s.namespace.name (default: the release settings)")
    parser.add_argument("--log-dir", type=Path, help="write logs/<service>.jsonl lines here")
    parser.add_argument("--faults", type=Path, help="span faults of this service (JSON)")
    parser.add_argument("--chunk-delay-ms", type=float, default=2.0, help="pause between updates")
    parser.add_argument("--no-otlp-logs", action="store_true", help="do not send logs over OTLP")
    parser.add_argument(
        "--queue-size", type=int, default=DEFAULT_QUEUE_SIZE, help="batch queue of spans and logs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent until stdin closes; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not args.otlp_endpoint:
        print(
            "agent_cli: --otlp-endpoint (or $OTEL_EXPORTER_OTLP_ENDPOINT) is required",
            file=sys.stderr,
        )
        return 2
    namespace = args.namespace
    if namespace is None:
        from obslib.settings import load_settings

        namespace = load_settings(None).namespace
    service = f"{SERVICE_AGENT_PREFIX}{args.agent_type}"
    faults = SpanFaults.from_json(args.faults.read_text()) if args.faults else None
    telemetry = ServiceTelemetry(
        service,
        endpoint=args.otlp_endpoint,
        namespace=namespace,
        log_path=args.log_dir / f"{service}.jsonl" if args.log_dir else None,
        faults=faults,
        export_logs=not args.no_otlp_logs,
        queue_size=args.queue_size,
    )
    server = AgentServer(args.agent_type, telemetry, chunk_delay_s=args.chunk_delay_ms / 1000)
    try:
        asyncio.run(serve(server))
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
