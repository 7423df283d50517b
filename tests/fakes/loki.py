"""A fake Grafana Loki on :class:`FakeServer`, answering as the recorded samples show.

It holds log entries in memory, each with its stream (index) labels and its structured
metadata, and evaluates ``query_range`` for stream selectors with line filters the way Loki 3
does (tests/samples/loki and loki-3.8):

- ``start`` inclusive, ``end`` exclusive (ns, seconds or RFC3339), ``limit`` default 100,
  ``direction`` default backward, the limit applied to all streams merged by time, and no sign
  in the answer that it cut anything but ``stats.summary`` (``totalEntriesReturned`` below
  ``totalPostFilterLines``);
- structured metadata (``detected_level``, which Loki adds to every entry, and what OTLP
  ingestion keeps: ``trace_id``, ``span_id``, record attributes, severity) merged into the
  stream labels, so one pushed stream comes back split per level and per OTLP record; with
  the header ``X-Loki-Response-Encoding-Flags: categorize-labels`` streams keyed by their index
  labels only, ``data.encodingFlags``, and ``[ts, line, {"structuredMetadata": {...}}]`` values;
- streams ordered by their label text, a 400 in Loki's own words above
  ``max_entries_limit_per_query``, and a plain-text parse error for a malformed selector;
- ``labels``, ``label/<name>/values`` and ``series`` computed from the index labels (never
  from the metadata: a selector on ``trace_id`` matches no stream, as in Loki).

Queries it cannot evaluate (``| json``, metric queries) are answered with the real recorded
bodies when they are the queries those were recorded with (categorized, when asked, by the
rule above: index labels, ``detected_level`` as metadata, the parser's labels and ``__error__``
as ``parsed``), and with a 500 otherwise, so a test never silently gets a made-up answer.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.http_server import FakeBackend, Reply, Request

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "loki"
SAMPLES_38 = SAMPLES.parent / "loki-3.8"  # the Loki 3.8 set: OTLP logs, JSON push, the limit
MAX_ENTRIES = 5000  # Loki's default max_entries_limit_per_query
DEFAULT_LIMIT = 100

PROXY_JSON_QUERY = '{namespace="daedalus", container="proxy"} | json'
PROXY_RAW_QUERY = '{namespace="daedalus", container="proxy"}'
TRACE_FILTER_QUERY = '{namespace="daedalus"} |= "trace_id" | json | level="ERROR"'
MATRIX_QUERY = 'sum by (container) (count_over_time({namespace="daedalus"}[1m]))'
VECTOR_QUERY = 'sum by (container) (count_over_time({namespace="daedalus"}[1h]))'
AGENT_QUERY = '{namespace="daedalus", container="agent"}'
SERIES_MATCH = '{namespace="daedalus"}'
# The Loki 3.8 recordings (tests/samples/loki-3.8, reference/samples/README.md cases 6 to 8).
OTLP_QUERY = '{k8s_namespace_name="daedalus"}'
PUSH_RAW_QUERY = '{namespace="daedalus", app="daedalus-proxy"}'
PUSH_JSON_QUERY = '{namespace="daedalus", app="daedalus-proxy"} | json'
LIMIT_QUERY = '{namespace="daedalus", app="daedalus-agent"}'
CATEGORIZE = "categorize-labels"
DETECTED_LEVEL = "detected_level"

# query -> (recorded file, entries it holds: a smaller requested limit would cut it)
RECORDED_RANGE = {
    PROXY_JSON_QUERY: ("query-range-streams-json.json", 9),
    TRACE_FILTER_QUERY: ("query-range-trace-filter.json", 1),
    MATRIX_QUERY: ("query-range-matrix.json", 0),
    PUSH_JSON_QUERY: ("../loki-3.8/push-json-query-range-json.json", 3),
}
# parser query -> the raw recording of the same store, whose stream labels are the index labels
RECORDED_INDEX = {
    PROXY_JSON_QUERY: "query-range-streams-raw-forward.json",
    TRACE_FILTER_QUERY: "query-range-streams-raw-forward.json",
    PUSH_JSON_QUERY: "../loki-3.8/push-json-query-range-raw.json",
}
RECORDED_INSTANT = {VECTOR_QUERY: "query-instant-vector.json"}
AGENT_STEP_NS = 20_000_000  # the recorded agent stream logs every 20 ms
AGENT_TOTAL = 5200  # lines the recorded agent stream had (the recording holds the newest 5000)


def sample(name: str) -> bytes:
    """A recorded response body of tests/samples/loki, byte for byte (``.gz`` decompressed)."""
    raw = (SAMPLES / name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


def sample38(name: str) -> bytes:
    """A recorded response body of tests/samples/loki-3.8, byte for byte."""
    return (SAMPLES_38 / name).read_bytes()


def label_text(labels: dict[str, str]) -> str:
    """A label set as Loki writes it (``{a="b", c="d"}``, names sorted); Loki orders by it."""
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


_LEVELS = {"warning": "warn", "err": "error", "dbg": "debug", "crit": "critical"}


def detect_level(line: str, metadata: dict[str, str]) -> str:
    """Loki's ``detected_level``, simplified: the OTLP severity, else a JSON ``level``."""
    level = metadata.get("severity_text", "")
    if not level:
        try:
            decoded = json.loads(line)
        except ValueError:
            decoded = None
        level = str(decoded.get("level", "")) if isinstance(decoded, dict) else ""
    level = level.lower()
    return _LEVELS.get(level, level) or "unknown"


@dataclass(frozen=True)
class LogEntry:
    """One pushed entry: its stream (index labels), line and structured metadata."""

    ts: int
    labels: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    line: str
    metadata: tuple[tuple[str, str], ...] = ()  # sorted; push() adds detected_level

    @classmethod
    def of(
        cls, ts: int, labels: dict[str, str], line: str, metadata: dict[str, str] | None = None
    ) -> LogEntry:
        """An entry from label and metadata dicts."""
        return cls(ts, tuple(sorted(labels.items())), line, tuple(sorted((metadata or {}).items())))

    def merged(self) -> dict[str, str]:
        """Labels and metadata in one set, as Loki answers without categorize-labels."""
        return dict(self.labels) | dict(self.metadata)


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


def _split(stream: dict[str, str], ts: str, line: str) -> LogEntry:
    """An entry of a JSON-pushed stream as Loki answered it: detected_level is metadata."""
    labels = {k: v for k, v in stream.items() if k != DETECTED_LEVEL}
    return LogEntry.of(int(ts), labels, line, {DETECTED_LEVEL: stream[DETECTED_LEVEL]})


def recorded_entries() -> list[LogEntry]:
    """The recorded proxy stream (9 lines) and the full 5,200-line agent stream, in push order."""
    raw = json.loads(sample("query-range-streams-raw-forward.json"))
    stream_labels = set(raw["data"]["result"][0]["stream"])  # labels before any | json
    proxy = []
    for stream in json.loads(sample("query-range-streams-json.json"))["data"]["result"]:
        labels = {k: v for k, v in stream["stream"].items() if k in stream_labels}
        proxy += [_split(labels, ts, line) for ts, line in stream["values"]]
    (agent,) = json.loads(sample("query-range-limit-5000.json.gz"))["data"]["result"]
    recorded = {int(ts): line for ts, line in agent["values"]}
    newest = max(recorded)
    line_of = next(iter(recorded.values()))
    template = re.sub(r'"seq": \d+', '"seq": SEQ', line_of)
    agent_entries = []
    for seq in range(AGENT_TOTAL):
        ts = newest - (AGENT_TOTAL - 1 - seq) * AGENT_STEP_NS
        line = recorded.get(ts, template.replace("SEQ", str(seq)))
        agent_entries.append(_split(agent["stream"], str(ts), line))
    return sorted(proxy, key=lambda e: e.ts) + agent_entries


def otlp_entries() -> list[LogEntry]:
    """Case 6: the six OTLP log records, as the categorize-labels answer returned them."""
    body = json.loads(sample38("otlp-logs-query-range-categorize-labels.json"))
    return sorted(
        (
            LogEntry.of(int(ts), stream["stream"], line, extra.get("structuredMetadata"))
            for stream in body["data"]["result"]
            for ts, line, extra in stream["values"]
        ),
        key=lambda e: e.ts,
    )


def push_json_entries() -> list[LogEntry]:
    """Case 7: the one JSON-pushed proxy stream of three lines."""
    body = json.loads(sample38("push-json-query-range-raw.json"))
    chosen = [
        _split(s["stream"], ts, line) for s in body["data"]["result"] for ts, line in s["values"]
    ]
    return sorted(chosen, key=lambda e: e.ts)


def limit_entries() -> list[LogEntry]:
    """Case 8: the 120 agent lines, from the limited answer and its next page."""
    chosen = []
    for name in ("limit-reached-100-of-120.json", "limit-reached-next-page.json"):
        for stream in json.loads(sample38(name))["data"]["result"]:
            chosen += [_split(stream["stream"], ts, line) for ts, line in stream["values"]]
    return sorted(chosen, key=lambda e: e.ts)


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
        """Add entries as Loki ingests them.

        Loki adds ``detected_level`` to the structured metadata of an entry that has none, and
        drops an entry equal to a stored one in every part.
        """
        seen = set(self.entries)
        for entry in entries:
            if DETECTED_LEVEL not in dict(entry.metadata):
                level = detect_level(entry.line, dict(entry.metadata))
                entry = LogEntry.of(
                    entry.ts,
                    dict(entry.labels),
                    entry.line,
                    dict(entry.metadata) | {DETECTED_LEVEL: level},
                )
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
        return self._select(self.matching(query, start, end), start, end, limit, direction)

    def _select(
        self, ordered: list[LogEntry], start: int, end: int, limit: int, direction: str
    ) -> list[LogEntry]:
        ordered = list(ordered)
        if direction == "backward":
            ordered.reverse()
        page = ordered[:limit]
        if page:
            edge = page[-1].ts
            in_window = sum(1 for e in ordered if e.ts == edge)
            at_edge = sum(1 for e in page if e.ts == edge)
            self.served.append(Served(start, end, limit, direction, len(page), at_edge, in_window))
        return page

    def streams_body(
        self,
        page: list[LogEntry],
        categorize: bool = False,
        summary: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """The streams response for ``page``, in the encoding asked for.

        Without ``categorize`` a stream is labels and metadata merged; with it, the index labels
        only, each value carrying its metadata. Streams are ordered by their label text and keep
        the page's order inside; ``summary`` fills ``stats.summary``.
        """
        streams: dict[str, tuple[dict[str, str], list[list[Any]]]] = {}
        for entry in page:
            labels = dict(entry.labels) if categorize else entry.merged()
            value: list[Any] = [str(entry.ts), entry.line]
            if categorize:
                value.append({"structuredMetadata": dict(entry.metadata)} if entry.metadata else {})
            streams.setdefault(label_text(labels), (labels, []))[1].append(value)
        result = [{"stream": streams[k][0], "values": streams[k][1]} for k in sorted(streams)]
        data: dict[str, Any] = {"resultType": "streams"}
        if categorize:
            data["encodingFlags"] = [CATEGORIZE]
        data["result"] = result
        data["stats"] = _stats(summary or {"returned": len(page), "processed": len(page)})
        return {"status": "success", "data": data}

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
            names = {name for e in self._in_window(request) for name, _ in e.labels}
            return _json({"status": "success", "data": sorted(names)})
        label = re.fullmatch(r"/loki/api/v1/label/([A-Za-z_]\w*)/values", path)
        if label:
            values = {v for e in self._in_window(request) for n, v in e.labels if n == label[1]}
            return _json({"status": "success", "data": sorted(values)})
        if path == "/loki/api/v1/series":
            return self._series(request)
        if path == "/loki/api/v1/status/buildinfo":
            return _json(sample("buildinfo.json"))
        return _text(404, "404 page not found\n")

    def _in_window(self, request: Request) -> list[LogEntry]:
        """Entries in the request's start/end (every entry when it gives none: no wall clock)."""
        start = parse_time(request.param("start"), 0)
        end = parse_time(request.param("end"), 2**63 - 1)
        return [e for e in self.entries if start <= e.ts < end]

    def _series(self, request: Request) -> Reply:
        selectors = request.params.get("match[]") or []
        if not selectors:
            return _text(400, "at least one match[] argument must be provided")
        try:
            matchers = [parse(selector)[0] for selector in selectors]
        except LogQLError as exc:
            return _text(400, str(exc))
        found: dict[tuple[tuple[str, str], ...], None] = {}
        for entry in self._in_window(request):
            if any(_matches(entry, m, []) for m in matchers):
                found.setdefault(entry.labels)
        return _json({"status": "success", "data": [dict(labels) for labels in found]})

    def _query_range(self, request: Request) -> Reply:
        query = request.param("query") or ""
        flags = request.headers.get("x-loki-response-encoding-flags", "")
        categorize = CATEGORIZE in [flag.strip() for flag in flags.split(",")]
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
            if categorize and query in RECORDED_INDEX:
                return _json(categorized(sample(name), direction, RECORDED_INDEX[query]))
            return _json(sample(name))
        if query == PROXY_RAW_QUERY and limit == 3 and direction == "forward" and not categorize:
            return _json(sample("query-range-streams-raw-forward.json"))
        if parse(query)[2]:
            return _text(500, f"fake Loki cannot evaluate the pipeline of {query!r}")
        matchers, filters, _ = parse(query)
        matched = self.matching(query, start, end)
        page = self._select(matched, start, end, limit, direction)
        processed = (
            sum(1 for e in self.entries if start <= e.ts < end and _matches(e, matchers, []))
            if filters
            else len(matched)
        )
        summary = {"returned": len(page), "post_filter": len(matched), "processed": processed}
        return _json(self.streams_body(page, categorize, summary))

    @staticmethod
    def _now() -> int:
        return int(dt.datetime.now(dt.UTC).timestamp() * 10**9)


@functools.cache
def _recorded_stats() -> dict[str, Any]:
    return json.loads(sample38("limit-reached-100-of-120.json"))["data"]["stats"]


def _stats(summary: dict[str, int]) -> dict[str, Any]:
    """A ``stats`` object shaped as Loki's (the recorded limit case's), with these counts."""
    stats = copy.deepcopy(_recorded_stats())
    returned = summary["returned"]
    processed = summary.get("processed", returned)
    stats["summary"].update(
        totalEntriesReturned=returned,
        totalPostFilterLines=summary.get("post_filter", returned),
        totalLinesProcessed=processed,
    )
    stats["ingester"]["totalLinesSent"] = returned
    stats["ingester"]["store"]["chunk"].update(
        headChunkLines=processed, postFilterLines=summary.get("post_filter", returned)
    )
    return stats


def categorized(body: bytes, direction: str, raw: str) -> dict[str, Any]:
    """A recorded plain answer of a parser query as Loki encodes it with categorize-labels.

    The stream keeps its index labels (those of ``raw``, a recording of the same store with no
    parser), ``detected_level`` becomes structured metadata, and every other label (the
    parser's, and ``__error__``) is ``parsed``.
    """
    index = set(json.loads(sample(raw))["data"]["result"][0]["stream"]) - {DETECTED_LEVEL}
    data = json.loads(body)["data"]
    streams: dict[str, tuple[dict[str, str], list[list[Any]]]] = {}
    for stream in data["result"]:
        labels = {k: v for k, v in stream["stream"].items() if k in index}
        extra: dict[str, Any] = {}
        if DETECTED_LEVEL in stream["stream"]:
            extra["structuredMetadata"] = {DETECTED_LEVEL: stream["stream"][DETECTED_LEVEL]}
        parsed = {
            k: v for k, v in stream["stream"].items() if k not in index and k != DETECTED_LEVEL
        }
        if parsed:
            extra["parsed"] = parsed
        values = streams.setdefault(label_text(labels), (labels, []))[1]
        values += [[ts, line, extra] for ts, line in stream["values"]]
    for _, values in streams.values():
        values.sort(key=lambda v: int(v[0]), reverse=direction == "backward")
    result = [{"stream": streams[k][0], "values": streams[k][1]} for k in sorted(streams)]
    encoded = {"resultType": "streams", "encodingFlags": [CATEGORIZE], "result": result}
    return {"status": "success", "data": encoded | {"stats": data.get("stats", {})}}
