"""Backend endpoints and credentials, read from the environment only.

Never from function arguments a notebook parameter would record: parameters are written into
executed notebooks and HTML reports. For a backend ``NAME`` (PROMETHEUS, TEMPO, LOKI, GRAFANA):

    OBSLIB_<NAME>_URL        base URL, e.g. https://tempo.example.com (required unless a default applies)
    OBSLIB_<NAME>_TOKEN      bearer token (Authorization: Bearer ...)
    OBSLIB_<NAME>_USER       basic-auth user, with OBSLIB_<NAME>_PASSWORD
    OBSLIB_<NAME>_CA_BUNDLE  path of a CA bundle to verify TLS with
    OBSLIB_<NAME>_ORG_ID     tenant, sent as X-Scope-OrgID (multi-tenant Tempo, Loki, Mimir)
    OBSLIB_<NAME>_TIMEOUT    deadline of one request in seconds, retries included (default 30)
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from obslib.errors import ConfigError
from obslib.redact import basic_token, redact_url, scrub, secret_forms, url_credentials

BACKENDS = ("prometheus", "tempo", "loki", "grafana")
DEFAULT_TIMEOUT_S = 30.0


class Credential:
    """How requests authenticate: a bearer token or basic auth. Never shows its secret.

    ``repr`` and ``str`` name only the scheme (and the basic-auth user); the header value is
    read with :meth:`authorization` when a request is sent, and :meth:`scrub` removes every
    encoding of the secret from a text. No attribute holds the secret in a displayable form.
    """

    __slots__ = ("_authorization", "_forms", "scheme", "user")

    def __init__(self, scheme: str, authorization: str, forms: tuple[str, ...], user: str = ""):
        self.scheme = scheme
        self.user = user
        self._authorization = authorization
        self._forms = forms

    @classmethod
    def bearer(cls, token: str) -> Credential:
        """``Authorization: Bearer <token>``."""
        return cls("bearer", f"Bearer {token}", secret_forms([token]))

    @classmethod
    def basic(cls, user: str, password: str) -> Credential:
        """``Authorization: Basic <base64 of user:password>``."""
        forms = secret_forms([], [(user, password)])
        return cls("basic", f"Basic {basic_token(user, password)}", forms, user)

    @classmethod
    def from_header(cls, value: str) -> Credential:
        """The credential of an ``Authorization`` header value given as is."""
        scheme, _, secret = value.strip().partition(" ")
        if scheme.lower() == "bearer" and secret:
            return cls.bearer(secret.strip())
        if scheme.lower() == "basic" and secret:
            try:
                user, sep, password = (
                    base64.b64decode(secret, validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if sep:
                return cls.basic(user, password)
        return cls(scheme.lower() or "header", value, secret_forms([value, secret]))

    def authorization(self) -> str:
        """The ``Authorization`` header value to send (never print it)."""
        return self._authorization

    def scrub(self, text: str) -> str:
        """``text`` with every encoding of this secret replaced by ``***``."""
        return scrub(text, self._forms)

    def __repr__(self) -> str:
        user = f", user={self.user!r}" if self.user else ""
        return f"Credential({self.scheme}{user}, ***)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credential) and self._authorization == other._authorization

    def __hash__(self) -> int:
        return hash(self._authorization)


@dataclass(frozen=True)
class Endpoint:
    """Where a backend is and how to authenticate; nothing in it displays a secret.

    User info in ``url`` (``https://user:password@host``) becomes a basic-auth
    :attr:`credential` (as requests would send it) and an ``Authorization`` entry of
    ``headers`` becomes the credential too, so ``url`` and ``headers`` hold no secret. An
    explicit ``credential`` wins over user info, which wins over an ``Authorization`` header.
    ``timeout`` is the deadline of one call, retries included (see :mod:`obslib.sources.http`).
    """

    backend: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    credential: Credential | None = None
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        parts = urlsplit(self.url.strip())
        if parts.query or parts.fragment:
            raise ConfigError(
                f"{self.backend}: the base URL {redact_url(self.url)!r} must not have a query "
                f"string or fragment; give a token with OBSLIB_{self.backend.upper()}_TOKEN"
            )
        credential = self.credential
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        given = [v for k, v in self.headers.items() if k.lower() == "authorization"]
        if credential is None and (found := url_credentials(self.url)):
            credential = Credential.basic(*found)
        if credential is None and given:
            credential = Credential.from_header(given[0])
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "credential", credential)
        if not self.timeout > 0:
            raise ConfigError(f"{self.backend}: the timeout must be positive, got {self.timeout}")

    def __repr__(self) -> str:
        auth = f", auth={self.credential.scheme!r}" if self.credential else ""
        return (
            f"Endpoint(backend={self.backend!r}, url={self.safe_url!r}, "
            f"timeout={self.timeout:g}{auth})"
        )

    @property
    def safe_url(self) -> str:
        """The base URL without credentials, for messages and reports."""
        return redact_url(self.url)

    def scrub(self, text: str) -> str:
        """``text`` without any encoding of this endpoint's credential."""
        return self.credential.scrub(text) if self.credential else text

    def request_headers(self) -> dict[str, str]:
        """The headers every request sends: the extra headers and the credential."""
        headers = dict(self.headers)
        if self.credential is not None:
            headers["Authorization"] = self.credential.authorization()
        return headers


def env_name(backend: str, key: str = "URL") -> str:
    """The variable that holds ``key`` of ``backend``: ``OBSLIB_<BACKEND>_<KEY>``."""
    return f"OBSLIB_{backend.upper()}_{key}"


def _env(backend: str, key: str, environ: Mapping[str, str]) -> str:
    return environ.get(env_name(backend, key), "").strip()


def is_configured(backend: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OBSLIB_<BACKEND>_URL`` is set."""
    return bool(_env(backend, "URL", os.environ if environ is None else environ))


def endpoint_from_env(
    backend: str, default_url: str | None = None, environ: Mapping[str, str] | None = None
) -> Endpoint:
    """Build the endpoint of ``backend`` from ``OBSLIB_<BACKEND>_*`` variables.

    Basic auth (``_USER``/``_PASSWORD``) wins over user info in the URL, which wins over a
    bearer ``_TOKEN``: the same order requests applies.
    """
    env = os.environ if environ is None else environ
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    name = backend.upper()
    url = _env(backend, "URL", env) or default_url
    if not url:
        raise ConfigError(
            f"{backend}: no endpoint configured. Set OBSLIB_{name}_URL "
            f"(and OBSLIB_{name}_TOKEN or _USER/_PASSWORD if it needs credentials)."
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"OBSLIB_{name}_URL must start with http:// or https://, got {redact_url(url)!r}"
        )
    headers: dict[str, str] = {}
    token = _env(backend, "TOKEN", env)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    org = _env(backend, "ORG_ID", env)
    if org:
        headers["X-Scope-OrgID"] = org
    user, password = _env(backend, "USER", env), _env(backend, "PASSWORD", env)
    if bool(user) != bool(password):
        raise ConfigError(f"set both OBSLIB_{name}_USER and OBSLIB_{name}_PASSWORD, or neither")
    verify: bool | str = True
    ca = _env(backend, "CA_BUNDLE", env)
    if ca:
        if not Path(ca).is_file():
            raise ConfigError(f"OBSLIB_{name}_CA_BUNDLE: no such file {ca!r}")
        verify = ca
    timeout_text = _env(backend, "TIMEOUT", env)
    try:
        timeout = float(timeout_text) if timeout_text else DEFAULT_TIMEOUT_S
    except ValueError as exc:
        raise ConfigError(
            f"OBSLIB_{name}_TIMEOUT must be a number of seconds, got {timeout_text!r}"
        ) from exc
    if not 0 < timeout < float("inf"):
        raise ConfigError(f"OBSLIB_{name}_TIMEOUT must be a positive number of seconds")
    return Endpoint(
        backend=backend,
        url=url,
        headers=headers,
        credential=Credential.basic(user, password) if user else None,
        verify=verify,
        timeout=timeout,
    )
