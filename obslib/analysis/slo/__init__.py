"""SLO work for Pass 2: what the fleet's latency and errors are, and what to promise from them.

From the metric contract's counters, over a window:

- :mod:`.counts`: per-period event counts from Prometheus (bucket and task-status increases);
- :mod:`.baseline`: p50/p95/p99 and error rates per agent type, each with its uncertainty;
- :mod:`.stability`: the same day by day and week by week, a drift flagged;
- :mod:`.thresholds`: proposed latency thresholds and error-rate objectives;
- :mod:`.proposed_rules`: draft burn-rate and rate-of-change alerts from them;
- :mod:`.alert_replay`: when would an alert have fired over history (``for`` honoured)?
"""

from obslib.analysis.slo.alert_replay import replay_alert, replay_alerts
from obslib.analysis.slo.baseline import latency_baseline, summarise, summary_columns
from obslib.analysis.slo.counts import bucket_counts, task_counts
from obslib.analysis.slo.proposed_rules import render_proposed_rules, write_proposed_rules
from obslib.analysis.slo.stability import stability, stability_from_counts
from obslib.analysis.slo.thresholds import propose_thresholds

__all__ = [
    "bucket_counts",
    "latency_baseline",
    "propose_thresholds",
    "render_proposed_rules",
    "replay_alert",
    "replay_alerts",
    "stability",
    "stability_from_counts",
    "summarise",
    "summary_columns",
    "task_counts",
    "write_proposed_rules",
]
