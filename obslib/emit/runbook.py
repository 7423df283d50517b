"""Render ``runbooks/runbook.md``: one section per alert, its heading the alert's anchor."""

from __future__ import annotations

from urllib.parse import urlencode

from obslib.catalogue import Catalogue
from obslib.catalogue.alerts import SEVERITIES, AlertSpec
from obslib.catalogue.runbook import RunbookEntry
from obslib.files import GENERATED_NOTE
from obslib.settings import RECEIVER_DEFAULTS


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lowercase, spaces to '-', punctuation dropped)."""
    text = heading.strip().lower()
    return "".join(ch for ch in text.replace(" ", "-") if ch.isalnum() or ch in "-_")


def ticket_url(c: Catalogue, alert: AlertSpec) -> str:
    """New-issue link with the alert's name as title and its anchor as label."""
    query = urlencode(
        {"title": f"{alert.name}: <what broke>", "labels": f"observability,{alert.anchor}"}
    )
    return f"{c.settings.ticket_url}?{query}"


def _section(c: Catalogue, alert: AlertSpec, entry: RunbookEntry) -> list[str]:
    panel = c.panel(entry.panel)
    waits = f"for {alert.for_}" if alert.for_ else "on the first matching evaluation"
    lines = [
        f"## {alert.anchor}",
        "",
        f"**Alert:** `{alert.name}` · severity `{alert.severity}` · fires {waits} · "
        f"component `{alert.component}`",
        "",
        f"**Means:** {entry.means}",
        "",
        "**Reproduce in test cluster:**",
        "",
        "```sh",
        *entry.reproduce,
        "```",
        "",
        "**Diagnose:**",
        "",
        f"- Dashboard panel **{panel.title}** on **Daedalus fleet overview**, then on "
        "**Daedalus agent: <agent_type>** for the agent type in the alert.",
        f"- Loki (LogQL): `{entry.logql}`",
        f"- Tempo (TraceQL): `{entry.traceql}`",
        "- Commands:",
        "",
        "  ```sh",
        *(f"  {cmd}" for cmd in entry.checks),
        "  ```",
        "",
        "**Mitigate:**",
        "",
        *(f"- {step}" for step in entry.mitigate),
        f"- Ticket the fix: [open an issue]({ticket_url(c, alert)})",
        "",
        "**Rule:**",
        "",
        "```promql",
        alert.expr,
        "```",
        "",
    ]
    if entry.notes:
        lines += [f"**Note:** {entry.notes}", ""]
    if alert.deviation:
        lines += [
            f"**Differs from the spec:** {alert.deviation}",
            "",
            f"The spec's expression was `{alert.spec_expr}`.",
            "",
        ]
    return lines


def _receiver_section(c: Catalogue) -> list[str]:
    ns = c.settings.namespace
    lines = [
        "## switching-the-alert-receiver",
        "",
        "Every alert goes to a `null` receiver by default: Alertmanager keeps it, nobody is "
        "notified. Choosing the on-call channel is a product decision; when it is made, switch "
        "with three lines of values and one Secret, then run `make generate` and apply "
        "`rules/alertmanagerconfig.yaml`:",
        "",
        "```yaml",
        "alerting:",
        "  receiver:",
        "    type: pagerduty   # or mattermost, github",
        "```",
        "",
        "| type | AlertmanagerConfig receiver | Secret to create (defaults; override in `alerting.receiver.config`) |",
        "|---|---|---|",
    ]
    kinds = {
        "mattermost": "slackConfigs (Mattermost accepts Slack-format webhooks)",
        "github": "webhookConfigs to a relay that opens GitHub issues",
        "pagerduty": "pagerdutyConfigs (Events API v2 routing key)",
    }
    for rtype, desc in kinds.items():
        d = RECEIVER_DEFAULTS[rtype]
        lines.append(
            f"| `{rtype}` | {desc} | `kubectl -n {ns} create secret generic {d['secretName']} "
            f"--from-literal={d['secretKey']}=<value>` |"
        )
    lines += [
        "",
        "Any other type is rejected with the list of allowed ones. Mattermost's optional "
        "`config.channel` overrides the webhook's default channel.",
        "",
    ]
    return lines


def render_runbook(c: Catalogue) -> str:
    """The whole runbook as Markdown."""
    entries = {e.alert: e for e in c.runbook}
    lines = [
        f"<!-- {GENERATED_NOTE} -->",
        "# Daedalus alert runbook",
        "",
        "One section per alert; the alert's `runbook_url` ends in the section's anchor. Each "
        "section says what the alert means, how to reproduce it in a test cluster, how to "
        "diagnose it (dashboard panel, Loki and Tempo queries, commands) and how to mitigate it.",
        "",
        "Severities: " + "; ".join(f"`{k}`: {v}" for k, v in SEVERITIES.items()) + ".",
        "",
        "| Alert | Severity | Section |",
        "|---|---|---|",
        *(f"| `{a.name}` | {a.severity} | [{a.anchor}](#{a.anchor}) |" for a in c.alerts),
        "",
    ]
    for alert in c.alerts:
        lines += _section(c, alert, entries[alert.name])
    lines += _receiver_section(c)
    return "\n".join(lines).rstrip("\n") + "\n"
