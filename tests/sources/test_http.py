"""The shared HTTP client, through every source: deadlines, retries, the server's own words.

Each source is built on a fake that misbehaves the same way, so one rule is checked on every
path: Prometheus (queries and the discovery API), Tempo, Loki and Grafana share the client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from obslib.emit.dashboards import render_dashboard
from obslib.errors import (
    BackendTimeout,
    BackendUnavailable,
    MalformedResponse,
    NotFound,
    QueryRejected,
    SourceError,
)
from obslib.sources.endpoint import Endpoint
from obslib.sources.grafana import GrafanaSource
from obslib.sources.http import HttpClient
from obslib.sources.loki import LokiSource
from obslib.sources.prometheus import PrometheusSource
from tests.fakes.http_server import FakeServer, Reply, Request

TIMEOUT_S = 1.5
SLACK_S = 1.0  # scheduling slack on a busy 2-core machine
VECTOR = (
    '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}'
)
NO_RULES = '{"status":"success","data":{"groups":[]}}'
LABELS = '{"status":"success","data":["container"]}'
SEARCH = '{"traces":[],"metrics":{}}'
SNAPSHOT = '{"url":"http://g/dashboard/snapshot/k","key":"k","deleteUrl":"http://g/d"}'


def endpoint(backend: str, url: str, timeout: float = TIMEOUT_S) -> Endpoint:
    return Endpoint(backend, url, timeout=timeout)


def client(backend: str, url: str, retries: int = 0) -> HttpClient:
    return HttpClient(endpoint(backend, url), retries=retries, backoff_s=0.01)


def prometheus(url: str, retries: int) -> PrometheusSource:
    return PrometheusSource(endpoint("prometheus", url), retries=retries, backoff_s=0.01)


def prometheus_query(url: str, retries: int = 0) -> Any:
    return prometheus(url, retries).query("up")


def prometheus_rules(url: str, retries: int = 0) -> Any:
    return prometheus(url, retries).rules()


def tempo_search(url: str, retries: int = 0) -> Any:
    from obslib.sources.tempo import TempoSource

    return TempoSource(client=client("tempo", url, retries)).search("{ }")


def loki_labels(url: str, retries: int = 0) -> Any:
    return LokiSource(client=client("loki", url, retries)).labels()


def grafana_snapshot(url: str, retries: int = 0) -> Any:
    from obslib.catalogue import build_catalogue
    from obslib.settings import load_settings

    model = render_dashboard(build_catalogue(load_settings(None)))
    return GrafanaSource(client=client("grafana", url, retries)).create_snapshot(model, 0, 60)


# (call, its backend, a good body for it)
CALLS: list[tuple[Callable[..., Any], str, str]] = [
    (prometheus_query, "prometheus", VECTOR),
    (prometheus_rules, "prometheus", NO_RULES),
    (tempo_search, "tempo", SEARCH),
    (loki_labels, "loki", LABELS),
    (grafana_snapshot, "grafana", SNAPSHOT),
]
IDS = ["prometheus-query", "prometheus-rules", "tempo-search", "loki-labels", "grafana-snapshot"]


def timed(call: Callable[[], Any]) -> tuple[SourceError, float]:
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value, time.monotonic() - started


# -- deadline --------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "backend", "body"), CALLS, ids=IDS)
def test_a_backend_trickling_a_byte_a_second_is_cut_off_at_the_deadline(call, backend, body):
    padded = " " * 200 + body  # valid JSON, 200+ seconds long at a byte a second
    with FakeServer(lambda r: Reply(200, padded, trickle_s=1.0)) as server:
        error, elapsed = timed(lambda: call(server.url, retries=2))
        assert len(server.requests) == 1  # out of time: not retried
    assert isinstance(error, BackendTimeout), error
    assert elapsed < TIMEOUT_S + SLACK_S
    assert "too slow" in error.detail and f"within {TIMEOUT_S:g} s" in error.detail
    assert f"OBSLIB_{backend.upper()}_TIMEOUT" in str(error)


def test_headers_trickling_in_are_cut_off_at_the_deadline_too():
    reply = Reply(
        200, VECTOR, headers={"X-Padding": "p" * 100}, trickle_s=0.5, trickle_headers=True
    )
    with FakeServer(lambda r: reply) as server:
        error, elapsed = timed(lambda: prometheus_query(server.url, retries=2))
        assert len(server.requests) == 1
    assert isinstance(error, BackendTimeout), error
    assert elapsed < TIMEOUT_S + SLACK_S


def test_a_trickle_faster_than_the_deadline_is_read_whole():
    # About 0.2 s of trickle against a 10 s deadline: read whole however busy the machine is.
    with FakeServer(lambda r: Reply(200, VECTOR, trickle_s=0.002)) as server:
        source = PrometheusSource(endpoint("prometheus", server.url, timeout=10), retries=0)
        frame = source.query("up")
    assert frame["value"].tolist() == [7.0]


def test_a_backend_that_never_answers_is_a_timeout_not_unreachable():
    release = threading.Event()

    def hang(_request: Request) -> Reply:
        release.wait(10)
        return Reply(200, VECTOR)

    with FakeServer(hang) as server:
        try:
            error, elapsed = timed(lambda: prometheus_query(server.url, retries=3))
        finally:
            release.set()
        assert len(server.requests) == 1
    assert isinstance(error, BackendTimeout)
    assert "cannot connect" not in error.detail
    assert elapsed < TIMEOUT_S + SLACK_S


def test_retries_stop_when_the_next_one_would_pass_the_deadline():
    busy = Reply(503, "ingester ring is busy", content_type="text/plain")
    with FakeServer(lambda r: busy) as server:
        source = PrometheusSource(endpoint("prometheus", server.url), retries=10, backoff_s=0.4)
        error, elapsed = timed(lambda: source.query("up"))
        # attempts at 0, 0.4 and 1.2 s; the next pause (1.6 s) would end past the 1.5 s deadline
        assert len(server.requests) == 3
    assert type(error) is BackendUnavailable
    assert elapsed < TIMEOUT_S + SLACK_S
    assert "ingester ring is busy" in error.detail
    assert "no time left for a retry within the 1.5 s deadline" in error.detail


def test_fast_retries_still_happen_inside_the_deadline():
    def flaky(_request: Request) -> Reply:
        if len(server.requests) < 3:
            return Reply(502, "bad gateway", content_type="text/plain")
        return Reply(200, VECTOR)

    with FakeServer(flaky) as server:
        source = PrometheusSource(endpoint("prometheus", server.url), retries=3, backoff_s=0.01)
        assert source.query("up")["value"].tolist() == [7.0]
        assert len(server.requests) == 3


# -- the server's own words ------------------------------------------------------------------


def error_envelope(kind: str, text: str) -> str:
    return f'{{"status":"error","errorType":"{kind}","error":"{text}"}}'


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("bad_data", QueryRejected),
        ("execution", QueryRejected),
        ("not_found", NotFound),
        ("timeout", BackendUnavailable),
    ],
)
@pytest.mark.parametrize("call", [prometheus_query, prometheus_rules, loki_labels])
def test_a_200_with_status_error_raises_the_server_message(call, kind, expected):
    text = "parse error at char 5: unexpected <EOF>"
    with FakeServer(lambda r: Reply(200, error_envelope(kind, text))) as server:
        error, _ = timed(lambda: call(server.url))
    assert type(error) is expected
    assert f"{kind}: {text}" in error.detail
    assert "status 'error'" in error.detail


def test_a_gzipped_answer_is_decoded():
    import gzip

    body = gzip.compress(VECTOR.encode())
    reply = Reply(200, body, headers={"Content-Encoding": "gzip"})
    with FakeServer(lambda r: reply) as server:
        assert prometheus_query(server.url)["value"].tolist() == [7.0]
        assert "gzip" in (server.requests[0].headers.get("accept-encoding") or "")


def test_a_body_that_does_not_decompress_is_malformed():
    reply = Reply(200, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    with FakeServer(lambda r: reply) as server:
        error, _ = timed(lambda: prometheus_query(server.url))
    assert isinstance(error, MalformedResponse) and "decoded" in error.detail
