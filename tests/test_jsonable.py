import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from obslib.jsonable import jsonable
from obslib.verdict import Verdict


def test_every_kind_a_report_holds_becomes_strict_json():
    value = {
        1: np.int64(3),
        "nan": np.float64("nan"),
        "inf": math.inf,
        "when": pd.Timestamp("2025-01-02T03:04:05", tz="UTC"),
        "never": pd.NaT,
        "verdict": Verdict.INCONCLUSIVE,
        "frame": pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]}),
        "ids": ("x", np.str_("y")),
        "set": {7},
        "path": Path("/tmp/report.html"),
        "nested": [{"ok": np.bool_(True)}],
    }
    out = jsonable(value)
    assert out == {
        "1": 3,
        "nan": None,
        "inf": None,
        "when": "2025-01-02T03:04:05+00:00",
        "never": None,
        "verdict": "inconclusive",
        "frame": [{"a": 1, "b": 0.5}, {"a": 2, "b": None}],
        "ids": ["x", "y"],
        "set": [7],
        "path": "/tmp/report.html",
        "nested": [{"ok": True}],
    }
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert type(out["1"]) is int and type(out["nested"][0]["ok"]) is bool
