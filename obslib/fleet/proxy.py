"""The worker's proxy: consume tasks of one agent type, drive the agent over ACP, publish results.

Per task it makes ``nats.consume`` (CONSUMER, child of the publisher's span when the headers
carry one) > ``proxy.handle`` > ``acp.session.new`` and ``acp.session.prompt`` (CLIENT, with
``acp.session.update`` spanning the streamed notifications) and the result ``nats.publish``
(PRODUCER). ACP goes through the protocol SDK's client connection of the agent process; the
requests carry the current span in their ``_meta`` keys, so the agent's own spans join the
trace across the stdio pipe.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import acp
import nats.errors
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import ValidationError

from obslib.catalogue.hops import (
    AGENT_TYPE,
    RESULT_SUBJECT_PREFIX,
    SERVICE_PROXY,
    TASK_ID,
)
from obslib.fleet.acp_extensions import (
    META_TASK_ID,
    SESSION_NEW,
    SESSION_PROMPT,
    SESSION_UPDATE,
    text_of,
)
from obslib.fleet.agent_process import AgentProcess
from obslib.fleet.envelope import (
    STATE_COMPLETED,
    STATE_FAILED,
    ReceivedTask,
    parse_task,
    result_envelope,
)
from obslib.fleet.faults import DUPLICATE_SPAN_IDS, ENVELOPE_TRACE_ID, STDIO_CONTEXT, FaultBook
from obslib.fleet.metrics import FleetMetrics
from obslib.fleet.telemetry import (
    CONTEXT_ID,
    MESSAGE_ID,
    MESSAGING_NATS_STREAM,
    PROMPT_LENGTH,
    RESPONSE_LENGTH,
    RPC_METHOD,
    RPC_SYSTEM,
    SESSION_ID,
    ServiceTelemetry,
    extract_context,
    forced_ids,
    inject_context,
    messaging_attributes,
    trace_id_hex,
)

UPDATE_COUNT = "daedalus.acp.update.count"


class Worker:
    """The proxy of one agent type: a durable pull consumer named after the agent type.

    Args:
        agent_type: the agent type served; the consumer reads ``task_subject`` only.
        js: the ``nats.js.JetStreamContext``.
        stream: the task stream (``settings.nats_stream``).
        task_subject: ``settings.task_subject(agent_type)``.
        telemetry: the ``daedalus-proxy`` service's telemetry.
        agent: the agent CLI process this worker drives (one per worker).
        faults: the run's fault assignments.
        metrics: where the cold start is recorded (None: not recorded).
        concurrency: tasks handled at once.
        cwd: working directory sent in ``session/new``.
    """

    def __init__(
        self,
        agent_type: str,
        *,
        js: Any,
        stream: str,
        task_subject: str,
        telemetry: ServiceTelemetry,
        agent: AgentProcess,
        faults: FaultBook,
        metrics: FleetMetrics | None,
        concurrency: int,
        cwd: str,
    ) -> None:
        if telemetry.service != SERVICE_PROXY:
            raise ValueError(
                f"a worker's telemetry must be {SERVICE_PROXY}, not {telemetry.service}"
            )
        self.agent_type = agent_type
        self._js = js
        self._stream = stream
        self._subject = task_subject
        self._tel = telemetry
        self._agent = agent
        self._faults = faults
        self._metrics = metrics
        self._concurrency = concurrency
        self._cwd = cwd
        self._sub: Any = None
        self._cold_start_recorded = False
        self.handled = 0

    async def subscribe(self) -> None:
        """Create (or bind) the durable consumer ``<agent_type>`` on the task stream."""
        self._sub = await self._js.pull_subscribe(
            self._subject, durable=self.agent_type, stream=self._stream
        )

    async def run(self, stop: asyncio.Event, poll_s: float = 0.2) -> None:
        """Fetch and handle tasks until ``stop`` is set, then finish the ones in flight."""
        if self._sub is None:
            await self.subscribe()
        slots = asyncio.Semaphore(self._concurrency)
        in_flight: set[asyncio.Task[None]] = set()

        async def handle_then_free(msg: Any) -> None:
            try:
                await self.handle(msg)
            except Exception as exc:  # keep serving; the orchestrator times the task out
                self._tel.log.error(
                    "proxy: handling a task failed", agent_type=self.agent_type, err=repr(exc)
                )
            finally:
                slots.release()

        while not stop.is_set():
            await slots.acquire()
            try:
                messages = await self._sub.fetch(1, timeout=poll_s)
            except nats.errors.TimeoutError:
                slots.release()
                continue
            except BaseException:
                slots.release()
                raise
            for msg in messages:
                task = asyncio.get_running_loop().create_task(handle_then_free(msg))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def handle(self, msg: Any) -> None:
        """Handle one task message, from consume to result publish, then ack it."""
        try:
            task = parse_task(msg.data)
        except ValueError as exc:
            self._tel.log.error(
                "proxy: unreadable task message", agent_type=self.agent_type, err=str(exc)
            )
            await msg.term()
            return
        attributes = messaging_attributes(
            "receive",
            msg.subject,
            msg.data,
            {
                MESSAGING_NATS_STREAM: msg.metadata.stream,
                TASK_ID: task.task_id,
                AGENT_TYPE: self.agent_type,
            },
        )
        consume = self._tel.hop_span(
            "task_consume", context=extract_context(msg.headers), attributes=attributes
        )
        with trace.use_span(consume, end_on_exit=True):
            handle = self._tel.hop_span(
                "proxy",
                attributes={
                    TASK_ID: task.task_id,
                    MESSAGE_ID: task.message_id,
                    CONTEXT_ID: task.context_id,
                    AGENT_TYPE: self.agent_type,
                },
            )
            with trace.use_span(handle, end_on_exit=True):
                self._tel.log.info(
                    "proxy: task received", task_id=task.task_id, agent_type=self.agent_type
                )
                state, answer, error = await self._drive_agent(task)
                if error:
                    handle.set_status(Status(StatusCode.ERROR, error))
                    self._tel.log.error(
                        "proxy: agent failed",
                        task_id=task.task_id,
                        agent_type=self.agent_type,
                        err=error,
                    )
                trace_id = trace_id_hex(handle)
                if self._faults.has(task.task_id, ENVELOPE_TRACE_ID):
                    trace_id = uuid.uuid4().hex  # the envelope no longer names the task's trace
                await self._publish_result(task, state, answer, trace_id, error)
            await msg.ack()
        self.handled += 1

    def _meta(self, task_id: str) -> dict[str, Any]:
        meta: dict[str, Any] = {META_TASK_ID: task_id}
        if not self._faults.has(task_id, STDIO_CONTEXT):
            meta.update(inject_context())  # the current span: the ACP CLIENT span
        return meta

    def _acp_attributes(self, method: str, task_id: str) -> dict[str, Any]:
        return {
            RPC_SYSTEM: "jsonrpc",
            RPC_METHOD: method,
            TASK_ID: task_id,
            AGENT_TYPE: self.agent_type,
        }

    async def _drive_agent(self, task: ReceivedTask) -> tuple[str, str, str]:
        """Run the ACP session; returns (A2A state, answer, error text)."""
        try:
            session_id, new_span_id = await self._session_new(task)
            answer = await self._session_prompt(task, session_id, new_span_id)
        except acp.RequestError as exc:
            details = f" {exc.data}" if exc.data else ""
            return STATE_FAILED, "", f"ACP error {exc.code}: {exc}{details}"
        except ConnectionError as exc:  # the agent process is gone
            return STATE_FAILED, "", f"ACP connection to the agent lost: {exc}"
        except ValidationError as exc:  # the agent answered outside the ACP schema
            return STATE_FAILED, "", f"ACP answer not schema-valid: {exc.error_count()} errors"
        return STATE_COMPLETED, answer, ""

    async def _session_new(self, task: ReceivedTask) -> tuple[str, int]:
        span = self._tel.hop_span(
            "acp_new", attributes=self._acp_attributes(SESSION_NEW, task.task_id)
        )
        with trace.use_span(span, end_on_exit=True):
            response = await self._agent.conn.new_session(
                cwd=self._cwd, mcp_servers=[], **self._meta(task.task_id)
            )
            session_id = response.session_id
            span.set_attribute(SESSION_ID, session_id)
            if self._metrics is not None and not self._cold_start_recorded:
                self._cold_start_recorded = True
                cold_start = time.monotonic() - self._agent.spawned_monotonic
                self._metrics.observe_cold_start(self.agent_type, cold_start)
            self._tel.log.info(
                "proxy: session created",
                task_id=task.task_id,
                agent_type=self.agent_type,
                sessionId=session_id,
            )
        return session_id, span.get_span_context().span_id

    async def _session_prompt(self, task: ReceivedTask, session_id: str, new_span_id: int) -> str:
        attributes = self._acp_attributes(SESSION_PROMPT, task.task_id)
        attributes.update({SESSION_ID: session_id, PROMPT_LENGTH: len(task.prompt)})
        duplicate = self._faults.has(task.task_id, DUPLICATE_SPAN_IDS)
        with forced_ids(span_id=new_span_id if duplicate else None):
            span = self._tel.hop_span("acp_prompt", attributes=attributes)
        updates: list[tuple[int, str]] = []

        def on_update(update: Any) -> None:
            updates.append((time.time_ns(), text_of(getattr(update, "content", None))))

        self._agent.sessions.watch(session_id, on_update)
        with trace.use_span(span, end_on_exit=True):
            try:
                await self._agent.conn.prompt(
                    session_id=session_id,
                    prompt=[acp.text_block(task.prompt)],
                    **self._meta(task.task_id),
                )
            finally:
                self._agent.sessions.unwatch(session_id)
                if updates:
                    self._update_span(task.task_id, session_id, updates)
            answer = "".join(text for _, text in updates)
            span.set_attribute(RESPONSE_LENGTH, len(answer))
        return answer

    def _update_span(self, task_id: str, session_id: str, updates: list[tuple[int, str]]) -> None:
        """``acp.session.update``: from the first notification to the last, under the prompt span."""
        attributes = self._acp_attributes(SESSION_UPDATE, task_id)
        attributes.update({SESSION_ID: session_id, UPDATE_COUNT: len(updates)})
        span = self._tel.hop_span("acp_update", attributes=attributes, start_time=updates[0][0])
        span.end(end_time=updates[-1][0])

    async def _publish_result(
        self, task: ReceivedTask, state: str, answer: str, trace_id: str, error: str
    ) -> None:
        subject = f"{RESULT_SUBJECT_PREFIX}{task.task_id}"
        body = result_envelope(task.task_id, task.context_id, state, answer, trace_id, error)
        attributes = messaging_attributes(
            "publish", subject, body, {TASK_ID: task.task_id, AGENT_TYPE: self.agent_type}
        )
        span = self._tel.hop_span("result_publish", attributes=attributes)
        with trace.use_span(span, end_on_exit=True):
            headers = None
            if not self._faults.drops_headers(task.task_id, "result_publish"):
                headers = inject_context()
            await self._js.publish(subject, body, headers=headers)
            self._tel.log.info(
                "proxy: result published",
                task_id=task.task_id,
                agent_type=self.agent_type,
                state=state,
            )
