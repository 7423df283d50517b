"""JSON-ready values: what a results file, a snapshot or a summary may hold.

numpy scalars become Python numbers, NaN and infinities ``null`` (JSON has neither, and
Grafana's Go decoder refuses them), times ISO 8601 text, verdicts their value, frames their
records, tuples and sets lists, paths text. Nested mappings and sequences are converted through.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from obslib.verdict import Verdict


def jsonable(value: Any) -> Any:
    """``value`` in a form ``json.dumps(..., allow_nan=False)`` accepts (see the module)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return jsonable(value.to_dict("records"))
    if isinstance(value, Verdict):
        return value.value
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
