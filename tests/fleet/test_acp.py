"""ACP framing, and the agent CLI as a real subprocess spoken to over its stdio pipe."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from opentelemetry import trace

from obslib.catalogue.hops import SCOPE_PROXY, SERVICE_PROXY, TASK_ID
from obslib.collector import OtlpCollector
from obslib.fleet import acp
from obslib.fleet.agent_process import AgentProcess
from obslib.fleet.telemetry import (
    PROMPT_LENGTH,
    RESPONSE_LENGTH,
    RPC_METHOD,
    SESSION_ID,
    ServiceTelemetry,
    inject_context,
)


def test_encode_writes_one_line_that_decodes_back() -> None:
    message = acp.request(7, acp.SESSION_PROMPT, {"prompt": [{"type": "text", "text": "a\nb"}]})
    line = acp.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert acp.decode(line) == message


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{not json", acp.PARSE_ERROR),
        (b'{"id": 1}', acp.INVALID_REQUEST),
        (b"[1]", acp.INVALID_REQUEST),
    ],
)
def test_decode_rejects_what_is_not_json_rpc(line: bytes, code: int) -> None:
    with pytest.raises(acp.AcpError) as caught:
        acp.decode(line)
    assert caught.value.code == code


def test_message_kinds() -> None:
    assert acp.is_request(acp.request(1, "x", {}))
    assert acp.is_notification(acp.notification("x", {}))
    assert not acp.is_request(acp.response(1, {}))
    assert acp.text_of({"type": "text", "text": "hi"}) == "hi"
    assert acp.text_of({"type": "image", "data": "..."}) == ""


async def _spawn(collector: OtlpCollector, tmp_path: Path, **kwargs) -> AgentProcess:
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

    def on_update(method: str, params: dict) -> None:
        events.append(method)
        texts.append(acp.text_of(params["update"]["content"]))

    async def scenario() -> None:
        agent = await _spawn(collector, tmp_path)
        try:
            hello = await agent.initialize()
            assert hello["protocolVersion"] == acp.PROTOCOL_VERSION
            with tracer.start_as_current_span(
                "acp.session.new", kind=trace.SpanKind.CLIENT
            ) as client:
                meta = {**inject_context(), acp.META_TASK_ID: "task-with-context"}
                result = await agent.client.request(
                    acp.SESSION_NEW, {"cwd": "/", "mcpServers": [], "_meta": meta}
                )
            ids["client"] = format(client.get_span_context().span_id, "016x")
            ids["trace"] = format(client.get_span_context().trace_id, "032x")
            session = result["sessionId"]
            # No trace context in _meta and none in the environment: the agent starts a new trace.
            await agent.client.request(
                acp.SESSION_NEW,
                {"cwd": "/", "mcpServers": [], "_meta": {acp.META_TASK_ID: "task-without"}},
            )
            agent.client.watch_session(session, on_update)
            answer = await agent.client.request(
                acp.SESSION_PROMPT,
                {"sessionId": session, "prompt": [{"type": "text", "text": "fix the build"}]},
            )
            events.append("response")
            assert answer == {"stopReason": "end_turn"}
            with pytest.raises(acp.AcpError) as unknown:
                await agent.client.request(acp.SESSION_PROMPT, {"sessionId": "nope", "prompt": []})
            assert unknown.value.code == acp.INVALID_PARAMS
            with pytest.raises(acp.AcpError) as missing:
                await agent.client.request("session/fly", {})
            assert missing.value.code == acp.METHOD_NOT_FOUND
        finally:
            report = await agent.close()
        assert report.returncode == 0
        assert report.service == "daedalus-agent-claude"
        assert report.spans_exported == 3  # two session/new, one session/prompt

    asyncio.run(scenario())
    proxy.shutdown()

    # The updates stream before the prompt's response, and carry the answer.
    assert events[-1] == "response" and events[:-1] == [acp.SESSION_UPDATE] * (len(events) - 1)
    assert len(texts) >= 2 and "fix the build" in "".join(texts)

    assert collector.wait_for_spans(4, timeout_s=10)
    frame = collector.spans_frame()
    agent_spans = frame[frame["service_name"] == "daedalus-agent-claude"]
    assert len(agent_spans) == 3 and set(agent_spans["kind"]) == {"SERVER"}
    joined = agent_spans[agent_spans["task_id"] == "task-with-context"].iloc[0]
    assert joined["name"] == "agent.session.new"
    assert joined["trace_id"] == ids["trace"] and joined["parent_span_id"] == ids["client"]
    assert joined["attributes"][RPC_METHOD] == acp.SESSION_NEW
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
            await agent.client.request(acp.SESSION_NEW, {"cwd": "/", "mcpServers": []})
        finally:
            await agent.close()

    asyncio.run(scenario())
    proxy.shutdown()
    assert collector.wait_for_spans(2, timeout_s=10)
    frame = collector.spans_frame()
    agent_span = frame[frame["name"] == "agent.session.new"].iloc[0]
    assert (agent_span["trace_id"], agent_span["parent_span_id"]) == spawn_ids
