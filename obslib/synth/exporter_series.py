"""The exporter series the dashboards and rules read, labelled exactly as the exporters emit them.

Label names come from the exporter catalogue (so history, lint and rules agree); label values
are those of a typical kube-prometheus-stack install. A shared nats-surveyor also watches
another team's stream, and KEDA scales another team's ScaledObject: both misbehave all the
time, so a rule that forgets its stream or namespace filter fires outside the incidents.
"""

from __future__ import annotations

import hashlib

import numpy as np

from obslib.catalogue.alerts import keda_scaler_errors_metric
from obslib.catalogue.exporters import MetricCatalogue
from obslib.errors import CatalogueError
from obslib.settings import Settings
from obslib.synth.openmetrics import Series
from obslib.synth.scenario import Incident, Timeline
from obslib.synth.tasks import Labeler, random_suffix

OTHER_STREAM = "BILLING_EVENTS"
OTHER_NAMESPACE = "team-b"
KEDA_NAMESPACE = "keda"
COLLECTOR_NAMESPACE = "monitoring"


def scrape_targets(settings: Settings) -> dict[str, dict[str, str]]:
    """Label values each exporter's scrape adds (its pod, Service, job...)."""
    return {
        "kube-state-metrics": {
            "namespace": "monitoring",
            "pod": "kube-prometheus-stack-kube-state-metrics-5f6g7-h8i9j",
            "container": "kube-state-metrics",
            "service": "kube-prometheus-stack-kube-state-metrics",
            "endpoint": "http",
            "instance": "10.244.1.12:8080",
            "job": "kube-state-metrics",
        },
        "nats-surveyor": {
            "namespace": "nats",
            "pod": "nats-surveyor-5d9c8b7f6-abcde",
            "container": "surveyor",
            "service": "nats-surveyor",
            "endpoint": "http",
            "instance": "10.244.2.4:7777",
            "job": "nats-surveyor",
            "account": "AD2VB6C25DQPEUUQ7KJBUFX2J4ZNVBPOHSCBISC7VFZXVWXZA7VASQZG",
            "account_name": "daedalus",
            "cluster_name": "nats",
            "server_id": "NCXQ2ZDRUWJ3ZKZS4BDMTFXWQWCMNWQCKV4PEM6HUNTEYWFRVDDPJOQ5",
            "server_name": "nats-0",
            "stream_leader": "nats-0",
            "consumer_leader": "nats-0",
        },
        "keda-operator": {
            "namespace": KEDA_NAMESPACE,
            "pod": "keda-operator-7c9f8d6b5-zx8cv",
            "container": "keda-operator",
            "service": "keda-operator",
            "endpoint": "metricsservice",
            "instance": "10.244.0.9:8080",
            "job": "keda-operator",
            "metric": f"s0-nats-jetstream-{settings.nats_stream}",
            "scaler": "natsJetStreamScaler",
            "scalerIndex": "0",
            "triggerIndex": "0",
            "type": "scaledjob",
            "version": f"{settings.keda_version_text}.0",
            "git_commit": "6681d5ecbc82293626cab693625c9cc9fb453381",
            "goversion": "go1.21.9",
            "goos": "linux",
            "goarch": "amd64",
        },
        "daedalus": {
            "namespace": settings.namespace,
            "pod": f"{settings.orchestrator_deployment}-6d8f9c7b5-qwert",
            "container": "orchestrator",
            "service": settings.orchestrator_deployment,
            "endpoint": "metrics",
            "instance": "10.244.1.30:9464",
            "job": settings.orchestrator_deployment,
        },
        "otel-collector": {
            "namespace": COLLECTOR_NAMESPACE,
            "pod": "otel-collector-6b7c8d9e0f-ab12c",
            "container": "otc-container",
            "service": "otel-collector",
            "endpoint": "monitoring",
            "instance": "10.244.3.5:8888",
            "job": settings.otel_collector_job,
            "receiver": "otlp",
            "transport": "http",
            "service_name": "otelcol-contrib",
            "service_instance_id": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
            "service_version": "0.103.0",
        },
    }


def labeler(metrics: MetricCatalogue, settings: Settings) -> Labeler:
    """A function giving a series its full label set: its own labels plus the scrape's."""
    targets = scrape_targets(settings)

    def label(series_name: str, own: dict[str, str]) -> dict[str, str]:
        defs = metrics.lookup(series_name)
        if not defs:
            raise CatalogueError(f"{series_name} is not emitted by any exporter of this release")
        definition = defs[0]
        unknown = set(own) - definition.labels
        if unknown:
            raise CatalogueError(f"{series_name} has no label(s) {sorted(unknown)}")
        target = targets.get(definition.exporter, {})
        out = {}
        for name in sorted(definition.labels):
            if name in own:
                out[name] = own[name]
            elif name in target:
                out[name] = target[name]
            elif name != "le":
                raise CatalogueError(f"no value for label {name} of {series_name}")
        return out

    return label


def _in(t: np.ndarray, incident: Incident) -> np.ndarray:
    return (t >= incident.start) & (t < incident.end)


def _uid(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _raft(name: str) -> str:
    return "R3F-" + hashlib.sha256(name.encode()).hexdigest()[:6]


def orchestrator_series(
    timeline: Timeline, outage: Incident, settings: Settings, label: Labeler
) -> list[Series]:
    """The orchestrator Deployment's replicas, zero during its outage."""
    t = timeline.grid
    own = {"namespace": settings.namespace, "deployment": settings.orchestrator_deployment}
    available = np.where(_in(t, outage), 0.0, 2.0)
    return [
        Series(
            "kube_deployment_status_replicas",
            label("kube_deployment_status_replicas", own),
            t,
            np.full(len(t), 2.0),
        ),
        Series(
            "kube_deployment_status_replicas_available",
            label("kube_deployment_status_replicas_available", own),
            t,
            available,
        ),
    ]


def lag_overlay(t: np.ndarray, incident: Incident) -> np.ndarray:
    """Extra pending messages of a stalled consumer: 40 minutes of growth to 300, then a 20-minute drain."""
    minutes = (t - incident.start) / 60.0
    ramp = np.clip(minutes, 0, 40) * 7.5
    drain = np.clip(minutes - 40, 0, 20) * 15.0
    return np.where(_in(t, incident), np.maximum(ramp - drain, 0.0), 0.0)


def surveyor_series(
    timeline: Timeline,
    queues: dict[str, tuple[np.ndarray, np.ndarray]],
    lag: Incident,
    no_consumer: Incident,
    settings: Settings,
    label: Labeler,
) -> list[Series]:
    """nats-surveyor's jsz series for the task stream, its consumers, and another team's stream."""
    t = timeline.grid
    out: list[Series] = []
    stream = settings.nats_stream
    gone = _in(t, no_consumer)
    total = np.zeros(len(t))
    for agent, (pending, running) in queues.items():
        if agent == lag.agent_type:
            pending = pending + lag_overlay(t, lag)
        total += pending + running
        own = {"stream": stream, "consumer_name": agent, "raft_group": f"C-{_raft(agent)}"}
        for name, values in (
            ("nats_consumer_num_pending", pending),
            ("nats_consumer_num_ack_pending", running),
        ):
            out.append(Series(name, label(name, own), t[~gone], values[~gone]))
    # With every consumer gone, published tasks pile up in the stream.
    arrivals = np.cumsum(gone) * 0.5
    stream_own = {"stream": stream, "raft_group": f"S-{_raft(stream)}"}
    consumers = np.where(gone, 0.0, float(len(queues)))
    out.append(
        Series(
            "nats_stream_consumer_count",
            label("nats_stream_consumer_count", stream_own),
            t,
            consumers,
        )
    )
    out.append(
        Series(
            "nats_stream_total_messages",
            label("nats_stream_total_messages", stream_own),
            t,
            total + arrivals,
        )
    )
    # Another team's stream: a consumer whose backlog saws between 50 and 450, and a stream that
    # keeps 40 messages with no consumer at all.
    other = {
        "stream": OTHER_STREAM,
        "consumer_name": "billing",
        "raft_group": f"C-{_raft(OTHER_STREAM)}",
    }
    saw = 50 + ((t - t[0]) // 60 % 30) * 15.0
    out.append(
        Series("nats_consumer_num_pending", label("nats_consumer_num_pending", other), t, saw)
    )
    other_stream = {"stream": OTHER_STREAM, "raft_group": f"S-{_raft(OTHER_STREAM)}"}
    out.append(
        Series(
            "nats_stream_consumer_count",
            label("nats_stream_consumer_count", other_stream),
            t,
            np.zeros(len(t)),
        )
    )
    out.append(
        Series(
            "nats_stream_total_messages",
            label("nats_stream_total_messages", other_stream),
            t,
            np.full(len(t), 40.0),
        )
    )
    return out


def keda_series(
    timeline: Timeline,
    queues: dict[str, tuple[np.ndarray, np.ndarray]],
    errors: Incident,
    settings: Settings,
    label: Labeler,
) -> list[Series]:
    """KEDA operator series for this release's ScaledJobs and another team's ScaledObject."""
    t = timeline.grid
    ns_label = settings.keda_namespace_label
    metric = keda_scaler_errors_metric(settings.keda_version)
    out: list[Series] = []
    all_errors = np.zeros(len(t))
    for agent, (pending, _) in queues.items():
        own = {ns_label: settings.namespace, "scaledObject": f"{settings.worker_prefix}{agent}"}
        step_errors = np.where(_in(t, errors) & (agent == errors.agent_type), 2.0, 0.0)
        count = np.cumsum(step_errors)
        all_errors += count
        out.append(Series(metric, label(metric, own), t, count))
        out.append(
            Series("keda_scaler_metrics_value", label("keda_scaler_metrics_value", own), t, pending)
        )
        out.append(
            Series(
                "keda_scaler_active",
                label("keda_scaler_active", own),
                t,
                (pending > 0).astype(float),
            )
        )
    theirs = {
        ns_label: OTHER_NAMESPACE,
        "scaledObject": "billing-consumer",
        "scaler": "prometheusScaler",
    }
    if settings.keda_version >= (2, 13):  # the `type` label arrived in KEDA 2.13
        theirs["type"] = "scaledobject"
    other_errors = np.arange(len(t), dtype=float) * 3
    all_errors += other_errors
    out.append(Series(metric, label(metric, theirs), t, other_errors))
    if label_less := _exists(label, "keda_scaler_errors_total"):
        out.append(Series("keda_scaler_errors_total", label_less, t, all_errors))
    if build := _exists(label, "keda_build_info"):
        out.append(Series("keda_build_info", build, t, np.ones(len(t))))
    return out


def _exists(label: Labeler, name: str) -> dict[str, str] | None:
    try:
        return label(name, {})
    except CatalogueError:
        return None


def collector_series(
    timeline: Timeline, down: Incident, settings: Settings, label: Labeler
) -> list[Series]:
    """The OTel collector's scrape target (``up``) and one of its own counters."""
    t = timeline.grid
    running = ~_in(t, down)
    target = scrape_targets(settings)["otel-collector"]
    up_labels = {
        k: target[k]
        for k in ("namespace", "pod", "container", "service", "endpoint", "instance", "job")
    }
    accepted = np.cumsum(np.where(running, 60 * 45.0, 0.0))
    return [
        Series("up", label("up", up_labels), t, running.astype(float)),
        Series(
            "otelcol_receiver_accepted_spans_total",
            label("otelcol_receiver_accepted_spans_total", {}),
            t[running],
            accepted[running],
        ),
    ]


def up_series(
    timeline: Timeline, outage: Incident, settings: Settings, label: Labeler
) -> list[Series]:
    """``up`` of the other scrape targets; the orchestrator's is 0 while it is down."""
    t = timeline.grid
    targets = scrape_targets(settings)
    keys = ("namespace", "pod", "container", "service", "endpoint", "instance", "job")
    out = []
    for exporter in ("kube-state-metrics", "nats-surveyor", "keda-operator", "daedalus"):
        own = {k: targets[exporter][k] for k in keys}
        values = np.where(_in(t, outage), 0.0, 1.0) if exporter == "daedalus" else np.ones(len(t))
        out.append(Series("up", label("up", own), t, values))
    return out


def incident_pods(
    timeline: Timeline,
    image_pull: Incident,
    crashloop: Incident,
    settings: Settings,
    label: Labeler,
    rng: np.random.Generator,
) -> tuple[list[Series], dict[str, dict[str, str]]]:
    """The worker pods of the image-pull and crash-loop incidents, and the labels their alerts carry."""
    t = timeline.grid
    out: list[Series] = []
    firing: dict[str, dict[str, str]] = {}
    for incident, container in ((image_pull, "proxy"), (crashloop, "agent")):
        job, pod = random_suffix(rng, 2)
        pod_name = f"{settings.worker_prefix}{incident.agent_type}-{job}-{pod}"
        inside = _in(t, incident)
        own = {"namespace": settings.namespace, "pod": pod_name, "uid": _uid(pod_name)}
        firing[incident.id] = {"pod": pod_name, "container": container}
        job_own = {"namespace": settings.namespace, "job_name": pod_name.rsplit("-", 1)[0]}
        out.append(
            Series(
                "kube_job_status_active",
                label("kube_job_status_active", job_own),
                t[inside],
                np.ones(int(inside.sum())),
            )
        )
        minutes = ((t - incident.start) // 60)[inside]
        if incident is image_pull:
            # Kubelet flips between ErrImagePull (a pull attempt) and ImagePullBackOff (waiting).
            pulling = minutes % 4 == 0
            for reason, mask in (("ErrImagePull", pulling), ("ImagePullBackOff", ~pulling)):
                labels = label(
                    "kube_pod_container_status_waiting_reason",
                    {**own, "container": container, "reason": reason},
                )
                out.append(
                    Series(
                        "kube_pod_container_status_waiting_reason",
                        labels,
                        t[inside][mask],
                        np.ones(int(mask.sum())),
                    )
                )
        else:
            restarts = (minutes // 5).astype(float)  # CrashLoopBackOff's ~5-minute cap
            labels = label(
                "kube_pod_container_status_restarts_total", {**own, "container": container}
            )
            out.append(
                Series("kube_pod_container_status_restarts_total", labels, t[inside], restarts)
            )
            waiting = minutes % 5 != 0
            labels = label(
                "kube_pod_container_status_waiting_reason",
                {**own, "container": container, "reason": "CrashLoopBackOff"},
            )
            out.append(
                Series(
                    "kube_pod_container_status_waiting_reason",
                    labels,
                    t[inside][waiting],
                    np.ones(int(waiting.sum())),
                )
            )
    return out, firing
