"""GrafanaSource snapshots against a fake Grafana; panel data embedded from the real Prometheus."""

from __future__ import annotations

import json
import math
import socket

import pandas as pd
import pytest
import requests

from obslib.emit.dashboards import render_dashboard
from obslib.errors import BackendUnavailable, ConfigError, MalformedResponse, QueryRejected
from obslib.promql import interpolate
from obslib.sources.endpoint import endpoint_from_env
from obslib.sources.grafana import (
    GrafanaSource,
    Snapshot,
    embed_panel_data,
    embedded_frames,
    iso_utc,
    series_frames,
    snapshot_model,
)
from obslib.sources.http import HttpClient
from obslib.sources.prometheus_frames import frame_from_result
from tests.fakes.grafana import FakeGrafana
from tests.fakes.http_server import FakeServer, Reply

TOKEN = "glsa_tok-5d1e07-never-print-me"
START, END = 1_700_000_000, 1_700_003_600


def make_source(url: str, token: str = TOKEN, retries: int = 0) -> GrafanaSource:
    env = {"OBSLIB_GRAFANA_URL": url, "OBSLIB_GRAFANA_TOKEN": token}
    client = HttpClient(endpoint_from_env("grafana", environ=env), retries=retries, backoff_s=0)
    return GrafanaSource(client=client)


@pytest.fixture
def grafana():
    with FakeGrafana(token=TOKEN) as fake:
        yield fake


@pytest.fixture(scope="module")
def live_window(history_stack):
    """Six hours of the synthetic history, away from its start."""
    _, truth = history_stack
    start = truth.start + 6 * 3600
    return start, start + 6 * 3600


def test_snapshot_is_posted_with_the_window_and_the_token(grafana, catalogue):
    model = render_dashboard(catalogue)
    snapshot = make_source(grafana.url).create_snapshot(model, START, END, 3600, "AC5 run")
    (request,) = grafana.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body["name"] == "AC5 run" and body["expires"] == 3600
    posted = body["dashboard"]
    assert posted["time"] == {"from": "2023-11-14T22:13:20.000Z", "to": "2023-11-14T23:13:20.000Z"}
    assert posted["title"] == "AC5 run" and posted["uid"] == model["uid"]
    assert [p["title"] for p in posted["panels"]] == [p["title"] for p in model["panels"]]
    # A snapshot runs no query: Grafana's share dialog strips them the same way.
    assert all(p["targets"] == [] and p["datasource"] is None for p in posted["panels"])
    assert all(v["query"] == "" for v in posted["templating"]["list"])
    assert snapshot == Snapshot(
        f"{grafana.url}/dashboard/snapshot/{snapshot.key}",
        snapshot.key,
        f"{grafana.url}/api/snapshots-delete/snap0001delete",
    )
    stored = requests.get(
        f"{grafana.url}/api/snapshots/{snapshot.key}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    ).json()
    assert stored["meta"]["isSnapshot"] and stored["dashboard"] == posted
    assert "snapshots-delete" not in repr(snapshot)
    assert model["time"] == {"from": "now-24h", "to": "now"}  # the caller's model is untouched


def test_snapshot_model_pins_the_time_range_and_keeps_embedded_data(catalogue):
    model = render_dashboard(catalogue)
    gaps = {"refId": "A", "fields": [{"name": "Value", "type": "number", "values": [None]}]}
    seen = {"refId": "B", "fields": [{"name": "Value", "type": "number", "values": [None, 0.0]}]}
    model["panels"][0]["snapshotData"] = [gaps, seen]
    out = snapshot_model(model, START, END)
    assert out["time"] == {"from": iso_utc(START), "to": iso_utc(END)}
    assert out["title"] == model["title"] and out["refresh"] == "" and out["links"] == []
    assert out["panels"][0]["snapshotData"] == [gaps, seen]
    assert all(p["snapshotData"] == [] for p in out["panels"][1:])
    # Only frames with a value count as data: an all-gap series shows nothing.
    counts = embedded_frames(out)
    assert counts[model["panels"][0]["title"]] == 1 and sum(counts.values()) == 1
    agent = next(v for v in out["templating"]["list"] if v["name"] == "agent_type")
    assert agent["options"] == [agent["current"]] and agent["current"]["value"] == list(
        catalogue.settings.agent_types
    )


def test_series_frames_are_grafana_frames_without_nan():
    result = [
        {
            "metric": {"agent_type": "claude", "le": "+Inf"},
            "values": [[START, "1.5"], [START + 60, "NaN"], [START + 120, "+Inf"]],
        },
        {"metric": {"agent_type": "codex"}, "values": [[START, "2"]]},
    ]
    frames = series_frames(frame_from_result(result), "C", "{{agent_type}} p99", 60)
    assert [f["name"] for f in frames] == ["claude p99", "codex p99"]
    time, value = frames[0]["fields"]
    assert time == {
        "name": "Time",
        "type": "time",
        "config": {"interval": 60_000},
        "values": [START * 1000, (START + 60) * 1000, (START + 120) * 1000],
    }
    assert value["values"] == [1.5, None, None]
    assert value["labels"] == {"agent_type": "claude", "le": "+Inf"}
    assert value["config"]["displayNameFromDS"] == "claude p99"
    assert all(f["refId"] == "C" for f in frames)
    json.dumps(frames, allow_nan=False)


def test_every_prometheus_panel_gets_the_data_of_its_queries(history_stack, catalogue, live_window):
    source, truth = history_stack
    start, end = live_window
    model = render_dashboard(catalogue)
    embedded = embed_panel_data(model, source, start, end)
    counts = embedded_frames(embedded)
    for panel in embedded["panels"]:
        if panel["datasource"]["type"] != "prometheus":
            assert counts[panel["title"]] == 0  # the Tempo table has nothing to embed
            continue
        assert counts[panel["title"]] > 0, panel["title"]
        assert {f["refId"] for f in panel["snapshotData"]} <= {t["refId"] for t in panel["targets"]}
        for frame in panel["snapshotData"]:
            times = frame["fields"][0]["values"]
            assert start * 1000 <= min(times) and max(times) <= end * 1000
    cold = next(p for p in embedded["panels"] if p["title"] == catalogue.panel("cold-start").title)
    p99 = [f for f in cold["snapshotData"] if f["refId"] == "C"]
    assert {f["fields"][1]["labels"]["agent_type"] for f in p99} == set(truth.agent_types)
    # The embedded values are what Prometheus answers for the panel's query at that instant.
    step_s = p99[0]["fields"][0]["config"]["interval"] / 1000
    expr = interpolate(
        cold["targets"][2]["expr"],
        {"agent_type": list(truth.agent_types), "__rate_interval": f"{max(300, 2 * step_s):g}s"},
    )
    times, values = (f["values"] for f in p99[0]["fields"])
    at = max(t for t, v in zip(times, values, strict=True) if v is not None) / 1000
    direct = source.query(expr, at=at).set_index("agent_type")["value"]
    embedded_at = {}
    for frame in p99:
        time, value = frame["fields"]
        if at * 1000 in time["values"]:
            embedded_at[value["labels"]["agent_type"]] = value["values"][
                time["values"].index(at * 1000)
            ]
    expected = {k: None if math.isnan(v) else pytest.approx(v) for k, v in direct.items()}
    assert embedded_at[p99[0]["fields"][1]["labels"]["agent_type"]] is not None
    assert embedded_at == expected
    assert model.get("panels")[0].get("snapshotData") is None  # embedding copies the model


def test_embedded_snapshot_reaches_grafana_as_strict_json(
    grafana, history_stack, catalogue, live_window
):
    source, _ = history_stack
    start, end = live_window
    model = embed_panel_data(render_dashboard(catalogue), source, start, end)
    snapshot = make_source(grafana.url).create_snapshot(model, start, end)
    stored = grafana.snapshots[snapshot.key]["dashboard"]
    assert embedded_frames(stored) == embedded_frames(model)
    assert stored["time"] == {"from": iso_utc(start), "to": iso_utc(end)}


@pytest.mark.parametrize(
    ("refuse", "error", "words"),
    [
        (
            (400, "Dashboard title cannot be empty"),
            QueryRejected,
            "Dashboard title cannot be empty",
        ),
        ((422, "expires must be positive"), QueryRejected, "expires must be positive"),
        ((403, "Permission denied"), BackendUnavailable, "OBSLIB_GRAFANA_TOKEN"),
        ((500, "Failed to create snapshot"), BackendUnavailable, "Failed to create snapshot"),
    ],
)
def test_grafana_refusals_map_to_obslib_errors(catalogue, refuse, error, words):
    with FakeGrafana(token=TOKEN, refuse=refuse) as fake, pytest.raises(error) as caught:
        make_source(fake.url).create_snapshot(render_dashboard(catalogue), START, END)
    text = str(caught.value)
    assert words in text and '{"message"' not in text
    assert caught.value.backend == "grafana" and caught.value.url == f"{fake.url}/api/snapshots"
    assert TOKEN not in text and TOKEN not in repr(caught.value)


def test_a_wrong_token_names_the_variable_and_never_the_token(grafana, catalogue):
    wrong = "glsa_wrong-token-0000"
    with pytest.raises(BackendUnavailable, match="OBSLIB_GRAFANA_TOKEN") as caught:
        make_source(grafana.url, token=wrong).create_snapshot(render_dashboard(catalogue), 0, 60)
    assert "401" in str(caught.value) and wrong not in str(caught.value)
    assert grafana.snapshots == {}


def test_unavailable_grafana_is_retried_then_reported(catalogue):
    busy = FakeServer(lambda r: Reply(503, "upstream overloaded", "text/plain"))
    with busy as fake, pytest.raises(BackendUnavailable, match="after 2 attempts") as caught:
        make_source(fake.url, retries=1).create_snapshot(render_dashboard(catalogue), 0, 60)
    assert len(fake.requests) == 2 and "upstream overloaded" in str(caught.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        make_source(closed).create_snapshot(render_dashboard(catalogue), 0, 60)


def test_an_answer_without_url_is_malformed(catalogue):
    odd = FakeServer(lambda r: Reply(200, json.dumps({"message": "ok", "id": 3})))
    with odd as fake, pytest.raises(MalformedResponse, match="no url and key"):
        make_source(fake.url).create_snapshot(render_dashboard(catalogue), 0, 60)


def test_endpoint_and_token_come_from_the_environment(grafana, catalogue, monkeypatch):
    monkeypatch.delenv("OBSLIB_GRAFANA_URL", raising=False)
    with pytest.raises(ConfigError, match="OBSLIB_GRAFANA_URL"):
        GrafanaSource()
    monkeypatch.setenv("OBSLIB_GRAFANA_URL", grafana.url)
    monkeypatch.setenv("OBSLIB_GRAFANA_TOKEN", TOKEN)
    source = GrafanaSource()
    assert repr(source) == f"GrafanaSource(url={grafana.url!r})" and TOKEN not in repr(source)
    assert TOKEN not in repr(source.endpoint)
    snapshot = source.create_snapshot(render_dashboard(catalogue), START, END, expires_s=0)
    assert (
        json.loads(grafana.requests[0].body)["expires"] == 0 and snapshot.key in grafana.snapshots
    )
    with pytest.raises(ValueError, match="expires_s"):
        source.create_snapshot(render_dashboard(catalogue), START, END, expires_s=-1)


def test_iso_utc_reads_datetimes_and_seconds():
    stamp = pd.Timestamp(START, unit="s", tz="UTC").to_pydatetime()
    assert iso_utc(stamp) == iso_utc(START) == "2023-11-14T22:13:20.000Z"
    assert iso_utc(START + 0.25) == "2023-11-14T22:13:20.250Z"
