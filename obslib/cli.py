"""The ``obslib`` command: a thin layer of argument parsing over library functions."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from obslib.errors import ObslibError

Handler = Callable[[argparse.Namespace], int]


def _catalogue(args: argparse.Namespace):
    from obslib.catalogue import build_catalogue
    from obslib.settings import load_settings

    return build_catalogue(load_settings(args.values))


def cmd_emit(args: argparse.Namespace) -> int:
    """Write the artifacts, or with --check report drift and exit 1."""
    from obslib.emit import check, emit

    c = _catalogue(args)
    root = Path(args.root)
    if args.check:
        drift = check(c, root)
        if drift:
            print(drift.report(), file=sys.stderr)
            print("Run `make generate` (obslib emit) and commit the result.", file=sys.stderr)
            return 1
        print("artifacts are in step with the catalogue")
        return 0
    changed = emit(c, root)
    for path in changed:
        print(f"wrote {path}")
    print(f"{len(changed)} file(s) changed" if changed else "no change")
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    """Lint what the catalogue renders against the exporters' metrics."""
    from obslib.emit import lint_artifacts

    problems = lint_artifacts(_catalogue(args))
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s)" if problems else "lint clean")
    return 1 if problems else 0


def cmd_collector(args: argparse.Namespace) -> int:
    """Serve the test OTLP collector in the foreground; print what it received on Ctrl-C."""
    from obslib.collector import run_collector

    stats = run_collector(Path(args.out), port=args.port)
    print(
        f"accepted {stats.requests_accepted} request(s): {stats.spans_accepted} span(s), "
        f"{stats.log_records_accepted} log record(s); rejected {stats.requests_rejected}"
        + (f" {stats.rejected}" if stats.rejected else "")
    )
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    """Start, stop or show the embedded local Prometheus (status exits 1 when not ready)."""
    from obslib.stack import LocalStack

    stack = LocalStack(data_dir=Path(args.dir) if args.dir else None, port=args.port)
    if args.action == "down":
        print("stopped the local stack" if stack.down() else "the local stack was not running")
        return 0
    if args.action == "status":
        status = stack.status()
        print(status.describe())
        return 0 if status.ready else 1

    def history(work_dir: Path) -> Path:
        from obslib import clock
        from obslib.settings import load_settings
        from obslib.synth import write_history
        from obslib.synth.scenario import default_end

        settings = load_settings(args.values)
        end = default_end(clock.now_seconds())
        return write_history(settings, work_dir, end=end, days=args.days, seed=args.seed)

    print(stack.up(history=history).describe())
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    """Run the reference pipeline once; exit 1 when some task's result never came back."""
    import os

    from obslib.errors import ConfigError
    from obslib.fleet import FaultPlan, run_fleet
    from obslib.settings import load_settings

    endpoint = args.collector or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        raise ConfigError(
            "give --collector URL or set $OTEL_EXPORTER_OTLP_ENDPOINT (the base URL that "
            "`obslib collector` prints)."
        )
    params = {
        "dropped_hop": args.drop_hop,
        "headers_dropped_on": tuple(args.headers_on) if args.headers_on else None,
        "skewed_service": args.skew_service,
        "skew_seconds": args.skew_seconds,
    }
    faults = FaultPlan.parse(args.fault, **{k: v for k, v in params.items() if v is not None})
    run = run_fleet(
        load_settings(args.values),
        tasks=args.tasks,
        collector_endpoint=endpoint,
        out_dir=Path(args.out),
        concurrency=args.concurrency,
        faults=faults,
        seed=args.seed,
    )
    print(run.describe())
    return 1 if run.lost else 0


def _parse_params(pairs: list[list[str]] | None) -> dict[str, str]:
    return {key: value for key, value in pairs or []}


def _report_runs(args: argparse.Namespace, names: list[str] | None) -> int:
    """Run reports; print each verdict, and why one is not a pass. Exit codes: README."""
    from obslib.reports import exit_code, run_reports
    from obslib.reports.run import EXIT_MEANINGS
    from obslib.settings import load_settings

    runs, index = run_reports(
        load_settings(args.values),
        names,
        _parse_params(args.param),
        args.out,
        embedded=not args.no_embedded,
        progress=not args.quiet,
    )
    for run in runs:
        print(f"{run.verdict:>12}  {run.title}: {run.html}")
        for line in run.explain():
            print(f"{'':>14}{line}")
    if index:
        print(f"index: {index}")
    code = exit_code(runs)
    if code:
        failed = ", ".join(f"{run.title} ({run.verdict})" for run in runs if run.failed)
        print(
            f"obslib {args.command}: exit {code}, {EXIT_MEANINGS[code]}: {failed}", file=sys.stderr
        )
    return code


def cmd_report(args: argparse.Namespace) -> int:
    """Run one notebook headlessly and render its HTML report."""
    return _report_runs(args, [args.name])


def cmd_reports(args: argparse.Namespace) -> int:
    """Run every notebook, render the reports and write rendered/index.html."""
    return _report_runs(args, None)


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="notebook parameter (repeatable); never an endpoint or a secret")  # fmt: skip
    parser.add_argument("--out", default="rendered", help="output directory (default: rendered)")
    parser.add_argument("--no-embedded", action="store_true",
                        help="do not start the embedded stack or reference pipeline for unconfigured backends")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="obslib", description=__doc__)
    parser.add_argument(
        "--values", help="values file overriding obslib/values.yaml (or $OBSLIB_VALUES)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    emit = sub.add_parser("emit", help="emit dashboards, rules and runbook from the catalogue")
    emit.add_argument("--check", action="store_true", help="exit 1 when committed artifacts differ")
    emit.add_argument("--root", default=".", help="repository root (default: current directory)")
    emit.set_defaults(handler=cmd_emit)

    lint = sub.add_parser("lint", help="lint rendered rules and dashboards against the exporters")
    lint.set_defaults(handler=cmd_lint)

    report = sub.add_parser("report", help="run one notebook and render its HTML report")
    report.add_argument("name", help="notebook name, e.g. phase5_acceptance")
    _add_report_options(report)
    report.set_defaults(handler=cmd_report)

    reports = sub.add_parser(
        "reports", help="run every notebook, render reports and rendered/index.html"
    )
    _add_report_options(reports)
    reports.set_defaults(handler=cmd_reports)

    stack = sub.add_parser("stack", help="run a local Prometheus over backfilled fleet history")
    stack.add_argument("action", choices=("up", "down", "status"))
    stack.add_argument("--port", type=int, help="port on 127.0.0.1 ($OBSLIB_STACK_PORT, 19090)")
    stack.add_argument(
        "--dir", help="data directory ($OBSLIB_STACK_DIR, else .obslib/stack in the workbench root)"
    )
    stack.add_argument("--days", type=int, default=14, help="days of history on first up (14)")
    stack.add_argument("--seed", type=int, default=1, help="seed of the synthetic history (1)")
    stack.set_defaults(handler=cmd_stack)

    collector = sub.add_parser(
        "collector", help="run the test OTLP/HTTP collector on 127.0.0.1 until Ctrl-C"
    )
    collector.add_argument("--port", type=int, default=4318, help="port (default 4318; 0: free)")
    collector.add_argument(
        "--out", required=True, help="directory for traces.jsonl and logs.jsonl (appended to)"
    )
    collector.set_defaults(handler=cmd_collector)

    fleet = sub.add_parser(
        "fleet", help="run the reference pipeline (NATS, proxy, agent CLIs) exporting over OTLP"
    )
    fleet.add_argument("--tasks", type=int, default=20, help="tasks to run (default 20)")
    fleet.add_argument("--concurrency", type=int, default=8, help="tasks in flight (default 8)")
    fleet.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=SHARE",
        help="inject a fault into a share of tasks (repeatable): stdio-context, nats-headers, "
        "envelope-trace-id, span-dropped, duplicate-span-ids, clock-skew",
    )
    fleet.add_argument("--drop-hop", help="span-dropped: PASS1 hop key (default task_consume)")
    fleet.add_argument(
        "--headers-on",
        action="append",
        choices=("task_publish", "result_publish"),
        help="nats-headers: publishes that lose their headers (default task_publish)",
    )
    fleet.add_argument("--skew-service", help="clock-skew: service.name (default daedalus-proxy)")
    fleet.add_argument("--skew-seconds", type=float, help="clock-skew: shift (default 120)")
    fleet.add_argument("--seed", type=int, default=1, help="seed of prompts and faults (1)")
    fleet.add_argument("--collector", help="OTLP/HTTP base URL ($OTEL_EXPORTER_OTLP_ENDPOINT)")
    fleet.add_argument("--out", required=True, help="directory for logs, metrics, fleet-run.json")
    fleet.set_defaults(handler=cmd_fleet)
    return parser


@contextlib.contextmanager
def _values_exported(args: argparse.Namespace) -> Iterator[None]:
    """Make ``--values`` (or ``$OBSLIB_VALUES``) an absolute path in ``$OBSLIB_VALUES``.

    Notebook kernels run in another directory and read only the environment: exporting the
    resolved file is what makes ``--values FILE`` and ``OBSLIB_VALUES=FILE`` act the same there.
    """
    from obslib.settings import VALUES_ENV

    chosen = args.values or os.environ.get(VALUES_ENV)
    if not chosen:
        yield
        return
    before = os.environ.get(VALUES_ENV)
    args.values = os.environ[VALUES_ENV] = str(Path(chosen).absolute())
    try:
        yield
    finally:  # main() may be called in-process (tests): leave the environment as it was
        if before is None:
            os.environ.pop(VALUES_ENV, None)
        else:
            os.environ[VALUES_ENV] = before


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``obslib`` console command."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        with _values_exported(args):
            return handler(args)
    except ObslibError as exc:
        print(f"obslib {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
