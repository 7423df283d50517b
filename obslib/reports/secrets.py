"""Keep credentials out of executed notebooks, HTML reports and results files.

Credentials only ever come from the environment (``OBSLIB_<BACKEND>_TOKEN`` / ``_PASSWORD``)
and no notebook prints them; as a last line of defence, every file a report run writes is
scrubbed of their values before it lands on disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_SECRET_KEY = re.compile(r"^OBSLIB_[A-Z0-9_]+_(TOKEN|PASSWORD)$")
REDACTED = "***"
_MIN_LENGTH = 4  # shorter values would redact ordinary text


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the credential variables set in the environment, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_KEY.match(k) and len(v) >= _MIN_LENGTH}
    return sorted(values, key=len, reverse=True)


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every credential value replaced by ``***``."""
    for value in secret_values(environ):
        text = text.replace(value, REDACTED)
    return text
