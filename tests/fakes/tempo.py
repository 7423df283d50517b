"""A fake Grafana Tempo that answers as reference/backends.md documents, from recorded bodies.

Recorded responses (tests/samples/tempo/) are served byte for byte: searches by their query,
traces by the ids in trace-ids.json, tag discovery, the unknown-id and bad-id answers. What
was not recorded is built the way the docs describe and is marked so below:

- v1 bodies of traces other than ``ok``: the v2 ``resourceSpans`` under ``"batches"`` (the
  recorded v1 body of ``ok`` is exactly that);
- a PARTIAL trace: a recorded v2 body with ``"status":"PARTIAL","message":...`` appended;
- a search that matches nothing: ``{"metrics":{}}`` (proto3 JSON omits the empty list);
- a server without the v2 route, and 503s before answering.

Use as a context manager; ``requests`` lists what clients sent, headers included.
"""

from __future__ import annotations

import json
import string
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote

from tests.fakes.http_server import FakeBackend, Reply, Request
from tests.fakes.tempo_store import TempoStore

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "tempo"
TRACE_IDS: dict = json.loads((SAMPLES / "trace-ids.json").read_text())
OK_ID = TRACE_IDS["ok"][0]
TASK_SIDE_ID, AGENT_SIDE_ID = TRACE_IDS["broken_pipe"]
ERROR_ID = TRACE_IDS["error"][0]
ORPHAN_ID = TRACE_IDS["orphan"]

# Query text -> recorded body (samples README): the exact TraceQL each sample was asked with.
SEARCH_SAMPLES = {
    '{ span.daedalus.task.id =~ "t-.*" }': "search-by-task-attr.json",
    '{ resource.service.name = "daedalus-agent-copilot" }': "search-recent-no-range.json",
    "{ status = error }": "search-errors.json",
    '{ name = "acp.session.prompt" } !> { name = "agent.session.prompt" }': (
        "search-structural-missing-child.json"
    ),
    "{ nestedSetParent < 0 }": "search-roots.json",
}
SYNTAX_ERROR_QUERY = "{ span.agent_type = "
V2_TRACES = {
    OK_ID: "trace-v2-complete.json",
    TASK_SIDE_ID: "trace-v2-broken-pipe-task-side.json",
    AGENT_SIDE_ID: "trace-v2-broken-pipe-agent-side.json",
    ERROR_ID: "trace-v2-agent-error.json",
    ORPHAN_ID: "trace-v2-orphan-rootless.json",
}
UNKNOWN_ID = "0123456789abcdef0123456789abcdef"
PARTIAL_MESSAGE = "trace exceeds max size (max bytes: 5000); partial trace returned"  # invented
_HEXDIGITS = set(string.hexdigits)
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


def sample(name: str) -> bytes:
    """A recorded body, as bytes."""
    return (SAMPLES / name).read_bytes()


def _id_error(raw: str) -> str | None:
    """Tempo's refusal of a trace id, or None when it accepts it."""
    if raw == "not-hex":
        return sample("trace-v2-invalid-id.txt").decode()
    if len(raw) > 32:
        return "trace IDs can't be larger than 128 bits"
    for position, char in enumerate(raw, start=1):
        if char not in _HEXDIGITS:
            return f"trace IDs can only contain hex characters: invalid character '{char}' at position {position}"
    return None


class FakeTempo(FakeBackend):
    """Tempo's query API on 127.0.0.1.

    Args:
        v2_routes: False plays an older Tempo without ``/api/v2/...`` (Go's 404 page).
        partial_ids: trace ids answered as cut (``status: PARTIAL``) on the v2 route.
        unavailable_first: answer this many requests with 503 before behaving.
        searchable_after: answer this many searches as if nothing were indexed yet.
        store: answer search and trace by id from pushed spans, as Tempo 3.1 does
            (:mod:`tests.fakes.tempo_store`), on the store's clock (``Date`` headers too).
        latency: seconds to take per answer, by route and traces answered (benchmarks).
    """

    def __init__(
        self,
        *,
        v2_routes: bool = True,
        partial_ids: Iterable[str] = (),
        unavailable_first: int = 0,
        searchable_after: int = 0,
        store: TempoStore | None = None,
        latency: Callable[[str, int], float] | None = None,
    ) -> None:
        self.store = store
        self.latency = latency  # (route, traces answered) -> seconds, for the benchmark
        self.v2_routes = v2_routes
        self.partial_ids = set(partial_ids)
        self._unavailable = unavailable_first
        self._hidden_searches = searchable_after
        self._lock = threading.Lock()
        self._by_id_lock = threading.Lock()  # Tempo's CPU per lookup: by-id answers queue up
        super().__init__(store.clock if store else None)

    def handle(self, request: Request) -> Reply:
        """Answer one request as Tempo would."""
        with self._lock:
            if self._unavailable > 0:
                self._unavailable -= 1
                return Reply(503, "too many outstanding requests", _TEXT)
        path = request.path
        if path.startswith("/api/v2/") and not self.v2_routes:
            return Reply(404, "404 page not found\n", _TEXT)
        if path == "/api/status/buildinfo":
            return Reply(200, sample("buildinfo.json"))
        if self.store is not None:
            return self._from_store(request)
        if path == "/api/search":
            return self._search(request)
        if path.startswith("/api/v2/traces/"):
            return self._trace(unquote(path.removeprefix("/api/v2/traces/")), v2=True)
        if path.startswith("/api/traces/"):
            return self._trace(unquote(path.removeprefix("/api/traces/")), v2=False)
        tag_bodies = {
            "/api/search/tags": "search-tags-v1.json",
            "/api/v2/search/tags": "search-tags-v2.json",
            "/api/search/tag/service.name/values": "search-tag-values-v1.json",
            "/api/v2/search/tag/resource.service.name/values": "search-tag-values-v2.json",
        }
        if path in tag_bodies:
            return Reply(200, sample(tag_bodies[path]))
        if path.startswith(("/api/search/tag/", "/api/v2/search/tag/")):
            return Reply(200, '{"tagValues":[],"metrics":{}}')
        return Reply(404, "404 page not found\n", _TEXT)

    def _from_store(self, request: Request) -> Reply:
        path = request.path
        if path == "/api/search":
            start, end = request.param("start"), request.param("end")
            status, body = self.store.search(
                request.param("q", ""),
                int(start) if start else None,
                int(end) if end else None,
                int(request.param("limit", "20")),
                int(request.param("spss", "3")),
            )
            self._pause("search", body.count('"traceID"'))
            return Reply(status, body, _JSON if status == 200 else _TEXT)
        for prefix, v2 in (("/api/v2/traces/", True), ("/api/traces/", False)):
            if path.startswith(prefix):
                raw = unquote(path.removeprefix(prefix))
                refusal = _id_error(raw)
                if refusal:
                    return Reply(400, refusal, _TEXT)
                with self._by_id_lock:
                    self._pause("trace", 1)
                    status, body = self.store.trace_body(raw.lower().rjust(32, "0"), v2)
                return Reply(status, body, _JSON if status == 200 else _TEXT)
        return Reply(404, "404 page not found\n", _TEXT)

    def _pause(self, route: str, traces: int) -> None:
        if self.latency is not None:
            time.sleep(self.latency(route, traces))

    def _search(self, request: Request) -> Reply:
        query = request.param("q", "")
        if query == SYNTAX_ERROR_QUERY:
            return Reply(400, sample("search-syntax-error.txt"), _TEXT)
        with self._lock:
            hidden = self._hidden_searches > 0
            if hidden:
                self._hidden_searches -= 1
        if hidden or query not in SEARCH_SAMPLES:
            return Reply(200, '{"metrics":{}}')
        return Reply(200, sample(SEARCH_SAMPLES[query]))

    def _trace(self, raw_id: str, *, v2: bool) -> Reply:
        refusal = _id_error(raw_id)
        if refusal:
            return Reply(400, refusal, _TEXT)
        trace_id = raw_id.lower().rjust(32, "0")
        name = V2_TRACES.get(trace_id)
        if name is None:
            if v2:
                return Reply(200, sample("trace-v2-unknown-id.json"))
            return Reply(404, sample("trace-v1-unknown-id.txt"), _TEXT)
        if not v2:
            if trace_id == OK_ID:
                return Reply(200, sample("trace-v1-complete.json"))
            body = json.loads(sample(name))
            return Reply(200, json.dumps({"batches": body["trace"]["resourceSpans"]}))
        body = sample(name)
        if trace_id in self.partial_ids:
            extra = json.dumps({"status": "PARTIAL", "message": PARTIAL_MESSAGE})
            body = body.rstrip()[:-1] + b"," + extra[1:].encode()
        return Reply(200, body)
