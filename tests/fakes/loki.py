"""A fake Grafana Loki on :class:`FakeServer`, answering as reference/backends.md documents.

It holds log entries in memory and evaluates ``query_range`` for stream selectors with line
filters the way Loki does: ``start`` inclusive, ``end`` exclusive (ns, seconds or RFC3339),
``limit`` default 100, ``direction`` default backward, the limit applied to all streams merged
by time, a 400 in Loki's own words above ``max_entries_limit_per_query``, and a plain-text
parse error for a malformed selector. Queries it cannot evaluate (``| json``, metric queries)
are answered with the real recorded bodies of tests/samples/loki when they are the queries
those were recorded with, and with a 500 otherwise, so a test never silently gets a made-up
answer.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.http_server import FakeBackend, Reply, Request

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "loki"
MAX_ENTRIES = 5000  # Loki's default max_entries_limit_per_query
DEFAULT_LIMIT = 100

PROXY_JSON_QUERY = '{namespace="daedalus", container="proxy"} | json'
PROXY_RAW_QUERY = '{namespace="daedalus", container="proxy"}'
TRACE_FILTER_QUERY = '{namespace="daedalus"} |= "trace_id" | json | level="ERROR"'
MATRIX_QUERY = 'sum by (container) (count_over_time({namespace="daedalus"}[1m]))'
VECTOR_QUERY = 'sum by (container) (count_over_time({namespace="daedalus"}[1h]))'
AGENT_QUERY = '{namespace="daedalus", container="agent"}'
SERIES_MATCH = '{namespace="daedalus"}'

# query -> (recorded file, entries it holds: a smaller requested limit would cut it)
RECORDED_RANGE = {
    PROXY_JSON_QUERY: ("query-range-streams-json.json", 9),
    TRACE_FILTER_QUERY: ("query-range-trace-filter.json", 1),
    MATRIX_QUERY: ("query-range-matrix.json", 0),
}
RECORDED_INSTANT = {VECTOR_QUERY: "query-instant-vector.json"}
AGENT_STEP_NS = 20_000_000  # the recorded agent stream logs every 20 ms
AGENT_TOTAL = 5200  # lines the recorded agent stream had (the recording holds the newest 5000)


def sample(name: str) -> bytes:
    """A recorded response body, byte for byte (``.gz`` files decompressed)."""
    raw = (SAMPLES / name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


@dataclass(frozen=True)
class LogEntry:
    """One pushed entry."""

    ts: int
    labels: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    line: str

    @classmethod
    def of(cls, ts: int, labels: dict[str, str], line: str) -> LogEntry:
        """An entry from a label dict."""
        return cls(ts, tuple(sorted(labels.items())), line)


@dataclass(frozen=True)
class Served:
    """What one evaluated query_range answered, for tests to see where pages were cut."""

    start: int
    end: int
    limit: int
    direction: str
    returned: int
    edge_returned: int  # entries at the page's last timestamp that were returned
    edge_in_window: int  # entries at that timestamp the window holds


def recorded_entries() -> list[LogEntry]:
    """The recorded proxy stream (9 lines) and the full 5,200-line agent stream, in push order."""
    raw = json.loads(sample("query-range-streams-raw-forward.json"))
    stream_labels = set(raw["data"]["result"][0]["stream"])  # labels before any | json
    proxy = []
    for stream in json.loads(sample("query-range-streams-json.json"))["data"]["result"]:
        labels = {k: v for k, v in stream["stream"].items() if k in stream_labels}
        proxy += [LogEntry.of(int(ts), labels, line) for ts, line in stream["values"]]
    (agent,) = json.loads(sample("query-range-limit-5000.json.gz"))["data"]["result"]
    recorded = {int(ts): line for ts, line in agent["values"]}
    newest = max(recorded)
    line_of = next(iter(recorded.values()))
    template = re.sub(r'"seq": \d+', '"seq": SEQ', line_of)
    agent_entries = []
    for seq in range(AGENT_TOTAL):
        ts = newest - (AGENT_TOTAL - 1 - seq) * AGENT_STEP_NS
        line = recorded.get(ts, template.replace("SEQ", str(seq)))
        agent_entries.append(LogEntry.of(ts, agent["stream"], line))
    return sorted(proxy, key=lambda e: e.ts) + agent_entries


def tie_entries(base: list[LogEntry], every: int = 7, extra: int = 2) -> list[LogEntry]:
    """Entries sharing timestamps with ``base`` agent entries, to straddle page boundaries.

    Every ``every``-th agent entry gets ``extra`` more lines in its own stream at its
    timestamp, and a second pod repeats the same line at the same time (same text, other
    stream: only the labels tell them apart).
    """
    agent = [e for e in base if ("container", "agent") in e.labels]
    out = []
    for i, entry in enumerate(agent[::every]):
        for part in range(extra):
            out.append(LogEntry(entry.ts, entry.labels, entry.line[:-1] + f', "part": {part}}}'))
        if i % 3 == 0:
            other = dict(entry.labels) | {"pod": "daedalus-copilot-7f9c2-q8w3z"}
            out.append(LogEntry.of(entry.ts, other, entry.line))
    return out


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<op>\|=|\|~|!=|!~|=~|[{}(),|=\[\]])|(?P<word>[A-Za-z_][\w.]*))'
)


def _unquote(text: str) -> str:
    return text[1:-1] if text.startswith("`") else json.loads(text)


class LogQLError(ValueError):
    """A query Loki would refuse; ``str`` is the message in Loki's format."""


def _tokens(query: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(query.rstrip()):
        match = _TOKEN.match(query, pos)
        if not match:
            col = pos + len(query[pos:]) - len(query[pos:].lstrip()) + 1
            raise LogQLError(
                f"parse error at line 1, col {col}: syntax error: unexpected character"
            )
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    return out


def parse(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], bool]:
    """``(matchers, line filters, other stages present)`` of a log query, or LogQLError."""
    tokens = _tokens(query) + [("end", "", len(query) + 1)] * 3

    def fail(i: int, expecting: str) -> LogQLError:
        kind, text, col = tokens[i]
        got = "end of input" if kind == "end" else text
        return LogQLError(
            f"parse error at line 1, col {col}: syntax error: unexpected {got}{expecting}"
        )

    if tokens[0][1] != "{":
        raise fail(0, ", expecting {")
    matchers, i = [], 1
    while True:
        name, op, value = tokens[i : i + 3]
        if name[0] != "word" or op[1] not in ("=", "!=", "=~", "!~") or value[0] != "str":
            raise fail(i, "")
        matchers.append((name[1], op[1], _unquote(value[1])))
        i += 3
        if tokens[i][1] == "}":
            break
        if tokens[i][1] != ",":
            raise fail(i, ", expecting } or ,")
        i += 1
    filters, other = [], False
    i += 1
    while tokens[i][0] != "end":
        if tokens[i][1] in ("|=", "!=", "|~", "!~") and tokens[i + 1][0] == "str":
            filters.append((tokens[i][1], _unquote(tokens[i + 1][1])))
            i += 2
        elif tokens[i][1] == "|":
            other, i = True, i + 1
            while tokens[i][0] != "end" and tokens[i][1] not in ("|", "|=", "|~"):
                i += 1
        else:
            raise fail(i, "")
    return matchers, filters, other


def _matches(entry: LogEntry, matchers: list[tuple[str, str, str]], filters: list) -> bool:
    labels = dict(entry.labels)
    for name, op, value in matchers:
        have = labels.get(name, "")
        ok = {
            "=": have == value,
            "!=": have != value,
            "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None,
        }[op]
        if not ok:
            return False
    for op, text in filters:
        ok = {
            "|=": text in entry.line,
            "!=": text not in entry.line,
            "|~": re.search(text, entry.line) is not None,
            "!~": re.search(text, entry.line) is None,
        }[op]
        if not ok:
            return False
    return True


def parse_time(value: str | None, default: int) -> int:
    """Unix ns of a Loki time parameter: float seconds, ns (or s if <= 10 digits), RFC3339."""
    if not value:
        return default
    if "." in value and re.fullmatch(r"\d+\.\d*", value):
        whole, frac = value.split(".")
        return int(whole) * 10**9 + int((frac + "0" * 9)[:9])
    if value.isdigit():
        return int(value) * 10**9 if len(value) <= 10 else int(value)
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(stamp.timestamp()) * 10**9 + stamp.microsecond * 1000


def _text(status: int, body: str | bytes) -> Reply:
    return Reply(status=status, body=body, content_type="text/plain; charset=utf-8")


def _json(body: Any) -> Reply:
    return Reply(body=body if isinstance(body, bytes) else json.dumps(body))


class FakeLoki(FakeBackend):
    """Loki on 127.0.0.1 holding ``entries``; use as a context manager."""

    def __init__(self, entries: list[LogEntry]) -> None:
        self.entries: list[LogEntry] = []
        self.push(entries)
        self.served: list[Served] = []
        self.extra: dict[tuple[str, str], bytes] = {}  # (path, query) -> body, set by tests
        super().__init__()

    def push(self, entries: list[LogEntry]) -> None:
        """Add entries; like Loki, an entry equal to a stored one in all three parts is dropped."""
        seen = set(self.entries)
        for entry in entries:
            if entry not in seen:
                seen.add(entry)
                self.entries.append(entry)

    def matching(self, query: str, start: int, end: int) -> list[LogEntry]:
        """Ground truth: every entry of ``query`` in ``[start, end)``, forward order."""
        matchers, filters, _ = parse(query)
        chosen = [e for e in self.entries if start <= e.ts < end and _matches(e, matchers, filters)]
        return sorted(chosen, key=lambda e: e.ts)  # stable: ties keep push order

    def select(
        self, query: str, start: int, end: int, limit: int, direction: str
    ) -> list[LogEntry]:
        """The entries query_range returns, merged across streams in ``direction`` order."""
        ordered = self.matching(query, start, end)
        if direction == "backward":
            ordered.reverse()
        page = ordered[:limit]
        if page:
            edge = page[-1].ts
            in_window = sum(1 for e in ordered if e.ts == edge)
            at_edge = sum(1 for e in page if e.ts == edge)
            self.served.append(Served(start, end, limit, direction, len(page), at_edge, in_window))
        return page

    def streams_body(self, page: list[LogEntry]) -> dict[str, Any]:
        """The streams response for ``page``: entries grouped by stream, order kept."""
        streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
        for entry in page:
            streams.setdefault(entry.labels, []).append([str(entry.ts), entry.line])
        result = [{"stream": dict(k), "values": v} for k, v in streams.items()]
        return {
            "status": "success",
            "data": {"resultType": "streams", "result": result, "stats": {}},
        }

    def handle(self, request: Request) -> Reply:
        """Route one request as Loki's HTTP API does."""
        path, query = request.path, request.param("query") or ""
        if (path, query) in self.extra:
            return _json(self.extra[(path, query)])
        if path == "/loki/api/v1/query_range":
            return self._query_range(request)
        if path == "/loki/api/v1/query":
            if query in RECORDED_INSTANT:
                return _json(sample(RECORDED_INSTANT[query]))
            return _text(500, f"fake Loki cannot evaluate instant query {query!r}")
        if path == "/loki/api/v1/labels":
            return _json(sample("labels.json"))
        if path == "/loki/api/v1/label/container/values":
            return _json(sample("label-values-container.json"))
        if path == "/loki/api/v1/series":
            if request.params.get("match[]") == [SERIES_MATCH]:
                return _json(sample("series.json"))
            return _text(500, f"fake Loki has no series recording for {request.params}")
        if path == "/loki/api/v1/status/buildinfo":
            return _json(sample("buildinfo.json"))
        return _text(404, "404 page not found\n")

    def _query_range(self, request: Request) -> Reply:
        query = request.param("query") or ""
        try:
            end = parse_time(request.param("end"), self._now())
            start = parse_time(request.param("start"), end - 3600 * 10**9)
        except ValueError as exc:
            return _text(400, f"invalid time: {exc}")
        if end <= start:
            return _text(400, "end timestamp must not be before or equal to start time")
        limit_text = request.param("limit") or str(DEFAULT_LIMIT)
        if not limit_text.isdigit() or int(limit_text) <= 0:
            return _text(400, "limit must be a positive value")
        limit = int(limit_text)
        direction = (request.param("direction") or "backward").lower()
        if direction not in ("forward", "backward"):
            return _text(400, "invalid direction")
        recorded = RECORDED_RANGE.get(query)
        if recorded is None and not query.lstrip().startswith("{"):
            return _text(500, f"fake Loki cannot evaluate metric query {query!r}")
        if recorded is None:
            try:
                parse(query)
            except LogQLError as exc:
                return _text(400, str(exc))
        if limit > MAX_ENTRIES:
            return _text(
                400,
                "max entries limit per query exceeded, limit > max_entries_limit_per_query "
                f"({limit} > {MAX_ENTRIES})",
            )
        if recorded is not None:
            name, held = recorded
            if limit < held:
                return _text(500, f"fake Loki: the recording of {query!r} holds {held} entries")
            return _json(sample(name))
        if query == PROXY_RAW_QUERY and limit == 3 and direction == "forward":
            return _json(sample("query-range-streams-raw-forward.json"))
        if parse(query)[2]:
            return _text(500, f"fake Loki cannot evaluate the pipeline of {query!r}")
        return _json(self.streams_body(self.select(query, start, end, limit, direction)))

    @staticmethod
    def _now() -> int:
        return int(dt.datetime.now(dt.UTC).timestamp() * 10**9)
