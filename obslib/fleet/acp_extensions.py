"""What the reference pipeline adds to ACP, through the protocol's own extension points.

ACP itself (JSON-RPC framing on stdio, the schema's models, the client and agent connections)
comes from the protocol's Python SDK, the ``agent-client-protocol`` package (``import acp``).
The pipeline adds two things the protocol leaves to implementations:

- keys of ``_meta``: W3C trace context under the root keys the spec reserves for it
  (``traceparent``, ``tracestate``, ``baggage``), which is how the proxy hands its span to the
  agent process, and the task id under a key of our own (:data:`META_TASK_ID`);
- the extension method ``_daedalus/telemetry`` (:data:`TELEMETRY_METHOD`): before it closes the
  agent's stdin, the client asks the agent to flush its telemetry and report the totals.

How the SDK carries ``_meta``: the client passes the keys as keyword arguments of a request
method (``conn.new_session(cwd=..., mcp_servers=[], **meta)``) and the agent's handler receives
them the same way (``**meta``), values unchanged. The SDK merges them over the request's own
fields, though: a ``_meta`` key spelled like a field's Python name (``cwd``, ``session_id``,
``prompt``...) replaces that field in the handler's arguments, and a ``_meta`` that is not an
object is dropped without a word. None of the keys here can collide (see the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

import acp
from acp.schema import Implementation

# ACP's method names (from the SDK), as the spans' rpc.method attribute.
SESSION_NEW = acp.AGENT_METHODS["session_new"]
SESSION_PROMPT = acp.AGENT_METHODS["session_prompt"]
SESSION_UPDATE = acp.CLIENT_METHODS["session_update"]

TRACE_CONTEXT_KEYS = ("traceparent", "tracestate", "baggage")
# Not a trace context key, so dropping the trace context at the pipe leaves it in place and the
# agent's spans still name their task.
META_TASK_ID = "daedalus.dev/taskId"
META_KEYS = (*TRACE_CONTEXT_KEYS, META_TASK_ID)

# The SDK adds the leading "_" of ACP's extension space on the wire: "_daedalus/telemetry".
TELEMETRY_METHOD = "daedalus/telemetry"
# Keys of the telemetry report (the extension method's result).
REPORT_SERVICE = "service"
REPORT_EXPORTED = "spansExported"
REPORT_FAILED = "spansFailed"
REPORT_WITHHELD = "spansWithheld"
REPORT_LOST = "spansLost"


def trace_carrier(meta: Mapping[str, Any]) -> dict[str, str]:
    """The W3C trace context in a request's ``_meta`` (string values only; may be empty)."""
    return {key: meta[key] for key in TRACE_CONTEXT_KEYS if isinstance(meta.get(key), str)}


def implementation(name: str) -> Implementation:
    """How a side of the pipe names itself in ``initialize``: ``name`` and obslib's version."""
    try:
        version = metadata.version("obslib")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    return Implementation(name=name, version=version)


def text_of(content: Any) -> str:
    """The text of an ACP content block, "" for blocks of other kinds."""
    return str(getattr(content, "text", "")) if getattr(content, "type", "") == "text" else ""
