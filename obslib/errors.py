"""The one small error hierarchy of obslib.

Every message says what failed and what to do next. Source errors carry the backend, the URL
without credentials and the query, so a failed report points at the request that broke.
"""

from __future__ import annotations

from obslib.redact import environment_secret_forms, redact_url, scrub

__all__ = [
    "BackendTimeout",
    "BackendUnavailable",
    "CatalogueError",
    "ConfigError",
    "EmitError",
    "MalformedResponse",
    "NoData",
    "NotFound",
    "ObslibError",
    "QueryRejected",
    "SourceError",
    "StackError",
    "redact_url",
]


def _scrubbed(value: object) -> object:
    return scrub(value, environment_secret_forms()) if isinstance(value, str) else value


class ObslibError(Exception):
    """Base class of every error obslib raises on purpose.

    Text arguments are scrubbed of every configured credential (in each of its encodings) as
    the error is made, so neither its message nor its ``repr`` can show one.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(_scrubbed(arg) for arg in args))


class ConfigError(ObslibError):
    """A values file, an environment variable or a parameter is invalid."""


class CatalogueError(ObslibError):
    """The catalogue is inconsistent, or an expression does not match the exporters' metrics."""


class EmitError(ObslibError):
    """Emitting or checking the committed artifacts failed."""


class StackError(ObslibError):
    """The embedded local stack could not be started, reached or stopped."""


class SourceError(ObslibError):
    """A backend request failed.

    Attributes:
        backend: ``prometheus``, ``tempo``, ``loki``, ``otlp-file``, ``grafana``...
        url: the request URL without credentials or query string.
        query: the query (PromQL, TraceQL, LogQL, trace id or file) that was asked.
        detail: what went wrong, in the server's own words where there are some.

    ``query`` and ``detail`` are scrubbed of the credentials configured in the environment;
    the HTTP client scrubs those of its own endpoint before it builds an error.
    """

    hint = "Check the query and the backend, then run again."

    def __init__(self, backend: str, url: str, query: str, detail: str) -> None:
        self.backend = backend
        self.url = redact_url(url)
        self.query = str(_scrubbed(query))
        self.detail = str(_scrubbed(detail))
        super().__init__(backend, self.url, self.query, self.detail)

    def __str__(self) -> str:
        query = f" for query {self.query!r}" if self.query else ""
        return f"{self.backend} at {self.url}{query}: {self.detail}. {self.hint}"

    def __reduce__(self):  # keep pickling (multiprocessing, papermill) lossless
        return (type(self), (self.backend, self.url, self.query, self.detail))


class BackendUnavailable(SourceError):
    """The backend could not be reached or timed out, after bounded retries."""

    hint = (
        "Is the backend running and is its URL right? `obslib stack status` shows the local stack."
    )


class BackendTimeout(BackendUnavailable):
    """The backend did not finish its answer within the request's deadline (it is too slow)."""

    hint = (
        "Raise the timeout named above, or ask for less (a shorter window, a coarser step, "
        "a narrower selector)."
    )


class QueryRejected(SourceError):
    """The backend refused the query (syntax, limits); ``detail`` is the server's own text."""

    hint = "Fix the query; the backend's message above says what it could not accept."


class NoData(SourceError):
    """The query ran but matched nothing (a verdict built on this is inconclusive)."""

    hint = "Widen the time window or check the selector's labels against the live data."


class NotFound(SourceError):
    """A trace (or other object asked for by id) does not exist in the backend."""

    hint = "Check the id, or wait: freshly ingested traces can take a few seconds to appear."


class MalformedResponse(SourceError):
    """The backend answered with a body that does not have the documented shape."""

    hint = "The backend's version may be unsupported; report the body shape with the URL above."
