"""The seven structural alerts of Pass 1, as the spec's corrected table defines them.

Expressions follow the spec after its Pass-1 findings 1-5 and Cross-check 2 (CC2-1..CC2-6 and
the in-loop follow-up). Where an alert still differs from the spec, the reason is a failure the
spec's form would cause; it is recorded in ``deviation`` and printed in the runbook.

Severities (defined once, here):
    page: the platform cannot take or run tasks now; someone is woken up.
    warn: tasks are at risk but still flow; look during working hours.

Names are ``<Component><Symptom>``; the runbook anchor is fixed by the spec's table.
"""

from __future__ import annotations

from dataclasses import dataclass

from obslib.durations import seconds
from obslib.settings import Settings

SEVERITIES = {
    "page": "the platform cannot take or run tasks now; someone is woken up",
    "warn": "tasks are at risk but still flow; look during working hours",
}

# KEDA renamed its per-scaler error counter in 2.14 and removed the old names in 2.17.
KEDA_DETAIL_ERRORS_SINCE = (2, 14)


@dataclass(frozen=True)
class AlertSpec:
    """One alerting rule and what on-call needs to know about it."""

    name: str
    group: str
    component: str  # static `daedalus_component` label
    expr: str
    severity: str
    anchor: str  # runbook section; runbook_url ends in '#<anchor>'
    summary: str
    description: str
    for_: str = ""  # '' fires on the first evaluation that matches
    spec_expr: str = ""  # the spec's corrected expression where ours differs
    deviation: str = ""  # why ours differs

    @property
    def for_s(self) -> int:
        """Seconds the expression must keep matching before the alert fires (0 without ``for``)."""
        return round(seconds(self.for_)) if self.for_ else 0


def absent_or_zero(selector: str) -> str:
    """Fire when ``selector`` has no series at all, or its value is 0 (spec finding 4, CC2-4)."""
    return f"absent({selector}) or {selector} == 0"


def keda_scaler_errors_metric(version: tuple[int, int]) -> str:
    """Per-scaler error counter of this KEDA version (the label-less total carries no scope)."""
    return (
        "keda_scaler_detail_errors_total"
        if version >= KEDA_DETAIL_ERRORS_SINCE
        else "keda_scaler_errors"
    )


def alert_specs(s: Settings) -> tuple[AlertSpec, ...]:
    """The seven Pass-1 alerts for one release."""
    ns = s.namespace
    workers = f'namespace="{ns}", pod=~"{s.worker_pod_regex}"'
    stream = f'stream="{s.nats_stream}"'
    pending = f"nats_consumer_num_pending{{{stream}}}"
    orchestrator = (
        f'kube_deployment_status_replicas_available{{namespace="{ns}", '
        f'deployment="{s.orchestrator_deployment}"}}'
    )
    otel_up = f'up{{job="{s.otel_collector_job}"}}'
    keda_metric = keda_scaler_errors_metric(s.keda_version)
    keda_ns = s.keda_namespace_label
    keda_object = "{{ $labels.type }} " if s.keda_version >= (2, 13) else ""
    worker_scope = (
        "Adds a namespace matcher to the spec's pod pattern: the alert carries a static "
        f'namespace="{ns}" label, so a worker pod of the same name in another namespace would '
        "otherwise page this release under this release's name."
    )
    return (
        AlertSpec(
            name="WorkerImagePullBackOff",
            group="daedalus-workers",
            component="worker",
            expr=(
                "max by (namespace, pod, container) (kube_pod_container_status_waiting_reason{"
                f'{workers}, reason=~"ErrImagePull|ImagePullBackOff"}}) > 0'
            ),
            for_="2m",
            severity="page",
            anchor="worker-image-pull-backoff",
            summary="A Daedalus worker cannot pull its container image.",
            description=(
                "Container {{ $labels.container }} of worker pod {{ $labels.pod }} has been "
                "waiting on its image (ErrImagePull/ImagePullBackOff) for 2 minutes; tasks for "
                "its agent type are not running."
            ),
            spec_expr=(
                'kube_pod_container_status_waiting_reason{reason="ImagePullBackOff", '
                f'pod=~"{s.worker_pod_regex}"}} > 0'
            ),
            deviation=(
                "Kubelet alternates the waiting reason between ErrImagePull (while pulling) and "
                "ImagePullBackOff (while backing off). Each reason is its own series, so a scrape "
                "that catches ErrImagePull resets the spec's `for: 2m` and can miss the "
                "3-minute acceptance target. Both reasons count, taken as one series per "
                "container. " + worker_scope
            ),
        ),
        AlertSpec(
            name="WorkerCrashLoopBackOff",
            group="daedalus-workers",
            component="worker",
            expr=f"rate(kube_pod_container_status_restarts_total{{{workers}}}[10m]) > 0",
            for_="10m",
            severity="page",
            anchor="worker-crashloop",
            summary="A Daedalus worker container keeps restarting.",
            description=(
                "Container {{ $labels.container }} of worker pod {{ $labels.pod }} has restarted "
                "in every 10-minute window for 10 minutes (crash loop); its tasks fail or stall."
            ),
            spec_expr=(
                f'rate(kube_pod_container_status_restarts_total{{pod=~"{s.worker_pod_regex}"}}[10m]) > 0'
            ),
            deviation=worker_scope,
        ),
        AlertSpec(
            name="NATSConsumerLagUnbounded",
            group="daedalus-nats",
            component="nats",
            expr=f"delta({pending}[10m]) > 0 and {pending} > 100",
            severity="page",
            anchor="nats-consumer-lag",
            summary="Tasks are piling up on a Daedalus task consumer.",
            description=(
                "Consumer {{ $labels.consumer_name }} on stream {{ $labels.stream }} has more than "
                "100 pending messages and its backlog grew by {{ $value | humanize }} in the last "
                "10 minutes: workers are not keeping up or not consuming."
            ),
        ),
        AlertSpec(
            name="KEDAScalerError",
            group="daedalus-control-plane",
            component="keda",
            expr=f'rate({keda_metric}{{{keda_ns}="{ns}"}}[5m]) > 0',
            severity="page",
            anchor="keda-scaler-error",
            summary="KEDA cannot read the scaler of a Daedalus worker.",
            description=(
                "KEDA scaler {{ $labels.scaler }} of " + keda_object + "{{ $labels.scaledObject }} "
                "in namespace {{ $labels." + keda_ns + " }} is returning errors: workers for its "
                "agent type are not being scaled."
            ),
            spec_expr=f'rate(keda_scaler_errors_total{{namespace="{ns}"}}[5m]) > 0',
            deviation=(
                "keda_scaler_errors_total carries no labels, so a namespace matcher only ever "
                "sees the KEDA operator's own scrape namespace: the spec's rule never fires for "
                "this release. It is deprecated in KEDA 2.14 and gone in 2.17. The rule reads the "
                f"per-scaler counter of KEDA {s.keda_version_text} ({keda_metric}), scoped on "
                f"`{keda_ns}`, the label that carries the ScaledObject's/ScaledJob's namespace "
                "under the KEDA chart's ServiceMonitor (honorLabels off renames KEDA's own "
                "`namespace`). A ScaledJob's name arrives in the `scaledObject` label."
            ),
        ),
        AlertSpec(
            name="OTelCollectorDown",
            group="daedalus-control-plane",
            component="otel-collector",
            expr=absent_or_zero(otel_up),
            for_="5m",
            severity="page",
            anchor="otel-collector-down",
            summary="The OpenTelemetry collector is down or not scraped.",
            description=(
                f'The scrape target job="{s.otel_collector_job}" is down or missing for 5 '
                "minutes: traces, metrics and logs from Daedalus are being lost."
            ),
        ),
        AlertSpec(
            name="OrchestratorDown",
            group="daedalus-control-plane",
            component="orchestrator",
            expr=absent_or_zero(orchestrator),
            for_="2m",
            severity="page",
            anchor="orchestrator-down",
            summary="The Daedalus orchestrator has no available replica.",
            description=(
                f"Deployment {s.orchestrator_deployment} in namespace {ns} has had no available "
                "replica (or does not exist) for 2 minutes: no task is dispatched and no result "
                "is collected."
            ),
        ),
        AlertSpec(
            name="NATSStreamUnhealthy",
            group="daedalus-nats",
            component="nats",
            expr=(
                f"nats_stream_consumer_count{{{stream}}} == 0 "
                f"and nats_stream_total_messages{{{stream}}} > 0"
            ),
            for_="10m",
            severity="warn",
            anchor="nats-stream-unhealthy",
            summary="The Daedalus task stream holds messages but has no consumer.",
            description=(
                "Stream {{ $labels.stream }} (account {{ $labels.account_name }}) has held "
                "messages with no consumer for 10 minutes: tasks are stored but nothing will "
                "ever deliver them."
            ),
        ),
    )
