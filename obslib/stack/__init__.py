"""The embedded local stack: a real Prometheus on 127.0.0.1 over backfilled fleet history.

:mod:`.server` starts, finds and stops it; :mod:`.backfill` moves history into its TSDB;
:mod:`.processes` tells whether a pid is alive and what it runs.

Everything lives in one data directory (``$OBSLIB_STACK_DIR``, default ``<root>/.obslib/stack``
with the root of :mod:`obslib.paths`, never the working directory)::

    prometheus.yml    written on every start: rule files and optional scrape targets
    tsdb/             the TSDB; backfilled blocks are built elsewhere and moved in whole
    prometheus.pid    the running server's pid (it runs in its own process group)
    prometheus.log    the server's output, appended across starts
    history/          what the history function wrote, less the OpenMetrics once backfilled
    stack.lock        held (flock) by whichever ``up`` or ``down`` runs: one at a time per dir

A pid counts as the stack's only while its command line is this directory's Prometheus (the
``prometheus`` binary with this config file and TSDB); any other process under that pid, a
kernel thread included, is never taken for it nor signalled.

The port is ``$OBSLIB_STACK_PORT`` (default 19090, clear of the 9090 a system Prometheus
holds). The history is old data, so retention is set far beyond any history's age.
"""

from obslib.stack.server import (
    DEFAULT_PORT,
    DIR_ENV,
    FLEET_JOB,
    GO_MEMORY_LIMIT,
    PORT_ENV,
    LocalStack,
    StackStatus,
    default_rule_files,
)

__all__ = [
    "DEFAULT_PORT",
    "DIR_ENV",
    "FLEET_JOB",
    "GO_MEMORY_LIMIT",
    "PORT_ENV",
    "LocalStack",
    "StackStatus",
    "default_rule_files",
]
