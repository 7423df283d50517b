"""Runbook completeness: the committed runbook passes, and each kind of gap is reported."""

from __future__ import annotations

import re

import pytest

from obslib.analysis.crosscheck.runbook import (
    PARTS,
    check_runbook,
    looks_like_logql,
    looks_like_traceql,
    sections,
)
from obslib.emit import RUNBOOK_FILE


@pytest.fixture(scope="module")
def committed(repo):
    return (repo / RUNBOOK_FILE).read_text()


def section_of(text, anchor):
    """(start, end) offsets of the section whose heading is ``anchor``."""
    match = re.search(rf"^## {re.escape(anchor)}\n", text, re.M)
    following = re.search(r"^## ", text[match.end() :], re.M)
    return match.start(), match.end() + following.start() if following else len(text)


def edit_section(text, anchor, old, new):
    start, end = section_of(text, anchor)
    body = text[start:end]
    assert old in body, f"{old!r} not in {anchor}"
    return text[:start] + body.replace(old, new, 1) + text[end:]


def row(frame, alert):
    rows = frame[frame.alert == alert]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_committed_runbook_is_complete(committed, catalogue):
    report = check_runbook(committed, catalogue)
    assert list(report.alert) == [a.name for a in catalogue.alerts]
    assert report.complete.all(), report.loc[~report.complete, ["alert", "missing"]]
    assert report.section.all()
    titles = {p.title for p in catalogue.panels}
    assert set(report.panel) <= titles
    assert report.ticket.str.startswith(catalogue.settings.ticket_url).all()


def test_a_missing_section_is_reported_with_every_part(committed, catalogue):
    start, end = section_of(committed, "orchestrator-down")
    report = check_runbook(committed[:start] + committed[end:], catalogue)
    orchestrator = row(report, "OrchestratorDown")
    assert not orchestrator.section and not orchestrator.complete
    assert orchestrator.missing == ["section", *PARTS]
    assert report.drop(index=orchestrator.name).complete.all()


def test_a_missing_traceql_query_is_reported(committed, catalogue):
    start, end = section_of(committed, "nats-consumer-lag")
    body = committed[start:end]
    broken = committed[:start] + re.sub(r"^- Tempo \(TraceQL\): .*\n", "", body, flags=re.M)
    broken += committed[end:]
    assert broken != committed
    report = check_runbook(broken, catalogue)
    assert row(report, "NATSConsumerLagUnbounded").missing == ["traceql"]
    assert report[report.alert != "NATSConsumerLagUnbounded"].complete.all()


def test_a_panel_title_that_does_not_exist_is_reported(committed, catalogue):
    broken = edit_section(
        committed, "nats-stream-unhealthy", "**Queue depth**", "**Queue backlog**"
    )
    missing = row(check_runbook(broken, catalogue), "NATSStreamUnhealthy").missing
    assert missing == ["panel 'Queue backlog' does not exist"]


def test_queries_that_are_not_queries_and_a_missing_ticket_link(committed, catalogue):
    broken = edit_section(
        committed,
        "keda-scaler-error",
        'Loki (LogQL): `{container="keda-operator"}',
        "Loki (LogQL): `keda-operator",
    )
    broken = edit_section(
        broken,
        "keda-scaler-error",
        "- Ticket the fix: [open an issue]",
        "- Ticket the fix: open an issue",
    )
    missing = row(check_runbook(broken, catalogue), "KEDAScalerError").missing
    assert len(missing) == 2
    assert missing[0].startswith("logql ") and missing[1] == "ticket"


def test_empty_reproduce_and_means_are_reported(committed, catalogue):
    start, end = section_of(committed, "otel-collector-down")
    body = committed[start:end]
    body = re.sub(r"\*\*Means:\*\* .*", "**Means:**", body)
    body = re.sub(
        r"(\*\*Reproduce in test cluster:\*\*\n\n```sh\n)(.*?)(```)", r"\1\3", body, flags=re.S
    )
    report = check_runbook(committed[:start] + body + committed[end:], catalogue)
    assert row(report, "OTelCollectorDown").missing == ["means", "reproduce"]


def test_a_section_without_an_alert_is_reported_and_prose_sections_are_not(committed, catalogue):
    start, end = section_of(committed, "orchestrator-down")
    orphan = committed[start:end].replace("## orchestrator-down", "## orchestrator-gone")
    orphan = orphan.replace("`OrchestratorDown`", "`OrchestratorGone`", 1)
    report = check_runbook(committed + "\n" + orphan, catalogue)
    extra = report[report.anchor == "orchestrator-gone"].iloc[0]
    assert extra.alert == "" and not extra.complete
    assert extra.missing == ["alert: no alert has the anchor 'orchestrator-gone'"]
    # "switching-the-alert-receiver" has neither an **Alert:** line nor **Means:**: not checked.
    assert "switching-the-alert-receiver" in {h for h, _ in sections(committed)}
    assert "switching-the-alert-receiver" not in set(report.anchor)


def test_a_section_naming_another_alert_is_reported(committed, catalogue):
    broken = edit_section(
        committed, "worker-crashloop", "`WorkerCrashLoopBackOff`", "`WorkerImagePullBackOff`"
    )
    missing = row(check_runbook(broken, catalogue), "WorkerCrashLoopBackOff").missing
    assert missing == ["section names alert 'WorkerImagePullBackOff'"]


@pytest.mark.parametrize(
    ("query", "logql", "traceql"),
    [
        ('{namespace="daedalus"} |= "x"', True, False),
        ('{namespace="daedalus", container=~"a|b"} | json', True, False),
        ('{ name = "nats.publish" && span.a = "b" }', False, True),
        ("{ status = error && duration > 2s }", False, True),
        ('{namespace="daedalus"', False, False),
        ("{ }", False, False),
        ('{namespace="dae}dalus"} |~ "a|b"', True, False),
        ("namespace=daedalus", False, False),
    ],
)
def test_query_shapes(query, logql, traceql):
    assert looks_like_logql(query) is logql
    assert looks_like_traceql(query) is traceql
