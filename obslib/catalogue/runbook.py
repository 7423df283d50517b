"""Runbook entries, one per alert, following the spec's template.

Means; Reproduce in test cluster; Diagnose (a dashboard panel by key, a LogQL query, a TraceQL
query, commands); Mitigate (short-term actions, then ticket the fix). Panels are referenced by
key so a renamed panel cannot leave a dangling reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from obslib.catalogue.hops import DESTINATION, TASK_SUBJECT_PREFIX
from obslib.settings import Settings

TASK_PUBLISHES = f'{{ name = "nats.publish" && span.{DESTINATION} =~ "{TASK_SUBJECT_PREFIX}*" }}'


@dataclass(frozen=True)
class RunbookEntry:
    """What an on-call engineer needs for one alert."""

    alert: str
    means: str
    reproduce: tuple[str, ...]  # shell commands, run in order
    panel: str  # PanelSpec.key of the panel to open first
    logql: str
    traceql: str
    checks: tuple[str, ...]  # diagnostic commands
    mitigate: tuple[str, ...]
    notes: str = ""


def runbook_entries(s: Settings) -> tuple[RunbookEntry, ...]:
    """The runbook entries for one release, keyed by alert name."""
    ns = s.namespace
    agent = s.agent_types[0]
    scaledjob = f"{s.worker_prefix}{agent}"
    logs = f'{{namespace="{ns}", app_kubernetes_io_component="{agent}"}}'
    return (
        RunbookEntry(
            alert="WorkerImagePullBackOff",
            means="A worker pod cannot pull its container image, so tasks of its agent type never start.",
            reproduce=(
                f"kubectl -n {ns} patch scaledjob {scaledjob} --type=json -p "
                '\'[{"op":"replace","path":"/spec/jobTargetRef/template/spec/containers/0/image",'
                '"value":"ghcr.io/raykao/daedalus-proxy:does-not-exist"}]\'',
                f'nats pub {s.task_subject(agent)} \'{{"id":"repro-image-pull"}}\'',
                f"kubectl -n {ns} get pods -w   # ErrImagePull, then ImagePullBackOff; the alert fires within 3 minutes",
            ),
            panel="active-workers",
            logql=f'{{namespace="{ns}"}} |= "{s.worker_prefix}" |~ "ErrImagePull|ImagePullBackOff|pull"',
            traceql=f'{{ name = "nats.publish" && span.{DESTINATION} = "{s.task_subject(agent)}" }}',
            checks=(
                f"kubectl -n {ns} describe pod <pod>   # Events: the exact pull error (tag, auth, registry)",
                f"kubectl -n {ns} get scaledjob {scaledjob} -o jsonpath='{{.spec.jobTargetRef.template.spec.containers[*].image}}'",
                f"kubectl -n {ns} get events --field-selector reason=Failed --sort-by=.lastTimestamp",
            ),
            mitigate=(
                "Roll the image tag back to the last release that worked (helm rollback, or patch the ScaledJob image back).",
                "If the registry needs credentials, check the imagePullSecret exists in the namespace and is not expired.",
                f"Delete the stuck Jobs so KEDA creates fresh ones: kubectl -n {ns} delete job -l scaledjob.keda.sh/name={scaledjob}",
            ),
        ),
        RunbookEntry(
            alert="WorkerCrashLoopBackOff",
            means="A worker container starts and crashes again and again; its tasks fail or stall.",
            reproduce=(
                f"kubectl -n {ns} patch scaledjob {scaledjob} --type=json -p "
                '\'[{"op":"add","path":"/spec/jobTargetRef/template/spec/containers/0/command",'
                '"value":["sh","-c","exit 1"]},'
                '{"op":"replace","path":"/spec/jobTargetRef/template/spec/restartPolicy","value":"OnFailure"}]\'',
                f'nats pub {s.task_subject(agent)} \'{{"id":"repro-crashloop"}}\'',
                f"kubectl -n {ns} get pods -w   # RESTARTS grows about every 5 minutes at most; fires after 10 minutes",
            ),
            panel="error-rate",
            logql=f'{logs} | json | level=~"ERROR|error"',
            traceql='{ name = "proxy.handle" && status = error && resource.service.name = "daedalus-proxy" }',
            checks=(
                f"kubectl -n {ns} logs <pod> -c proxy --previous   # the crash's last words",
                f"kubectl -n {ns} logs <pod> -c agent --previous",
                f"kubectl -n {ns} get pod <pod> -o jsonpath='{{.status.containerStatuses[*].lastState.terminated}}'   # exit code, OOMKilled",
            ),
            mitigate=(
                "If it began with a deploy, roll back the worker image or configuration.",
                "OOMKilled: raise the container memory limit for this agent type.",
                f"To stop the churn while you fix it, pause the worker: kubectl -n {ns} annotate scaledjob {scaledjob} autoscaling.keda.sh/paused=true",
            ),
            notes=(
                "Restarts only happen in place with restartPolicy Always or OnFailure. A Job pod "
                "with restartPolicy Never is replaced instead of restarted: the counter does not "
                "move and this alert stays silent; watch kube_job_status_failed for those."
            ),
        ),
        RunbookEntry(
            alert="NATSConsumerLagUnbounded",
            means="Tasks are published faster than workers consume them and the backlog keeps growing.",
            reproduce=(
                f'kubectl -n {ns} patch scaledjob {scaledjob} --type=merge -p \'{{"spec":{{"maxReplicaCount":0}}}}\'',
                f'nats pub {s.task_subject(agent)} \'{{"id":"repro-lag-{{{{.Count}}}}"}}\' --count 150',
                f"nats consumer info {s.nats_stream} {agent}   # Unprocessed Messages above 100 and rising",
            ),
            panel="queue-depth",
            logql=f'{logs} | json | msg=~".*(consume|ack|timeout).*"',
            traceql=f'{{ name = "nats.consume" && span.messaging.nats.stream = "{s.nats_stream}" }}',
            checks=(
                f"nats consumer info {s.nats_stream} <consumer_name>   # pending, ack pending, redelivered, last delivery",
                f"kubectl -n {ns} get scaledjob,jobs,pods   # are workers being created at all?",
                f"kubectl -n {ns} describe scaledjob {scaledjob}   # maxReplicaCount reached? trigger errors?",
            ),
            mitigate=(
                "If workers run but are slow: raise the ScaledJob's maxReplicaCount for this agent type.",
                "If no workers start: see KEDAScalerError, WorkerImagePullBackOff and WorkerCrashLoopBackOff.",
                "If one poison task blocks the consumer: find it with `nats consumer next` (without ack) and remove it from the stream.",
            ),
        ),
        RunbookEntry(
            alert="KEDAScalerError",
            means="KEDA cannot read the NATS JetStream trigger of a Daedalus ScaledJob, so workers are not scaled.",
            reproduce=(
                f"kubectl -n {ns} patch scaledjob {scaledjob} --type=json -p "
                '\'[{"op":"replace","path":"/spec/triggers/0/metadata/natsServerMonitoringEndpoint",'
                '"value":"nats-does-not-exist:8222"}]\'',
                f"kubectl -n {ns} describe scaledjob {scaledjob}   # KEDAScalerFailed events; the alert fires on the next scrape",
            ),
            panel="active-workers",
            logql='{container="keda-operator"} |= "' + ns + '" |~ "error|Error"',
            traceql=TASK_PUBLISHES,
            checks=(
                f"kubectl -n {ns} describe scaledjob <scaledObject label>   # Conditions and events name the failing trigger",
                "kubectl -n keda logs deploy/keda-operator --since=15m | grep -i error",
                f"nats stream info {s.nats_stream}   # the stream and consumer the trigger names must exist",
            ),
            mitigate=(
                "Fix the trigger metadata (monitoring endpoint, account, stream, consumer) and re-apply the ScaledJob.",
                "If the NATS monitoring port is unreachable, check the NATS Service and any NetworkPolicy between keda and nats.",
                f"While KEDA is broken, run a worker by hand: kubectl -n {ns} create job --from=scaledjob/{scaledjob} manual-1 (or scale a Deployment-based worker).",
            ),
        ),
        RunbookEntry(
            alert="OTelCollectorDown",
            means="The OpenTelemetry collector is down or no longer scraped, so Daedalus traces, metrics and logs are being lost.",
            reproduce=(
                "kubectl -n monitoring scale deployment otel-collector --replicas=0",
                "# absent() fires after 5 minutes; restore with --replicas=1",
            ),
            panel="slowest-tasks",
            logql='{namespace="monitoring", container=~"otel-collector|otc-container"} |~ "error|refused|dropped"',
            traceql='{ resource.service.name = "daedalus-proxy" }',
            checks=(
                "kubectl -n monitoring get pods,servicemonitors | grep -i otel",
                f'Prometheus: up{{job="{s.otel_collector_job}"}}   # 0 = target down; no series = not scraped at all',
                "Prometheus /targets: is the collector's ServiceMonitor selected (release label) and does its job label match otelCollector.job?",
            ),
            mitigate=(
                "Restart the collector (kubectl -n monitoring rollout restart deployment/otel-collector) and watch its logs.",
                "If it is OOMKilled, raise its memory limit or add a memory_limiter processor.",
                "If it runs but is not scraped, fix the ServiceMonitor's release label or the job name in values (otelCollector.job).",
            ),
        ),
        RunbookEntry(
            alert="OrchestratorDown",
            means="The orchestrator Deployment has no available replica or does not exist: no task is dispatched and no result collected.",
            reproduce=(
                f"kubectl -n {ns} scale deployment {s.orchestrator_deployment} --replicas=0",
                "# fires after 2 minutes; restore with --replicas=1",
            ),
            panel="throughput",
            logql=f'{{namespace="{ns}", container=~"orchestrator.*"}} | json | level=~"ERROR|error"',
            traceql='{ resource.service.name = "daedalus-orchestrator" }',
            checks=(
                f"kubectl -n {ns} get deployment {s.orchestrator_deployment}   # NotFound = not deployed: the absent() leg",
                f"kubectl -n {ns} describe deployment {s.orchestrator_deployment}",
                f"kubectl -n {ns} logs deploy/{s.orchestrator_deployment} --previous",
            ),
            mitigate=(
                "Roll back the last orchestrator change, or scale it back up.",
                "If the Deployment does not exist yet (today's chart has none), this alert fires until it is deployed: silence it in Alertmanager with a comment and an expiry, do not delete the rule.",
            ),
        ),
        RunbookEntry(
            alert="NATSStreamUnhealthy",
            means="The task stream holds messages but has no consumer, so stored tasks will never be delivered.",
            reproduce=(
                f"nats consumer rm {s.nats_stream} {agent} -f",
                f'nats pub {s.task_subject(agent)} \'{{"id":"repro-no-consumer"}}\'',
                "# fires after 10 minutes",
            ),
            panel="queue-depth",
            logql=f'{{namespace="{ns}", container="proxy"}} |~ "consumer|subscribe"',
            traceql=TASK_PUBLISHES,
            checks=(
                f"nats stream info {s.nats_stream}   # Consumers: 0, Messages > 0",
                f"nats consumer ls {s.nats_stream}",
                f"kubectl -n {ns} get scaledjobs   # every agent type's trigger names its consumer",
            ),
            mitigate=(
                "Recreate the missing durable consumers (redeploy the chart, or nats consumer add with the chart's settings).",
                "Check that the consumers were not removed by an inactivity threshold (ephemeral consumers vanish).",
            ),
        ),
    )
