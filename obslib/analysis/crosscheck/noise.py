"""Alert noise: how often each alert of the catalogue would have fired over a window.

Replays every alert's expression at its evaluation interval, honouring ``for``
(:mod:`obslib.analysis.slo.alert_replay`, pint's ``alerts/count``).
"""

from __future__ import annotations

import pandas as pd

from obslib.analysis.slo.alert_replay import replay_alerts
from obslib.catalogue import Catalogue
from obslib.sources.frames import conform
from obslib.sources.prometheus import PrometheusSource, TimeLike

NOISE_COLUMNS: dict[str, str] = {
    "alert": "str",
    "severity": "str",
    "for_s": "int64",
    "episodes": "int64",  # label sets matching on consecutive evaluations (pending or firing)
    "fired": "int64",  # episodes that outlasted `for`: notifications on-call would have had
    "label_sets": "int64",  # distinct label sets among the fired episodes
    "firing_s": "float64",  # total time firing
    "longest_s": "float64",  # the longest firing episode
    "first_fired": "datetime64[ns, UTC]",
    "last_fired": "datetime64[ns, UTC]",
}


def alert_noise(
    source: PrometheusSource,
    catalogue: Catalogue,
    start: TimeLike,
    end: TimeLike,
    step_s: int = 60,
) -> pd.DataFrame:
    """How often each alert would have fired over the window, honouring ``for`` (``NOISE_COLUMNS``).

    The replay evaluates every alert's expression at ``step_s`` intervals (pint's
    ``alerts/count``); one row per alert of the catalogue, silent ones included.
    """
    episodes = replay_alerts(source, catalogue.alerts, start, end, step_s)
    fired = episodes[episodes["fired"]]
    firing = (fired["resolved_at"] - fired["firing_at"]).dt.total_seconds()
    rows = []
    for alert in catalogue.alerts:
        mine = fired["alert"] == alert.name
        rows.append(
            {
                "alert": alert.name,
                "severity": alert.severity,
                "for_s": alert.for_s,
                "episodes": int((episodes["alert"] == alert.name).sum()),
                "fired": int(mine.sum()),
                "label_sets": int(fired.loc[mine, "series"].nunique()),
                "firing_s": float(firing[mine].sum()),
                "longest_s": float(firing[mine].max()) if mine.any() else 0.0,
                "first_fired": fired.loc[mine, "firing_at"].min(),
                "last_fired": fired.loc[mine, "firing_at"].max(),
            }
        )
    return conform(pd.DataFrame(rows, columns=list(NOISE_COLUMNS)), NOISE_COLUMNS)
