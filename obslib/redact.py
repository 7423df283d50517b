"""Keep credentials out of text: URLs without user info, and every encoded form of a secret.

A credential leaks in more shapes than its plain value: the base64 of ``user:password`` in a
Basic ``Authorization`` header that a backend echoes back, the percent-encoded user info of a
URL, the JSON, HTML or ``repr`` escaping a notebook or report file puts around it.
:func:`secret_forms` lists those shapes for a set of credentials and :func:`scrub` replaces
each one with ``***``. The module sits at the bottom of the layers, next to ``errors``: every
error message and every report file is scrubbed through it.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

REDACTED = "***"
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary text
_SECRET_KEY = re.compile(r"^OBSLIB_([A-Z0-9_]+)_(TOKEN|PASSWORD)$")
_URL_KEY = re.compile(r"^OBSLIB_([A-Z0-9_]+)_URL$")


def redact_url(url: str) -> str:
    """Return ``url`` without user, password or query string (which may hold tokens)."""
    parts = urlsplit(url)
    if not parts.netloc:  # not an absolute URL: drop anything up to a user-info '@'
        return url.split("?", 1)[0].rpartition("@")[2]
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def url_credentials(url: str) -> tuple[str, str] | None:
    """The (user, password) a URL carries in its user info, percent-decoded; None without."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def basic_token(user: str, password: str) -> str:
    """The base64 of ``user:password`` that a Basic ``Authorization`` header carries."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _escaped(value: str) -> set[str]:
    """``value`` as JSON, HTML and Python ``repr`` text would show it, and JSON of those."""
    shown = {
        value,
        html.escape(value, quote=False),
        html.escape(value),
        # Jinja's (markupsafe's) escaping, which nbconvert's HTML uses
        html.escape(value, quote=False).replace('"', "&#34;").replace("'", "&#39;"),
        repr(value)[1:-1],
    }
    for text in list(shown):
        shown.add(json.dumps(text)[1:-1])
        shown.add(json.dumps(text, ensure_ascii=False)[1:-1])
    return shown


def secret_forms(
    secrets: Iterable[str] = (), pairs: Iterable[tuple[str, str]] = ()
) -> tuple[str, ...]:
    """Every shape in which ``secrets`` (tokens, passwords) and basic-auth ``pairs`` can appear.

    Plain, percent-encoded, ``user:password`` as in a URL, its base64 as in an
    ``Authorization: Basic`` header (padded and not); each also JSON-, HTML- and repr-escaped.
    Longest first, so a replacement never leaves part of a longer form behind.
    """
    raw: set[str] = set()
    for secret in secrets:
        raw |= {secret, quote(secret, safe=""), quote_plus(secret)}
    for user, password in pairs:
        raw |= {password, quote(password, safe=""), quote_plus(password)}
        joined = f"{user}:{password}"
        encoded = basic_token(user, password)
        raw |= {joined, f"{quote(user, safe='')}:{quote(password, safe='')}"}
        raw |= {encoded, encoded.rstrip("=")}
    forms = {shown for value in raw if value for shown in _escaped(value)}
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True))


def environment_secret_forms(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The :func:`secret_forms` of every credential configured in the environment.

    ``OBSLIB_<NAME>_TOKEN`` and ``_PASSWORD`` values, the ``_USER``/``_PASSWORD`` pair, and the
    user info of ``OBSLIB_<NAME>_URL``.
    """
    env = os.environ if environ is None else environ
    secrets: list[str] = []
    pairs: list[tuple[str, str]] = []
    for key, value in env.items():
        if match := _SECRET_KEY.match(key):
            secrets.append(value.strip())
            if match.group(2) == "PASSWORD":
                user = env.get(f"OBSLIB_{match.group(1)}_USER", "").strip()
                pairs.append((user, value.strip()))
        elif _URL_KEY.match(key) and (found := url_credentials(value.strip())):
            pairs.append(found)
    return secret_forms(secrets, pairs)


def scrub(text: str, forms: Iterable[str]) -> str:
    """``text`` with every one of ``forms`` replaced by ``***`` (longest match first)."""
    ordered = sorted({f for f in forms if f}, key=len, reverse=True)
    if not ordered or not text:
        return text
    return re.sub("|".join(map(re.escape, ordered)), REDACTED, text)
