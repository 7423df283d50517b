"""One HTTP client for every backend: credentials, bounded retries, errors that say what failed.

Transport failures, timeouts and 502/503/504 are retried with exponential backoff, then raised
as ``BackendUnavailable``. 400 and 422 are the server refusing the query (``QueryRejected``,
carrying the server's own text); 404 is ``NotFound``; 401/403 name the credential variables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from obslib.errors import BackendUnavailable, MalformedResponse, NotFound, QueryRejected
from obslib.sources.endpoint import Endpoint

RETRY_STATUSES = {502, 503, 504}
MAX_DETAIL_CHARS = 500


def server_message(response: requests.Response) -> str:
    """The server's explanation of a failed request: the JSON ``error`` field, or the body text."""
    text = response.text.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType")
        return f"{kind}: {body['error']}" if kind else str(body["error"])
    return text[:MAX_DETAIL_CHARS] or f"HTTP {response.status_code} with an empty body"


class HttpClient:
    """Requests against one :class:`Endpoint`; inject ``session`` to reuse connections or in tests."""

    def __init__(
        self,
        endpoint: Endpoint,
        session: requests.Session | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.session = session or requests.Session()
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this endpoint."""
        return f"{self.endpoint.url}/{path.lstrip('/')}"

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
    ) -> requests.Response:
        """Send a request; return the 2xx response or raise the matching ``SourceError``.

        ``data`` is sent as a form, ``json_body`` as JSON (with its content type); ``headers``
        are added to the endpoint's own (credentials, tenant).
        """
        url = self.url(path)
        headers = {**(headers or {}), **self.endpoint.headers}
        if accept:
            headers["Accept"] = accept
        backend = self.endpoint.backend
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    json=json_body,
                    headers=headers,
                    auth=self.endpoint.auth,
                    verify=self.endpoint.verify,
                    timeout=self.endpoint.timeout,
                )
            except requests.Timeout:
                last = f"no answer within {self.endpoint.timeout:g} s"
                continue
            except requests.ConnectionError as exc:
                last = f"cannot connect ({type(exc).__name__})"
                continue
            if response.status_code in RETRY_STATUSES:
                last = f"HTTP {response.status_code}: {server_message(response)}"
                continue
            return self._check(response, url, query)
        raise BackendUnavailable(backend, url, query, f"{last} after {self.retries + 1} attempts")

    def _check(self, response: requests.Response, url: str, query: str) -> requests.Response:
        backend = self.endpoint.backend
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status in (400, 422):
            raise QueryRejected(backend, url, query, server_message(response))
        if status == 404:
            raise NotFound(backend, url, query, server_message(response))
        if status in (401, 403):
            name = backend.upper()
            raise BackendUnavailable(
                backend,
                url,
                query,
                f"HTTP {status}: access denied ({server_message(response)}); check OBSLIB_{name}_TOKEN "
                f"or OBSLIB_{name}_USER/PASSWORD",
            )
        raise BackendUnavailable(backend, url, query, f"HTTP {status}: {server_message(response)}")

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        query: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` (with extra ``headers``, if any) and decode its JSON body."""
        response = self.request("GET", path, params=params, query=query, headers=headers)
        return decode_json(response, self.endpoint.backend, query)

    def post_form_json(self, path: str, data: Mapping[str, Any], query: str = "") -> Any:
        """POST ``data`` as a form (long queries) and decode the JSON body."""
        return decode_json(
            self.request("POST", path, data=data, query=query), self.endpoint.backend, query
        )


def decode_json(response: requests.Response, backend: str, query: str) -> Any:
    """The JSON body of ``response``, or ``MalformedResponse`` naming the URL."""
    try:
        return response.json()
    except ValueError as exc:
        snippet = response.text[:200]
        raise MalformedResponse(
            backend, response.url, query, f"body is not JSON: {snippet!r}"
        ) from exc
