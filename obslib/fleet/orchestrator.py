"""The orchestrator: chat ingress, dispatch to NATS, and the collector of results.

A task enters through a Mattermost-style webhook (``ingress.mattermost``, SERVER, the trace's
root), is dispatched (``orchestrator.dispatch``) and published on ``agent.tasks.<agent_type>``
(``nats.publish``, PRODUCER, context in W3C headers). The collector subscribes to
``agent.results.>`` and makes ``collector.receive.result`` (CONSUMER) under the publisher's span
from the headers; when the headers carry no context it starts a root span inside the trace the
envelope's ``metadata.trace_id`` names, as the platform's Go collector does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from obslib.catalogue.contract import STATUS_FAILURE
from obslib.catalogue.hops import (
    AGENT_TYPE,
    ENVELOPE_TRACE_ID,
    RESULT_SUBJECT_PREFIX,
    SERVICE_ORCHESTRATOR,
    TASK_ID,
    TASK_STATE,
)
from obslib.fleet.envelope import (
    STATUS_OF_STATE,
    TRACE_ID_RE,
    PlannedTask,
    ReceivedResult,
    parse_result,
    task_message,
)
from obslib.fleet.faults import FaultBook
from obslib.fleet.metrics import FleetMetrics
from obslib.fleet.telemetry import (
    MESSAGING_NATS_STREAM,
    ServiceTelemetry,
    extract_context,
    forced_ids,
    has_span,
    inject_context,
    messaging_attributes,
    trace_id_hex,
)
from obslib.settings import Settings

INGRESS_ROUTE = "/hooks/mattermost"


@dataclass(frozen=True)
class TaskOutcome:
    """One task as the orchestrator saw it end to end."""

    task_id: str
    agent_type: str
    trace_id: str  # the trace its ingress span started
    envelope_trace_id: str  # metadata.trace_id of the result ("" when no result came)
    state: str  # the result's A2A state ("" when no result came within the timeout)
    duration_s: float  # task publish to result received (NaN when no result came)


class Orchestrator:
    """Ingress, dispatch and the result collector of one run.

    Args:
        nc: the NATS connection (the collector subscribes on it).
        js: its ``JetStreamContext`` (tasks are published with JetStream acks).
        settings: release settings (task subjects).
        telemetry: the ``daedalus-orchestrator`` service's telemetry.
        faults: the run's fault assignments.
        metrics: where task outcomes are recorded (None: not recorded).
    """

    def __init__(
        self,
        *,
        nc: Any,
        js: Any,
        settings: Settings,
        telemetry: ServiceTelemetry,
        faults: FaultBook,
        metrics: FleetMetrics | None,
    ) -> None:
        if telemetry.service != SERVICE_ORCHESTRATOR:
            raise ValueError(f"the orchestrator's telemetry must be {SERVICE_ORCHESTRATOR}")
        self._nc = nc
        self._js = js
        self._settings = settings
        self._tel = telemetry
        self._faults = faults
        self._metrics = metrics
        self._waiters: dict[str, asyncio.Future[ReceivedResult]] = {}
        self._published: dict[str, float] = {}
        self._agent_types: dict[str, str] = {}
        self._sub: Any = None

    async def start(self) -> None:
        """Subscribe the collector to every result subject."""
        self._sub = await self._nc.subscribe(f"{RESULT_SUBJECT_PREFIX}>", cb=self._on_result)

    async def close(self) -> None:
        """Unsubscribe the collector."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def submit(self, task: PlannedTask, timeout_s: float = 60.0) -> TaskOutcome:
        """Take ``task`` in through ingress, publish it, and wait for its result."""
        waiter: asyncio.Future[ReceivedResult] = asyncio.get_running_loop().create_future()
        self._waiters[task.task_id] = waiter
        self._agent_types[task.task_id] = task.agent_type
        ids = {TASK_ID: task.task_id, AGENT_TYPE: task.agent_type}
        ingress = self._tel.hop_span(
            "ingress",
            context=Context(),  # a webhook from chat carries no trace context: a new trace
            attributes={**ids, "http.request.method": "POST", "http.route": INGRESS_ROUTE},
        )
        with trace.use_span(ingress, end_on_exit=True):
            scoped = baggage.set_baggage(TASK_ID, task.task_id)
            token = otel_context.attach(baggage.set_baggage(AGENT_TYPE, task.agent_type, scoped))
            try:
                self._tel.log.info(
                    "ingress: task received", task_id=task.task_id, agent_type=task.agent_type
                )
                dispatch = self._tel.hop_span("dispatch", attributes=ids)
                with trace.use_span(dispatch, end_on_exit=True):
                    await self._publish_task(task)
            finally:
                otel_context.detach(token)
        try:
            result = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            self._tel.log.error(
                "orchestrator: no result in time", task_id=task.task_id, agent_type=task.agent_type
            )
            return TaskOutcome(
                task.task_id, task.agent_type, trace_id_hex(ingress), "", "", float("nan")
            )
        finally:
            self._waiters.pop(task.task_id, None)
        duration = time.monotonic() - self._published[task.task_id]
        return TaskOutcome(
            task.task_id,
            task.agent_type,
            trace_id_hex(ingress),
            result.trace_id,
            result.state,
            duration,
        )

    async def _publish_task(self, task: PlannedTask) -> None:
        subject = self._settings.task_subject(task.agent_type)
        body = task_message(task)
        attributes = messaging_attributes(
            "publish", subject, body, {TASK_ID: task.task_id, AGENT_TYPE: task.agent_type}
        )
        span = self._tel.hop_span("task_publish", attributes=attributes)
        with trace.use_span(span, end_on_exit=True):
            headers = None
            if not self._faults.drops_headers(task.task_id, "task_publish"):
                headers = inject_context()
            self._published[task.task_id] = time.monotonic()
            ack = await self._js.publish(subject, body, headers=headers)
            span.set_attribute(MESSAGING_NATS_STREAM, ack.stream)
            self._tel.log.info(
                "orchestrator: task published",
                task_id=task.task_id,
                agent_type=task.agent_type,
                subject=subject,
            )

    async def _on_result(self, msg: Any) -> None:
        subject_task_id = msg.subject.removeprefix(RESULT_SUBJECT_PREFIX)
        try:
            result = parse_result(msg.data, subject_task_id)
        except ValueError as exc:
            self._tel.log.error(
                "collector: unreadable result", task_id=subject_task_id, err=str(exc)
            )
            return
        agent_type = self._agent_types.get(result.task_id, "")
        context = extract_context(msg.headers)
        fallback = None
        if not has_span(context) and TRACE_ID_RE.match(result.trace_id):
            fallback = int(result.trace_id, 16)
        attributes = messaging_attributes(
            "receive",
            msg.subject,
            msg.data,
            {TASK_ID: result.task_id, TASK_STATE: result.state, ENVELOPE_TRACE_ID: result.trace_id},
        )
        if agent_type:
            attributes[AGENT_TYPE] = agent_type
        with forced_ids(trace_id=fallback):
            span = self._tel.hop_span("result_collect", context=context, attributes=attributes)
        with trace.use_span(span, end_on_exit=True):
            self._tel.log.info(
                "collector: result received",
                task_id=result.task_id,
                agent_type=agent_type,
                state=result.state,
            )
            self._record(result, agent_type)
        waiter = self._waiters.get(result.task_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _record(self, result: ReceivedResult, agent_type: str) -> None:
        published = self._published.get(result.task_id)
        if self._metrics is None or published is None or not agent_type:
            return
        status = STATUS_OF_STATE.get(result.state, STATUS_FAILURE)
        self._metrics.observe_task(agent_type, status, time.monotonic() - published)

    @property
    def agent_types(self) -> Mapping[str, str]:
        """Task id -> agent type of every task submitted."""
        return dict(self._agent_types)
