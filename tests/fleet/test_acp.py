"""ACP through the protocol's SDK: the agent CLI as a real subprocess, the wire, and ``_meta``."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import acp
import pytest
from acp.connection import Connection, StreamDirection, StreamEvent
from acp.schema import (
    InitializeRequest,
    InitializeResponse,
    NewSessionRequest,
    NewSessionResponse,
    PromptRequest,
    PromptResponse,
    SessionNotification,
)
from opentelemetry import trace
from pydantic import BaseModel

from obslib.catalogue.hops import SCOPE_PROXY, SERVICE_PROXY, TASK_ID
from obslib.collector import OtlpCollector
from obslib.fleet.acp_extensions import (
    META_KEYS,
    META_TASK_ID,
    SESSION_NEW,
    SESSION_UPDATE,
    TELEMETRY_METHOD,
    text_of,
)
from obslib.fleet.agent_process import AgentProcess, SessionUpdates
from obslib.fleet.telemetry import (
    PROMPT_LENGTH,
    RESPONSE_LENGTH,
    RPC_METHOD,
    SESSION_ID,
    ServiceTelemetry,
    inject_context,
)

INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601


async def _spawn(collector: OtlpCollector, tmp_path: Path, **kwargs: Any) -> AgentProcess:
    return await AgentProcess.spawn(
        "claude",
        otlp_endpoint=collector.endpoint,
        namespace="daedalus",
        log_dir=tmp_path / "logs",
        stderr_path=tmp_path / "agent.stderr",
        **kwargs,
    )


def test_agent_cli_session_and_context_over_the_pipe(
    collector: OtlpCollector, tmp_path: Path
) -> None:
    proxy = ServiceTelemetry(SERVICE_PROXY, endpoint=collector.endpoint, namespace="daedalus")
    tracer = proxy.tracer(SCOPE_PROXY)
    events: list[str] = []
    texts: list[str] = []
    ids: dict[str, str] = {}

    def on_update(update: Any) -> None:
        events.append(update.session_update)
        texts.append(text_of(update.content))

    async def scenario() -> None:
        agent = await _spawn(collector, tmp_path)
        try:
            hello = await agent.initialize()
            assert hello.protocol_version == acp.PROTOCOL_VERSION
            assert hello.agent_info is not None
            assert hello.agent_info.name == "daedalus-agent-claude"
            with tracer.start_as_current_span(
                "acp.session.new", kind=trace.SpanKind.CLIENT
            ) as client:
                meta = {**inject_context(), META_TASK_ID: "task-with-context"}
                session = await agent.conn.new_session(cwd="/", mcp_servers=[], **meta)
            ids["client"] = format(client.get_span_context().span_id, "016x")
            ids["trace"] = format(client.get_span_context().trace_id, "032x")
            # No trace context in _meta and none in the environment: the agent starts a new trace.
            await agent.conn.new_session(cwd="/", mcp_servers=[], **{META_TASK_ID: "task-without"})
            agent.sessions.watch(session.session_id, on_update)
            answer = await agent.conn.prompt(
                session_id=session.session_id, prompt=[acp.text_block("fix the build")]
            )
            events.append("response")
            assert answer.stop_reason == "end_turn"
            with pytest.raises(acp.RequestError) as unknown:
                await agent.conn.prompt(session_id="nope", prompt=[])
            assert unknown.value.code == INVALID_PARAMS
            assert "unknown session 'nope'" in str(unknown.value.data)
            with pytest.raises(acp.RequestError) as missing:
                await agent.conn.ext_method("daedalus/fly", {})
            assert missing.value.code == METHOD_NOT_FOUND
        finally:
            report = await agent.close()
        assert report.returncode == 0
        assert report.service == "daedalus-agent-claude"
        assert report.spans_exported == 3  # two session/new, one session/prompt
        assert report.spans_lost == 0

    asyncio.run(scenario())
    proxy.shutdown()

    # The updates are handled before the prompt's response returns, and carry the answer.
    assert events[-1] == "response"
    assert events[:-1] == ["agent_message_chunk"] * (len(events) - 1)
    assert len(texts) >= 2 and "fix the build" in "".join(texts)

    assert collector.wait_for_spans(4, timeout_s=10)
    frame = collector.spans_frame()
    agent_spans = frame[frame["service_name"] == "daedalus-agent-claude"]
    # Only the agent's own spans: the SDK's "acp.request" spans go to the global tracer
    # provider, which the pipeline leaves unset.
    assert len(agent_spans) == 3 and set(agent_spans["kind"]) == {"SERVER"}
    joined = agent_spans[agent_spans["task_id"] == "task-with-context"].iloc[0]
    assert joined["name"] == "agent.session.new"
    assert joined["trace_id"] == ids["trace"] and joined["parent_span_id"] == ids["client"]
    assert joined["attributes"][RPC_METHOD] == SESSION_NEW
    assert joined["resource_attributes"]["k8s.namespace.name"] == "daedalus"
    alone = agent_spans[agent_spans["task_id"] == "task-without"].iloc[0]
    assert alone["parent_span_id"] == "" and alone["trace_id"] != ids["trace"]
    prompt = agent_spans[agent_spans["name"] == "agent.session.prompt"].iloc[0]
    assert prompt["attributes"][SESSION_ID] == joined["attributes"][SESSION_ID]
    assert prompt["attributes"][TASK_ID] == "task-with-context"  # from the session it belongs to
    assert prompt["attributes"][PROMPT_LENGTH] == len("fix the build")
    assert prompt["attributes"][RESPONSE_LENGTH] == len("".join(texts))

    lines = [
        json.loads(x)
        for x in (tmp_path / "logs" / "daedalus-agent-claude.jsonl").read_text().splitlines()
    ]
    created = [x for x in lines if x["msg"] == "agent: session created"]
    by_task = {x["taskId"]: x for x in created}
    assert by_task["task-with-context"]["trace_id"] == ids["trace"]
    assert by_task["task-without"]["trace_id"] == alone["trace_id"]
    assert all({"time", "level", "msg", "agent_type"} <= x.keys() for x in lines)


def test_agent_cli_takes_context_from_its_environment(
    collector: OtlpCollector, tmp_path: Path
) -> None:
    proxy = ServiceTelemetry(
        SERVICE_PROXY, endpoint=collector.endpoint, namespace="daedalus", export_logs=False
    )
    with proxy.tracer(SCOPE_PROXY).start_as_current_span(
        "spawn", kind=trace.SpanKind.CLIENT
    ) as spawn:
        carrier = inject_context()
    spawn_ids = (
        format(spawn.get_span_context().trace_id, "032x"),
        format(spawn.get_span_context().span_id, "016x"),
    )

    async def scenario() -> None:
        agent = await _spawn(collector, tmp_path, trace_env=carrier)
        try:
            await agent.initialize()
            await agent.conn.new_session(cwd="/", mcp_servers=[])
        finally:
            await agent.close()

    asyncio.run(scenario())
    proxy.shutdown()
    assert collector.wait_for_spans(2, timeout_s=10)
    frame = collector.spans_frame()
    agent_span = frame[frame["name"] == "agent.session.new"].iloc[0]
    assert (agent_span["trace_id"], agent_span["parent_span_id"]) == spawn_ids


def test_the_telemetry_report_waits_for_the_calls_in_flight(
    collector: OtlpCollector, tmp_path: Path
) -> None:
    async def scenario() -> tuple[dict[str, Any], Any]:
        # Updates 50 ms apart: the report is asked for while the prompt is still streaming.
        agent = await _spawn(collector, tmp_path, extra_args=("--chunk-delay-ms", "50"))
        try:
            await agent.initialize()
            session = await agent.conn.new_session(cwd="/", mcp_servers=[])
            prompt = asyncio.create_task(
                agent.conn.prompt(session_id=session.session_id, prompt=[acp.text_block("x")])
            )
            await asyncio.sleep(0.05)
            report = await agent.conn.ext_method(TELEMETRY_METHOD, {})
            assert (await prompt).stop_reason == "end_turn"
        finally:
            closed = await agent.close()
        return report, closed

    report, closed = asyncio.run(scenario())
    assert report["spansExported"] == 2  # session/new and the prompt that was in flight
    assert closed.spans_exported == 2 and closed.returncode == 0


# The schema's model of each method's params and result; None for ACP's extension space
# (methods starting with "_"), where params and result are any JSON object.
MODELS: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "initialize": (InitializeRequest, InitializeResponse),
    "session/new": (NewSessionRequest, NewSessionResponse),
    "session/prompt": (PromptRequest, PromptResponse),
    SESSION_UPDATE: (SessionNotification, None),
    f"_{TELEMETRY_METHOD}": (None, None),
}


def _conforms(model: type[BaseModel] | None, payload: Any) -> bool:
    """The payload parses as ``model`` and nothing is dropped or changed on the way back."""
    if model is None:
        return isinstance(payload, dict)
    parsed = model.model_validate(payload)
    return parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == payload


def test_every_message_on_the_wire_is_schema_valid_acp(
    collector: OtlpCollector, tmp_path: Path
) -> None:
    wire: list[StreamEvent] = []

    async def scenario() -> None:
        agent = await _spawn(collector, tmp_path, observers=[wire.append])
        try:
            await agent.initialize()
            meta = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01", META_TASK_ID: "t-wire"}
            session = await agent.conn.new_session(cwd="/work", mcp_servers=[], **meta)
            await agent.conn.prompt(
                session_id=session.session_id, prompt=[acp.text_block("go")], **meta
            )
        finally:
            await agent.close()

    asyncio.run(scenario())
    methods: dict[Any, str] = {}  # request id -> method
    seen: list[str] = []
    for event in wire:
        message = event.message
        assert message["jsonrpc"] == "2.0"
        if "method" in message:
            method = message["method"]
            seen.append(method)
            if "id" in message:
                methods[message["id"]] = method
            assert _conforms(MODELS[method][0], message["params"]), message
        else:
            method = methods[message["id"]]
            assert "error" not in message, message
            if method != SESSION_UPDATE:
                assert _conforms(MODELS[method][1], message["result"]), message
    assert seen[:3] == ["initialize", "session/new", "session/prompt"]
    assert SESSION_UPDATE in seen and seen[-1] == f"_{TELEMETRY_METHOD}"
    new = next(e.message for e in wire if e.message.get("method") == "session/new")
    assert new["params"]["_meta"] == {
        "traceparent": f"00-{'1' * 32}-{'2' * 16}-01",
        META_TASK_ID: "t-wire",
    }
    outgoing = {e.message.get("method") for e in wire if e.direction is StreamDirection.OUTGOING}
    assert SESSION_UPDATE not in outgoing  # the agent sends the updates, the client reads them


# --- how the SDK carries _meta (in-process, over a socket pair) ---------------------------------


class _Recorder:
    """An agent that answers every session call and records the arguments it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def new_session(
        self, cwd: str, mcp_servers: Any = None, additional_directories: Any = None, **meta: Any
    ) -> Any:
        self.calls.append(("new", {"cwd": cwd, **meta}))
        return NewSessionResponse(session_id="s1")

    async def prompt(self, prompt: Any, session_id: str, **meta: Any) -> Any:
        self.calls.append(("prompt", {"session_id": session_id, **meta}))
        return PromptResponse(stop_reason="end_turn")


async def _over_socket(
    agent: Any, talk: Callable[[asyncio.StreamWriter, asyncio.StreamReader], Awaitable[None]]
) -> None:
    """Run ``agent`` with the SDK's ``run_agent`` and ``talk`` to it as the client."""
    agent_sock, client_sock = socket.socketpair()
    agent_reader, agent_writer = await asyncio.open_connection(sock=agent_sock)
    client_reader, client_writer = await asyncio.open_connection(sock=client_sock)
    served = asyncio.create_task(acp.run_agent(agent, agent_writer, agent_reader))
    try:
        await talk(client_writer, client_reader)
    finally:
        client_writer.close()  # end of input: run_agent returns
        await asyncio.wait_for(served, 10)
        agent_writer.close()


def test_sdk_carries_our_meta_keys_unchanged() -> None:
    recorder = _Recorder()
    meta = {
        "traceparent": f"00-{'a' * 32}-{'b' * 16}-01",
        "tracestate": "daedalus=x,other=y",
        "baggage": "daedalus.task.id=t1,k=v%20w",
        META_TASK_ID: "t1",
    }

    async def talk(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        conn = acp.connect_to_agent(SessionUpdates(), writer, reader)  # type: ignore[arg-type]
        await conn.new_session(cwd="/w", mcp_servers=[], **meta)
        await conn.prompt(session_id="s1", prompt=[acp.text_block("p")], **meta)
        await conn.close()

    asyncio.run(_over_socket(recorder, talk))
    assert recorder.calls == [
        ("new", {"cwd": "/w", **meta}),
        ("prompt", {"session_id": "s1", **meta}),
    ]


def test_our_meta_keys_cannot_collide_with_request_fields() -> None:
    # The SDK merges _meta over the request's fields (next test): a key spelled like a field's
    # Python name or its alias would be at risk.
    for model in (InitializeRequest, NewSessionRequest, PromptRequest):
        names = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
        assert not names & set(META_KEYS), model.__name__


def test_sdk_finding_meta_keys_named_like_fields_replace_them_and_a_bad_meta_vanishes() -> None:
    """Pins the SDK's mapping of ``_meta`` (a finding, see obslib/fleet/acp_extensions.py)."""
    recorder = _Recorder()

    async def talk(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        async def no_requests(method: str, params: Any, is_notification: bool) -> None:
            return None

        raw = Connection(no_requests, writer, reader)  # the SDK's JSON-RPC layer, no schema
        await raw.send_request(
            SESSION_NEW, {"cwd": "/real", "mcpServers": [], "_meta": {"cwd": "/from-meta"}}
        )
        await raw.send_request(
            SESSION_NEW, {"cwd": "/real", "mcpServers": [], "_meta": "traceparent-as-a-string"}
        )
        await raw.close()

    asyncio.run(_over_socket(recorder, talk))
    # The field the client sent is gone: the handler sees the _meta value in its place...
    assert recorder.calls[0] == ("new", {"cwd": "/from-meta"})
    # ...and a _meta that is not an object is dropped without an error.
    assert recorder.calls[1] == ("new", {"cwd": "/real"})
