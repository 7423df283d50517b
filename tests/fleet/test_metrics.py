"""The metric contract on a /metrics endpoint of its own registry."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY

from obslib.catalogue.contract import COLD_START, STATUSES, TASK_DURATION, TASKS
from obslib.fleet import FleetMetrics


def test_every_child_exists_at_zero_before_any_task() -> None:
    agent_types = ("copilot", "claude")
    with FleetMetrics(agent_types) as metrics:
        url = metrics.serve()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
    counters = re.findall(
        rf'^{TASKS.name}\{{agent_type="(\w+)",status="(\w+)"\}} (\S+)$', text, re.M
    )
    assert sorted((a, s) for a, s, _ in counters) == sorted(
        (a, s) for a in agent_types for s in STATUSES
    )
    assert {v for *_, v in counters} == {"0.0"}
    for spec in (COLD_START, TASK_DURATION):
        bounds = re.findall(
            rf'^{spec.name}_bucket\{{agent_type="claude",le="([^"]+)"\}} 0\.0$', text, re.M
        )
        assert bounds == [str(b) for b in spec.buckets] + ["+Inf"]
    # Nothing leaked into the global registry, and the server is gone after close.
    assert (
        REGISTRY.get_sample_value(f"{TASKS.name}", {"agent_type": "claude", "status": "success"})
        is None
    )
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_observations_land_in_their_agent_type() -> None:
    metrics = FleetMetrics(("codex",))
    metrics.observe_task("codex", "failure", 42.0)
    metrics.observe_cold_start("codex", 3.0)
    text = metrics.exposition().decode()
    assert f'{TASKS.name}{{agent_type="codex",status="failure"}} 1.0' in text
    assert f'{TASK_DURATION.name}_bucket{{agent_type="codex",le="30.0"}} 0.0' in text
    assert f'{TASK_DURATION.name}_bucket{{agent_type="codex",le="45.0"}} 1.0' in text
    assert f'{COLD_START.name}_sum{{agent_type="codex"}} 3.0' in text
