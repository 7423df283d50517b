"""A stand-in agent CLI that speaks ACP on stdin/stdout and exports its own spans.

Run it as ``python -m obslib.fleet.agent_cli --agent-type copilot --otlp-endpoint URL``. It
answers ``initialize``, ``session/new`` and ``session/prompt`` (streaming its answer as
``session/update`` notifications before the response) and serves any number of sessions at
once. Its spans, ``agent.session.new`` and ``agent.session.prompt`` (SERVER, service
``daedalus-agent-<type>``), join the caller's trace through the W3C keys of the request's
``_meta``; when ``_meta`` carries none it falls back on ``TRACEPARENT``/``TRACESTATE``/
``BAGGAGE`` from its environment, which is how a process that serves one task can be handed
its context at spawn. When stdin closes it flushes its telemetry, reports the totals with a
``_daedalus/telemetry`` notification and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context

from obslib.catalogue.hops import AGENT_TYPE, SERVICE_AGENT_PREFIX, TASK_ID
from obslib.fleet import acp
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

Send = Callable[[dict[str, Any]], None]


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
    """The ACP methods of the stand-in agent, with one span per session call."""

    def __init__(
        self,
        agent_type: str,
        telemetry: ServiceTelemetry,
        send: Send,
        *,
        environ: Mapping[str, str] | None = None,
        chunk_delay_s: float = 0.002,
    ) -> None:
        self.agent_type = agent_type
        self.telemetry = telemetry
        self._send = send
        self._env_carrier = env_carrier(os.environ if environ is None else environ)
        self._delay = chunk_delay_s
        self._sessions: dict[str, str] = {}  # session id -> task id
        self._log = telemetry.log

    async def handle(self, message: Mapping[str, Any]) -> None:
        """Answer one request (errors become JSON-RPC error responses)."""
        request_id, method = message["id"], message["method"]
        params = message.get("params") or {}
        try:
            if method == acp.INITIALIZE:
                result: dict[str, Any] = {
                    "protocolVersion": acp.PROTOCOL_VERSION,
                    "agentCapabilities": {"loadSession": False, "promptCapabilities": {}},
                    "authMethods": [],
                }
            elif method == acp.SESSION_NEW:
                result = self._session_new(params)
            elif method == acp.SESSION_PROMPT:
                result = await self._session_prompt(params)
            else:
                raise acp.AcpError(acp.METHOD_NOT_FOUND, f"method {method!r} not found")
        except acp.AcpError as exc:
            self._send(acp.error_response(request_id, exc.code, exc.message))
        except Exception as exc:  # the agent must answer every request, whatever broke
            self._send(acp.error_response(request_id, acp.INTERNAL_ERROR, f"agent failed: {exc}"))
        else:
            self._send(acp.response(request_id, result))

    def _parent(self, params: Mapping[str, Any]) -> tuple[Context, str]:
        meta = params.get(acp.META) or {}
        carrier = {k: meta[k] for k in acp.TRACE_CONTEXT_KEYS if isinstance(meta.get(k), str)}
        if "traceparent" not in carrier:
            carrier = self._env_carrier
        context = extract_context(carrier)
        task_id = str(meta.get(acp.META_TASK_ID) or baggage.get_baggage(TASK_ID, context) or "")
        return context, task_id

    def _attributes(self, method: str, task_id: str) -> dict[str, Any]:
        attributes = {RPC_SYSTEM: "jsonrpc", RPC_METHOD: method, AGENT_TYPE: self.agent_type}
        if task_id:
            attributes[TASK_ID] = task_id
        return attributes

    def _session_new(self, params: Mapping[str, Any]) -> dict[str, Any]:
        context, task_id = self._parent(params)
        span = self.telemetry.hop_span(
            "agent_new", context=context, attributes=self._attributes(acp.SESSION_NEW, task_id)
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
        return {"sessionId": session_id}

    async def _session_prompt(self, params: Mapping[str, Any]) -> dict[str, Any]:
        session_id = str(params.get("sessionId", ""))
        if session_id not in self._sessions:
            raise acp.AcpError(acp.INVALID_PARAMS, f"unknown session {session_id!r}")
        context, task_id = self._parent(params)
        task_id = task_id or self._sessions[session_id]
        prompt = "".join(acp.text_of(block) for block in params.get("prompt") or [])
        attributes = self._attributes(acp.SESSION_PROMPT, task_id)
        attributes.update({SESSION_ID: session_id, PROMPT_LENGTH: len(prompt)})
        span = self.telemetry.hop_span("agent_prompt", context=context, attributes=attributes)
        with trace.use_span(span, end_on_exit=True):
            sent = 0
            for chunk in answer_for(self.agent_type, prompt):
                update = {
                    "sessionUpdate": "agent_message_chunk",
                    "content": {"type": "text", "text": chunk},
                }
                self._send(
                    acp.notification(
                        acp.SESSION_UPDATE, {"sessionId": session_id, "update": update}
                    )
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
        return {"stopReason": "end_turn"}


def _write_stdout(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(acp.encode(message))
    sys.stdout.buffer.flush()


async def serve(server: AgentServer) -> None:
    """Read requests from stdin until it closes, answering each concurrently."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=4 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    running: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        if not line.strip():
            continue
        try:
            message = acp.decode(line)
        except acp.AcpError as exc:
            _write_stdout(acp.error_response(None, exc.code, exc.message))
            continue
        if acp.is_request(message):
            task = loop.create_task(server.handle(message))
            running.add(task)
            task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)


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
    server = AgentServer(
        args.agent_type, telemetry, _write_stdout, chunk_delay_s=args.chunk_delay_ms / 1000
    )
    try:
        asyncio.run(serve(server))
    finally:
        telemetry.shutdown()
        report = {
            "service": service,
            "spansExported": telemetry.exporter.exported,
            "spansFailed": telemetry.exporter.failed,
            "spansWithheld": telemetry.exporter.withheld,
            "spansLost": telemetry.spans_lost,
        }
        with contextlib.suppress(BrokenPipeError):  # the proxy may be gone already
            _write_stdout(acp.notification(acp.TELEMETRY_REPORT, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
