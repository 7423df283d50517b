"""Keep credentials out of executed notebooks, HTML reports and results files.

Credentials only ever come from the environment (``OBSLIB_<BACKEND>_TOKEN``, ``_PASSWORD``
with ``_USER``, user info in ``_URL``) and no notebook prints them; as a last line of defence,
every file a report run writes is scrubbed before it lands on disk. Scrubbing covers every
encoding of each credential (:func:`obslib.redact.secret_forms`): a backend that echoes request
headers puts the base64 of ``user:password`` into its answer, not the password.
"""

from __future__ import annotations

from collections.abc import Mapping

from obslib.redact import REDACTED, environment_secret_forms
from obslib.redact import scrub as scrub_forms

__all__ = ["REDACTED", "scrub", "secret_values"]


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every encoded form of the credentials set in the environment, longest first."""
    return list(environment_secret_forms(environ))


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every form of every configured credential replaced by ``***``."""
    return scrub_forms(text, environment_secret_forms(environ))
