"""Replay alert expressions over history, honouring ``for``: when would each alert have fired?

Prometheus evaluates a rule every interval; a label set that keeps matching becomes pending,
then fires once it has matched for the rule's ``for`` duration, and resolves at the first
evaluation where it no longer matches. Replaying the expression as a range query with the
evaluation interval as step gives the same answer for history Prometheus never evaluated
(backfilled data, or a rule written after the fact). pint's ``alerts/count`` check does this.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from obslib.catalogue.alerts import AlertSpec
from obslib.sources.frames import PROMETHEUS_COLUMNS
from obslib.sources.prometheus import RangeSource

# One row per episode: a label set matching on consecutive evaluations.
EPISODE_COLUMNS: dict[str, str] = {
    "alert": "str",
    "series": "str",  # the episode's labels as PromQL text (without __name__)
    "labels": "object",  # dict of the expression's output labels
    "pending_at": "datetime64[ns, UTC]",  # first evaluation that matched
    "firing_at": "datetime64[ns, UTC]",  # NaT when it resolved before its `for` passed
    "resolved_at": "datetime64[ns, UTC]",  # first evaluation that no longer matched
    "fired": "bool",
}
_EPOCH = pd.Timestamp(0, tz="UTC")


def _labels(frame: pd.DataFrame) -> pd.Series:
    label_columns = [c for c in frame.columns if c not in PROMETHEUS_COLUMNS and c != "__name__"]
    records = frame[label_columns].to_dict("records")
    return pd.Series([{k: v for k, v in r.items() if v} for r in records], index=frame.index)


def episodes(samples: pd.DataFrame, alert: str, for_s: int, step_s: int) -> pd.DataFrame:
    """Episodes of one alert from its expression's range-query samples (vectorised)."""
    if samples.empty:
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in EPISODE_COLUMNS.items()})
    labels = _labels(samples)
    key = labels.map(lambda d: "{" + ",".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}")
    frame = pd.DataFrame(
        {
            "series": key,
            "t": (samples["timestamp"] - _EPOCH) // pd.Timedelta(seconds=1),
            "labels": labels,
        }
    )
    frame = frame.drop_duplicates(["series", "t"]).sort_values(["series", "t"], kind="stable")
    t = frame["t"].to_numpy()
    same = frame["series"].to_numpy()[1:] == frame["series"].to_numpy()[:-1]
    starts_run = np.concatenate([[True], ~(same & (np.diff(t) <= step_s))])
    run = np.cumsum(starts_run)
    grouped = frame.assign(run=run).groupby("run", sort=False)
    out = grouped.agg(
        series=("series", "first"),
        labels=("labels", "first"),
        first=("t", "min"),
        last=("t", "max"),
    )
    # Firing needs an evaluation at least `for` after the first match, while still matching.
    fired = out["last"] - out["first"] >= for_s
    firing = out["first"] + int(np.ceil(for_s / step_s)) * step_s
    out = out.reset_index(drop=True)
    fired, firing = fired.reset_index(drop=True), firing.reset_index(drop=True)
    return pd.DataFrame(
        {
            "alert": alert,
            "series": out["series"],
            "labels": out["labels"],
            "pending_at": pd.to_datetime(out["first"], unit="s", utc=True),
            "firing_at": pd.to_datetime(firing.where(fired), unit="s", utc=True),
            "resolved_at": pd.to_datetime(out["last"] + step_s, unit="s", utc=True),
            "fired": fired,
        }
    ).astype({"series": "str", "fired": "bool"})


def replay_alert(
    source: RangeSource, alert: AlertSpec, start: object, end: object, step_s: int = 60
) -> pd.DataFrame:
    """Episodes of ``alert`` between ``start`` and ``end`` (EPISODE_COLUMNS)."""
    samples = source.query_range(alert.expr, start, end, step_s)
    return episodes(samples, alert.name, alert.for_s, step_s)


def replay_alerts(
    source: RangeSource, alerts: Iterable[AlertSpec], start: object, end: object, step_s: int = 60
) -> pd.DataFrame:
    """Episodes of every alert; ``fired`` rows are the notifications on-call would have had."""
    frames = [replay_alert(source, a, start, end, step_s) for a in alerts]
    return (
        pd.concat(frames, ignore_index=True) if frames else episodes(pd.DataFrame(), "", 0, step_s)
    )
