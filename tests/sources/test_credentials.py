"""Credentials never show: not in errors, not in any displayable object, not in report files.

A credential leaks in more shapes than its plain value, so every check here looks for all of
them, computed independently of obslib: the token or password, ``user:password``, the base64
that a Basic ``Authorization`` header carries (padded and not), the percent-encoded password.
The backends are fakes that echo the request headers back, in error bodies and in answers.
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import pickle
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import nbformat
import pytest

from obslib.emit.dashboards import render_dashboard
from obslib.errors import SourceError
from obslib.reports.run import render_html
from obslib.reports.secrets import scrub
from obslib.sources.endpoint import Endpoint
from obslib.sources.grafana import GrafanaSource
from obslib.sources.http import HttpClient
from obslib.sources.loki import LokiSource
from obslib.sources.prometheus import PrometheusSource
from obslib.sources.tempo import TempoSource
from tests.fakes.http_server import FakeServer, Reply, Request

TOKEN = "tok-8c1f0e-never-print-me"
USER = "reader"
PASSWORD = 'pw"8&3<x>/never-print:me'  # JSON, HTML and URL escaping all change it
URL_USER = "urluser"
URL_PASSWORD = "url-pw@6d/never-print"
BACKENDS = ("prometheus", "tempo", "loki", "grafana")
KINDS = ("token", "basic", "url")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaks(kind: str) -> list[str]:
    """Every shape of the credential of ``kind`` that must never be shown."""
    if kind == "token":
        return [TOKEN, quote(TOKEN, safe="")]
    user, password = (USER, PASSWORD) if kind == "basic" else (URL_USER, URL_PASSWORD)
    pair = f"{user}:{password}"
    return [password, quote(password, safe=""), pair, b64(pair), b64(pair).rstrip("=")]


def configure(monkeypatch: pytest.MonkeyPatch, backend: str, url: str, kind: str) -> None:
    """Set ``OBSLIB_<BACKEND>_*`` to reach ``url`` with a credential of ``kind``."""
    name = backend.upper()
    for key in ("TOKEN", "USER", "PASSWORD", "ORG_ID", "TIMEOUT"):
        monkeypatch.delenv(f"OBSLIB_{name}_{key}", raising=False)
    if kind == "url":
        url = url.replace("://", f"://{URL_USER}:{quote(URL_PASSWORD, safe='')}@")
    monkeypatch.setenv(f"OBSLIB_{name}_URL", url)
    monkeypatch.setenv(f"OBSLIB_{name}_TIMEOUT", "5")
    if kind == "token":
        monkeypatch.setenv(f"OBSLIB_{name}_TOKEN", TOKEN)
    elif kind == "basic":
        monkeypatch.setenv(f"OBSLIB_{name}_USER", USER)
        monkeypatch.setenv(f"OBSLIB_{name}_PASSWORD", PASSWORD)


def sent_credential(request: Request, kind: str) -> None:
    """The fake did receive the credential: the test would otherwise prove nothing."""
    header = request.headers.get("authorization", "")
    assert header.endswith(TOKEN if kind == "token" else leaks(kind)[3]), header


def shown_by(error: BaseException) -> list[str]:
    """Everything a notebook or a log could display of ``error``, its causes included."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts.append(repr(pickle.loads(pickle.dumps(error))))
    if isinstance(error, SourceError):
        texts += [error.detail, error.query, error.url]
    return texts


def assert_hidden(texts: list[str], kind: str) -> None:
    for text in texts:
        for secret in leaks(kind):
            assert secret not in text, f"{secret!r} shown in {text[:300]!r}"


def echo_lines(request: Request) -> str:
    return "\n".join(f"{k}: {v}" for k, v in request.headers.items())


def echo_text(status: int) -> Callable[[Request], Reply]:
    return lambda r: Reply(status, echo_lines(r), content_type="text/plain")


def echo_envelope(request: Request) -> Reply:
    body = {"status": "error", "errorType": "bad_data", "error": echo_lines(request)}
    return Reply(200, json.dumps(body))


def echo_not_json(request: Request) -> Reply:
    # Put the credential across the 200-character cut of the message's body excerpt.
    pad = "x" * (185 - len("authorization: Basic "))
    return Reply(200, f"{pad}authorization: {request.headers.get('authorization')}\n")


def snapshot_model() -> dict[str, Any]:
    from obslib.catalogue import build_catalogue
    from obslib.settings import load_settings

    return render_dashboard(build_catalogue(load_settings(None)))


CALLS: dict[str, tuple[str, Callable[[Request], Reply], Callable[[Any], Any]]] = {
    "prometheus-400": ("prometheus", echo_text(400), lambda s: s.query("up")),
    "prometheus-200-error": ("prometheus", echo_envelope, lambda s: s.rules()),
    "prometheus-not-json": ("prometheus", echo_not_json, lambda s: s.query("up")),
    "tempo-400": ("tempo", echo_text(400), lambda s: s.search("{ }")),
    "tempo-500": ("tempo", echo_text(500), lambda s: s.trace("0af7651916cd43dd8448eb211c80319c")),
    "loki-500": ("loki", echo_text(500), lambda s: s.labels()),
    "loki-200-error": ("loki", echo_envelope, lambda s: s.labels()),
    "grafana-401": ("grafana", echo_text(401), lambda s: s.create_snapshot(snapshot_model(), 0, 9)),
}
SOURCES: dict[str, Callable[[], Any]] = {
    "prometheus": lambda: PrometheusSource(retries=0),
    "tempo": TempoSource,
    "loki": LokiSource,
    "grafana": GrafanaSource,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CALLS))
def test_an_echoing_backend_shows_no_credential_in_errors(monkeypatch, case, kind):
    backend, handler, call = CALLS[case]
    with FakeServer(handler) as server:
        configure(monkeypatch, backend, server.url, kind)
        with pytest.raises(SourceError) as caught:
            call(SOURCES[backend]())
        sent_credential(server.requests[-1], kind)
    assert "authorization" in caught.value.detail.lower()  # the echo did reach the message
    assert_hidden(shown_by(caught.value), kind)


@pytest.mark.parametrize("kind", ["token", "url"])
def test_an_endpoint_made_in_code_is_scrubbed_too(monkeypatch, kind):
    """No environment to scrub from: the client scrubs its own endpoint's credential."""
    for key in ("URL", "TOKEN", "USER", "PASSWORD"):
        monkeypatch.delenv(f"OBSLIB_PROMETHEUS_{key}", raising=False)
    with FakeServer(echo_text(400)) as server:
        if kind == "token":
            endpoint = Endpoint("prometheus", server.url, {"Authorization": f"Bearer {TOKEN}"})
        else:
            userinfo = f"{URL_USER}:{quote(URL_PASSWORD, safe='')}@"
            endpoint = Endpoint("prometheus", server.url.replace("://", f"://{userinfo}"))
        source = PrometheusSource(endpoint, retries=0)
        with pytest.raises(SourceError) as caught:
            source.query("up")
        sent_credential(server.requests[-1], kind)
    assert_hidden(shown_by(caught.value), kind)
    assert_hidden(list(displayed(source)), kind)


# -- displayable objects -----------------------------------------------------------------------


def displayed(obj: Any, depth: int = 4, seen: set[int] | None = None) -> Iterator[str]:
    """repr and str of ``obj`` and of what its public attributes and properties hold."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    yield repr(obj)
    yield str(obj)
    if isinstance(obj, str | bytes | int | float | bool | type(None)):
        return
    if isinstance(obj, Mapping):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = list(obj)
    else:
        kind = type(obj)
        names = set(getattr(obj, "__dict__", {}))
        names |= {n for c in kind.__mro__ for n in getattr(c, "__slots__", ())}
        names |= {n for n in dir(kind) if isinstance(getattr(kind, n, None), property)}
        children = []
        for name in sorted(n for n in names if not n.startswith("_")):
            try:
                value = getattr(obj, name)
            except Exception:
                continue
            if not (inspect.isroutine(value) or inspect.isclass(value) or inspect.ismodule(value)):
                children.append(value)
    for child in children:
        yield from displayed(child, depth - 1, seen)


@pytest.mark.parametrize("kind", KINDS)
def test_no_displayable_object_holds_a_credential(monkeypatch, kind):
    for backend in BACKENDS:
        configure(monkeypatch, backend, "http://127.0.0.1:9", kind)
    sources = [make() for make in SOURCES.values()]
    objects: list[Any] = [*sources]
    objects += [s.endpoint for s in sources]
    shown = [text for obj in objects for text in displayed(obj)]
    assert len(shown) > 50  # the walk did reach the attributes
    assert_hidden(shown, kind)
    assert all(s.endpoint.url == "http://127.0.0.1:9" for s in sources)


def test_clients_send_what_they_do_not_show():
    endpoint = Endpoint("loki", "http://127.0.0.1:9", {"X-Scope-OrgID": "t1"})
    client = HttpClient(Endpoint("loki", f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:9"))
    assert endpoint.request_headers() == {"X-Scope-OrgID": "t1"}
    sent = client.endpoint.request_headers()["Authorization"]
    assert sent == f"Basic {b64(f'{USER}:{PASSWORD}')}"
    assert_hidden(list(displayed(client)), "basic")


# -- report files ------------------------------------------------------------------------------


def report_environment(monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials of every kind configured at once; returns an echo of the headers sent."""
    configure(monkeypatch, "tempo", "http://127.0.0.1:9", "token")
    configure(monkeypatch, "loki", "http://127.0.0.1:9", "basic")
    configure(monkeypatch, "prometheus", "http://127.0.0.1:9", "url")
    headers = [
        f"Bearer {TOKEN}",
        f"Basic {b64(f'{USER}:{PASSWORD}')}",
        f"Basic {b64(f'{URL_USER}:{URL_PASSWORD}')}",
    ]
    url = f"http://{URL_USER}:{quote(URL_PASSWORD, safe='')}@prometheus:9090/"
    return "\n".join([*(f"authorization: {h}" for h in headers), f"proxied for {url}"])


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def test_report_files_are_scrubbed_of_every_encoding(monkeypatch):
    echo = report_environment(monkeypatch)
    assert b64(f"{USER}:{PASSWORD}") in echo and TOKEN in echo  # what a backend echoed
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("source.query('up')")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=echo),
        nbformat.v4.new_output(
            "display_data", data={"text/html": f"<pre>{html.escape(echo)}</pre>"}
        ),
        nbformat.v4.new_output("error", ename="QueryRejected", evalue=echo, traceback=[repr(echo)]),
    ]
    notebook.cells.append(cell)
    executed = scrub(nbformat.writes(notebook))
    page = scrub(render_html(notebook, "echo"))
    results = scrub(json.dumps({"explanation": echo, "rows": [echo]}, indent=2))
    decoded = [*strings_in(json.loads(executed)), html.unescape(page), executed, page]
    decoded += [*strings_in(json.loads(results)), results]
    for kind in KINDS:
        assert_hidden(decoded, kind)
    assert "***" in page and "***" in executed and "***" in results
