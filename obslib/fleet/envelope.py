"""The messages of the pipeline: planned tasks, the task message and the result envelope.

Both are A2A ``Task`` objects in JSON, as the platform publishes them: the task message on
``agent.tasks.<agent_type>`` carries the user's message in ``history``; the result on
``agent.results.<taskId>`` carries the answer as an artifact and ``metadata.trace_id`` (32
lowercase hex), which the collector falls back on when the NATS headers carry no context.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from obslib.catalogue.contract import STATUS_CANCELED, STATUS_FAILURE, STATUS_SUCCESS

STATE_SUBMITTED = "submitted"
STATE_COMPLETED = "completed"
STATE_FAILED = "failed"
STATE_CANCELED = "canceled"
STATE_REJECTED = "rejected"
# A2A terminal state -> the contract's `status` label.
STATUS_OF_STATE = {
    STATE_COMPLETED: STATUS_SUCCESS,
    STATE_FAILED: STATUS_FAILURE,
    STATE_REJECTED: STATUS_FAILURE,
    STATE_CANCELED: STATUS_CANCELED,
}
TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")

_CHORES = (
    "Fix the flaky retry test in internal/queue",
    "Add a --dry-run flag to the deploy script",
    "Rename taskID to taskId across the proxy package",
    "Explain why the consumer lag alert fired last night",
    "Write a unit test for the result collector's metadata fallback",
    "Bump the NATS client and run the integration suite",
    "Summarise the open issues labelled observability",
    "Refactor the ACP client to share one JSON-RPC reader",
)


@dataclass(frozen=True)
class PlannedTask:
    """One task of a run, fixed before the run starts."""

    index: int
    task_id: str
    agent_type: str
    prompt: str
    message_id: str
    context_id: str


def plan_tasks(agent_types: Sequence[str], count: int, seed: int) -> list[PlannedTask]:
    """``count`` tasks spread round-robin over ``agent_types``, prompts drawn from ``seed``.

    Task ids are unique per run (``task-<run token>-<index>``) so runs exported to one
    collector never share an id.
    """
    rng = random.Random(seed)
    token = uuid.uuid4().hex[:8]
    tasks = []
    for index in range(count):
        chore = rng.choice(_CHORES)
        tasks.append(
            PlannedTask(
                index=index,
                task_id=f"task-{token}-{index:04d}",
                agent_type=agent_types[index % len(agent_types)],
                prompt=f"{chore} (ticket #{rng.randint(100, 9999)})",
                message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                context_id=f"ctx-{token}-{index // 4:04d}",
            )
        )
    return tasks


def task_message(task: PlannedTask) -> bytes:
    """The A2A task the orchestrator publishes for ``task``."""
    return _dump(
        {
            "kind": "task",
            "id": task.task_id,
            "contextId": task.context_id,
            "status": {"state": STATE_SUBMITTED},
            "history": [
                {
                    "kind": "message",
                    "role": "user",
                    "messageId": task.message_id,
                    "taskId": task.task_id,
                    "contextId": task.context_id,
                    "parts": [{"kind": "text", "text": task.prompt}],
                }
            ],
            "metadata": {"agent_type": task.agent_type},
        }
    )


@dataclass(frozen=True)
class ReceivedTask:
    """What a worker reads from a task message."""

    task_id: str
    context_id: str
    message_id: str
    prompt: str
    agent_type: str


def parse_task(data: bytes) -> ReceivedTask:
    """Read a task message (raises ``ValueError`` when it is not one)."""
    body = _load(data)
    message = (body.get("history") or [{}])[-1]
    text = "".join(p.get("text", "") for p in message.get("parts", []) if p.get("kind") == "text")
    if not body.get("id"):
        raise ValueError("task message has no id")
    return ReceivedTask(
        task_id=str(body["id"]),
        context_id=str(body.get("contextId", "")),
        message_id=str(message.get("messageId", "")),
        prompt=text,
        agent_type=str((body.get("metadata") or {}).get("agent_type", "")),
    )


def result_envelope(
    task_id: str, context_id: str, state: str, answer: str, trace_id: str, error: str = ""
) -> bytes:
    """The A2A task the proxy publishes when the agent is done, stamped with ``trace_id``."""
    status: dict[str, Any] = {"state": state}
    if error:
        status["message"] = {
            "kind": "message",
            "role": "agent",
            "parts": [{"kind": "text", "text": error}],
        }
    return _dump(
        {
            "kind": "task",
            "id": task_id,
            "contextId": context_id,
            "status": status,
            "artifacts": [
                {"artifactId": f"{task_id}-answer", "parts": [{"kind": "text", "text": answer}]}
            ],
            "metadata": {"trace_id": trace_id},
        }
    )


@dataclass(frozen=True)
class ReceivedResult:
    """What the collector reads from a result envelope."""

    task_id: str
    state: str
    trace_id: str  # metadata.trace_id as sent ("" when absent)


def parse_result(data: bytes, subject_task_id: str) -> ReceivedResult:
    """Read a result envelope; the id inside wins over the subject's suffix, as on the platform."""
    body = _load(data)
    return ReceivedResult(
        task_id=str(body.get("id") or subject_task_id),
        state=str((body.get("status") or {}).get("state", "")),
        trace_id=str((body.get("metadata") or {}).get("trace_id", "")),
    )


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _load(data: bytes) -> dict[str, Any]:
    body = json.loads(data)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body
