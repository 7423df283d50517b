"""One HTTP client for every backend: credentials, a deadline, bounded retries, clear errors.

Every request of every source goes through :class:`HttpClient`, so these rules hold for all:

- **A deadline per call.** The endpoint's ``timeout`` (``OBSLIB_<NAME>_TIMEOUT``) bounds the
  whole call in wall-clock time: connecting, waiting, reading the body, every retry and every
  backoff pause. A backend that trickles its answer a byte at a time is cut off at the
  deadline like one that never answers (how: :mod:`obslib.sources.deadline`). A retry starts
  only if the time left allows it, and a call that ran out of time is not retried. Running
  out of time raises :class:`~obslib.errors.BackendTimeout`, naming the setting to raise.
- **Retries** after transport failures and 502/503/504, with exponential backoff, then
  ``BackendUnavailable``.
- **The server's own words.** 400 and 422 are the server refusing the query (``QueryRejected``);
  404 is ``NotFound``; 401/403 name the credential variables. Each carries the server's message:
  ``errorType: error`` of a Prometheus-style JSON envelope, the text of a plain body (Loki,
  Tempo). A 200 whose envelope says ``"status": "error"`` is an error too.
- **No credential in any message.** Server text is scrubbed of every encoding of the
  endpoint's credential before it goes into an error (a backend may echo request headers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3.exceptions

from obslib.errors import (
    BackendTimeout,
    BackendUnavailable,
    MalformedResponse,
    NotFound,
    QueryRejected,
    SourceError,
)
from obslib.sources.deadline import (
    ACCEPT_ENCODING,
    Answer,
    BodyEncodingError,
    DeadlineAdapter,
    OutOfTime,
    fetch,
)
from obslib.sources.endpoint import Endpoint

RETRY_STATUSES = {502, 503, 504}
MAX_DETAIL_CHARS = 500
# Error types of the Prometheus API envelope (also Loki's) that are not the query's fault.
_UNAVAILABLE_TYPES = {"timeout", "canceled", "internal", "unavailable"}


def server_message(answer: Answer, scrub: Callable[[str], str] = str) -> str:
    """The server's explanation of a failed request: the JSON ``error`` field, or the body text.

    ``scrub`` runs before the text is cut short, so a cut never keeps part of a secret.
    """
    text = answer.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType")
        text = f"{kind}: {body['error']}" if kind else str(body["error"])
    return scrub(text)[:MAX_DETAIL_CHARS] or f"HTTP {answer.status} with an empty body"


class HttpClient:
    """Requests against one :class:`Endpoint`; inject ``session`` to reuse connections or in tests.

    Args:
        endpoint: where the backend is, its credential and its timeout (the call's deadline).
        session: a requests session (default a new one); its http and https adapters are
            replaced by ones that bound the wait for headers by the deadline.
        retries: retries after a transport failure or 502/503/504, within the deadline.
        backoff_s: the first pause between attempts; it doubles after each retry.
        sleep: how to pause (tests record the pauses instead).
        clock: a monotonic clock in seconds (the deadline is measured on it).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        session: requests.Session | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.session = session or requests.Session()
        adapter = DeadlineAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"HttpClient({self.endpoint!r}, retries={self.retries})"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this endpoint."""
        return f"{self.endpoint.url}/{path.lstrip('/')}"

    def scrub(self, text: str) -> str:
        """``text`` without any encoding of this endpoint's credential."""
        return self.endpoint.scrub(text)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        json_body: Any = None,
        query: str = "",
        accept: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send a request; return the 2xx answer or raise the matching ``SourceError``.

        ``data`` is sent as a form, ``json_body`` as JSON (with its content type); ``headers``
        are added to the endpoint's own (credentials, tenant), which win.

        Raises:
            BackendTimeout: no complete answer within the endpoint's timeout.
            BackendUnavailable: unreachable, or 5xx after the retries.
            QueryRejected: 400 or 422. NotFound: 404.
        """
        url = self.url(path)
        headers = {**(headers or {}), **self.endpoint.request_headers()}
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        if accept:
            headers["Accept"] = accept
        timeout = self.endpoint.timeout
        deadline = self._clock() + timeout
        last = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff_s * 2 ** (attempt - 1)
                if self._clock() + pause >= deadline:
                    last += f"; no time left for a retry within the {timeout:g} s deadline"
                    break
                self._sleep(pause)
            attempts += 1
            send = {"params": params, "data": data, "json": json_body, "headers": headers}
            try:
                answer = self._attempt(method, url, send, deadline, query)
            except OutOfTime as exc:
                raise self._too_slow(url, query, exc.received) from None
            except requests.ConnectTimeout:
                last = f"no connection within {timeout:g} s"
                break  # the whole deadline went into connecting
            except requests.ConnectionError as exc:
                last = f"cannot connect ({type(exc).__name__})"
                continue
            except urllib3.exceptions.HTTPError as exc:  # raised while reading the body
                last = f"the connection broke during the answer ({type(exc).__name__})"
                continue
            if answer.status in RETRY_STATUSES:
                last = f"HTTP {answer.status}: {server_message(answer, self.scrub)}"
                continue
            return self._check(answer, url, query)
        plural = "s" if attempts > 1 else ""
        detail = self.scrub(f"{last} after {attempts} attempt{plural}")
        raise BackendUnavailable(self.endpoint.backend, url, query, detail)

    def _attempt(
        self, method: str, url: str, send: dict[str, Any], deadline: float, query: str
    ) -> Answer:
        """One request through :func:`fetch`; an undecodable body is ``MalformedResponse``."""
        try:
            return fetch(
                self.session,
                method,
                url,
                deadline,
                self._clock,
                verify=self.endpoint.verify,
                **send,
            )
        except BodyEncodingError as exc:
            detail = f"the body could not be decoded ({exc})"
            raise MalformedResponse(self.endpoint.backend, url, query, detail) from None

    def _too_slow(self, url: str, query: str, received: int) -> BackendTimeout:
        timeout = self.endpoint.timeout
        got = f" ({received} bytes of it arrived)" if received else ""
        detail = (
            f"no complete answer within {timeout:g} s{got}: the backend is too slow for this "
            f"request. The deadline is OBSLIB_{self.endpoint.backend.upper()}_TIMEOUT "
            f"(seconds, now {timeout:g})"
        )
        return BackendTimeout(self.endpoint.backend, url, query, detail)

    def _check(self, answer: Answer, url: str, query: str) -> Answer:
        backend = self.endpoint.backend
        status = answer.status
        if 200 <= status < 300:
            return answer
        message = server_message(answer, self.scrub)
        if status in (400, 422):
            raise QueryRejected(backend, url, query, message)
        if status == 404:
            raise NotFound(backend, url, query, message)
        if status in (401, 403):
            name = backend.upper()
            raise BackendUnavailable(
                backend,
                url,
                query,
                f"HTTP {status}: access denied ({message}); check OBSLIB_{name}_TOKEN "
                f"or OBSLIB_{name}_USER/PASSWORD",
            )
        raise BackendUnavailable(backend, url, query, f"HTTP {status}: {message}")

    def decode_json(self, answer: Answer, query: str = "") -> Any:
        """The JSON body of ``answer``; an error envelope (``"status": "error"``) is raised.

        An envelope that says ``error`` without ``error`` or ``errorType`` is returned as is
        (the caller finds it malformed).

        Raises:
            MalformedResponse: the body is not JSON.
            QueryRejected, NotFound, BackendUnavailable: the envelope is an error (by its
                ``errorType``); the message is the server's.
        """
        backend = self.endpoint.backend
        try:
            body = answer.json()
        except ValueError:
            snippet = self.scrub(answer.text)[:200]
            detail = f"body is not JSON: {snippet!r}"
            raise MalformedResponse(backend, answer.url, query, detail) from None
        if (
            isinstance(body, dict)
            and body.get("status") == "error"
            and (body.get("error") or body.get("errorType"))
        ):
            raise self._envelope_error(body, answer, query)
        return body

    def _envelope_error(self, body: dict[str, Any], answer: Answer, query: str) -> SourceError:
        kind = str(body.get("errorType") or "")
        text = str(body.get("error") or "no error message")
        message = self.scrub(f"{kind}: {text}" if kind else text)[:MAX_DETAIL_CHARS]
        detail = f"{message} (HTTP {answer.status} with status 'error')"
        cls: type[SourceError] = QueryRejected
        if kind == "not_found":
            cls = NotFound
        elif kind in _UNAVAILABLE_TYPES:
            cls = BackendUnavailable
        return cls(self.endpoint.backend, answer.url, query, detail)

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        query: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` (with extra ``headers``, if any) and decode its JSON body."""
        answer = self.request("GET", path, params=params, query=query, headers=headers)
        return self.decode_json(answer, query)

    def post_form_json(self, path: str, data: Mapping[str, Any], query: str = "") -> Any:
        """POST ``data`` as a form (long queries) and decode the JSON body."""
        return self.decode_json(self.request("POST", path, data=data, query=query), query)
