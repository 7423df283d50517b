"""Backend endpoints and credentials, read from the environment only.

Never from function arguments a notebook parameter would record: parameters are written into
executed notebooks and HTML reports. For a backend ``NAME`` (PROMETHEUS, TEMPO, LOKI, GRAFANA):

    OBSLIB_<NAME>_URL        base URL, e.g. https://tempo.example.com (required unless a default applies)
    OBSLIB_<NAME>_TOKEN      bearer token (Authorization: Bearer ...)
    OBSLIB_<NAME>_USER       basic-auth user, with OBSLIB_<NAME>_PASSWORD
    OBSLIB_<NAME>_CA_BUNDLE  path of a CA bundle to verify TLS with
    OBSLIB_<NAME>_ORG_ID     tenant, sent as X-Scope-OrgID (multi-tenant Tempo, Loki, Mimir)
    OBSLIB_<NAME>_TIMEOUT    per-request timeout in seconds (default 30)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from obslib.errors import ConfigError, redact_url

BACKENDS = ("prometheus", "tempo", "loki", "grafana")
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where a backend is and how to authenticate; ``repr`` never shows a secret."""

    backend: str
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __repr__(self) -> str:
        return (
            f"Endpoint(backend={self.backend!r}, url={self.safe_url!r}, timeout={self.timeout:g})"
        )

    @property
    def safe_url(self) -> str:
        """The base URL without credentials, for messages and reports."""
        return redact_url(self.url)


def _env(backend: str, key: str, environ: Mapping[str, str]) -> str:
    return environ.get(f"OBSLIB_{backend.upper()}_{key}", "").strip()


def is_configured(backend: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OBSLIB_<BACKEND>_URL`` is set."""
    return bool(_env(backend, "URL", os.environ if environ is None else environ))


def endpoint_from_env(
    backend: str, default_url: str | None = None, environ: Mapping[str, str] | None = None
) -> Endpoint:
    """Build the endpoint of ``backend`` from ``OBSLIB_<BACKEND>_*`` variables."""
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
    return Endpoint(
        backend=backend,
        url=url,
        headers=headers,
        auth=(user, password) if user else None,
        verify=verify,
        timeout=timeout,
    )
