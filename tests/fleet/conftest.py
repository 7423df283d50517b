"""Fixtures of the reference-pipeline tests: a real nats-server and the test OTLP collector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from obslib.collector import OtlpCollector
from obslib.fleet import NatsServer
from obslib.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(None)


@pytest.fixture()
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture()
def collector(tmp_path: Path) -> Iterator[OtlpCollector]:
    with OtlpCollector(tmp_path / "collector") as running:
        yield running
