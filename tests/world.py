"""The pinned test world: every date and seed a test builds its data or windows from.

No test reads the wall clock for data. Histories end at fixed past instants (the embedded
Prometheus keeps ten years of retention, so a past date is fine, and the real Prometheus and
nats-server keep the real time whatever date Python is shown), and a test that passes today
passes on every date.
"""

from __future__ import annotations

import pandas as pd

# The shared history (``history_stack``): three days ending on a Monday noon, UTC.
ANCHOR = int(pd.Timestamp("2026-11-16T12:00:00Z").timestamp())
HISTORY_DAYS = 3
HISTORY_SEED = 5

# Where the date-independence test ends a history: different hours of the day, weekdays and
# weekends, month ends. Each is at least four days from the next, so their three-day histories
# can share one Prometheus without overlapping.
ANCHORS = tuple(
    int(pd.Timestamp(text).timestamp())
    for text in (
        "2026-01-31T23:00:00Z",  # Saturday night, a month end
        "2026-02-28T12:00:00Z",  # Saturday noon, a month end
        "2026-03-16T04:00:00Z",  # Monday, early morning
        "2026-05-06T15:00:00Z",  # Wednesday afternoon, the daily peak
        "2026-06-30T18:00:00Z",  # Tuesday evening, a month end
        "2026-08-09T02:00:00Z",  # Sunday night
        "2026-09-18T09:00:00Z",  # Friday morning
        "2026-10-25T21:00:00Z",  # Sunday evening
    )
)
ANCHOR_SEEDS = (11, 12, 13, 14, 15, 16, 17, 18)  # one seed per anchor


def iso(seconds: float) -> str:
    """An instant as ISO 8601 UTC, the form notebook parameters take."""
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()
