"""The Daedalus metric contract, emitted by the reference pipeline on a ``/metrics`` endpoint.

Names, labels, help texts and buckets come from ``catalogue.contract``. The metrics live in a
registry of their own (nothing is registered globally), and every child is created at start:
each ``(agent_type, status)`` counter at 0 and each histogram per agent type, so ratios and
``absent()`` checks see the series before the first task ends.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

from obslib.catalogue.contract import COLD_START, STATUSES, TASK_DURATION, TASKS


class FleetMetrics:
    """Cold-start and task-duration histograms and the task counter, per agent type.

    Use as a context manager (or call :meth:`close`) when :meth:`serve` was called.
    """

    def __init__(self, agent_types: Sequence[str]) -> None:
        self.agent_types = tuple(agent_types)
        self.registry = CollectorRegistry(auto_describe=True)
        self.cold_start = Histogram(
            COLD_START.name,
            COLD_START.help,
            labelnames=COLD_START.labels,
            buckets=COLD_START.buckets,
            registry=self.registry,
        )
        self.tasks = Counter(
            TASKS.name, TASKS.help, labelnames=TASKS.labels, registry=self.registry
        )
        self.task_duration = Histogram(
            TASK_DURATION.name,
            TASK_DURATION.help,
            labelnames=TASK_DURATION.labels,
            buckets=TASK_DURATION.buckets,
            registry=self.registry,
        )
        for agent_type in self.agent_types:
            self.cold_start.labels(agent_type)
            self.task_duration.labels(agent_type)
            for status in STATUSES:
                self.tasks.labels(agent_type, status)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def observe_cold_start(self, agent_type: str, seconds: float) -> None:
        """Record one worker's cold start."""
        self.cold_start.labels(agent_type).observe(seconds)

    def observe_task(self, agent_type: str, status: str, seconds: float) -> None:
        """Record a task that reached a terminal ``status`` after ``seconds``."""
        self.tasks.labels(agent_type, status).inc()
        self.task_duration.labels(agent_type).observe(seconds)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) and return its URL."""
        if self.url is None:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
            self.url = f"http://{host}:{self._server.server_port}/metrics"
        return self.url

    def exposition(self) -> bytes:
        """The current text exposition (what a scrape returns)."""
        return generate_latest(self.registry)

    def write_snapshot(self, path: Path) -> Path:
        """Write the current exposition to ``path`` (via a temporary file and a rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(self.exposition())
        tmp.replace(path)
        return path

    def close(self) -> None:
        """Stop serving (a no-op when not serving)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None
            self.url = None

    def __enter__(self) -> FleetMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
