"""The notebooks the workbench runs, and the parameters each one takes.

Every parameter is declared once here, with its kind (what values it accepts). The same
declaration checks a headless run before its notebook starts (``obslib report``/``reports``,
:func:`obslib.reports.run_notebook`) and each notebook's own parameters cell when it runs in
JupyterLab (:func:`checked_parameters`). The defaults live in the notebooks' ``parameters``
cells, where papermill reads them; a test checks that both agree.

Parameters never name an endpoint or a secret: papermill writes them into the executed notebook
and the HTML report. Endpoints and credentials come from the environment only.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obslib.catalogue.hops import PROFILES
from obslib.errors import ConfigError
from obslib.reports import params
from obslib.reports.params import HOURS, PATH, STEP, TEXT, TIME, TRACE_ID, Kind, choice, count

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
MAX_TRACES = 1_000_000  # a user's cap on the traces one audit reads (0: every trace)


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter: its name and the kind of value it takes."""

    name: str
    kind: Kind


WINDOW = (Parameter("start", TIME), Parameter("end", TIME), Parameter("hours", HOURS))
RESULTS_DIR = Parameter("results_dir", PATH)


def fleet_range_queries() -> int:
    """How many range queries the fleet overview makes: every fleet target of its line charts."""
    from obslib.catalogue import build_catalogue

    return sum(len(p.fleet) for p in build_catalogue().panels if p.kind == "timeseries")


@dataclass(frozen=True)
class NotebookSpec:
    """One notebook: its file, its report title, its parameters, how its verdict counts."""

    name: str
    title: str
    parameters: tuple[Parameter, ...]
    fail_exits: bool = False  # its verdict decides the exit code (the acceptance gate)
    range_queries: Callable[[], int] | None = None  # how many queries its `step` applies to

    @property
    def path(self) -> Path:
        """The notebook file."""
        return NOTEBOOK_DIR / f"{self.name}.ipynb"

    @property
    def names(self) -> tuple[str, ...]:
        """The names of its parameters, in declaration order."""
        return tuple(p.name for p in self.parameters)


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec(
        "fleet_overview",
        "Fleet overview",
        (*WINDOW, Parameter("step", STEP), RESULTS_DIR),
        range_queries=fleet_range_queries,
    ),
    NotebookSpec(
        "trace_audit",
        "Trace propagation audit",
        (
            *WINDOW,
            Parameter("traces_path", PATH),
            Parameter("logs_path", PATH),
            Parameter("traceql", TEXT),
            Parameter("max_traces", count(0, MAX_TRACES)),
            Parameter("profile", choice(list(PROFILES))),
            Parameter("fleet_run", PATH),
            RESULTS_DIR,
        ),
    ),
    NotebookSpec(
        "slo_baseline",
        "SLO baseline (Pass-2 preparation)",
        (*WINDOW, Parameter("proposed_rules_dir", PATH), RESULTS_DIR),
    ),
    NotebookSpec(
        "phase5_acceptance",
        "Phase 5 acceptance",
        (
            *WINDOW,
            Parameter("sentinel_task_id", TEXT),
            Parameter("trace_id", TRACE_ID),
            Parameter("traces_path", PATH),
            Parameter("fleet_report", PATH),
            RESULTS_DIR,
        ),
        fail_exits=True,
    ),
    NotebookSpec(
        "observability_crosscheck",
        "Observability cross-check",
        (*WINDOW, RESULTS_DIR),
    ),
)


def notebook_spec(name: str) -> NotebookSpec:
    """The notebook called ``name``."""
    for spec in NOTEBOOKS:
        if spec.name == name:
            return spec
    raise ConfigError(
        f"no notebook named {name!r}; the notebooks are {', '.join(n.name for n in NOTEBOOKS)}"
    )


def refuse_unknown(specs: Iterable[NotebookSpec], names: Iterable[str]) -> None:
    """Refuse parameter ``names`` that none of ``specs`` takes, listing what they take."""
    specs = list(specs)
    taken = {n for spec in specs for n in spec.names}
    unknown = sorted(set(names) - taken)
    if not unknown:
        return
    names_text = ", ".join(unknown)
    if len(specs) == 1:
        takes = ", ".join(specs[0].names)
        raise ConfigError(
            f"notebook {specs[0].name}: unknown parameter(s) {names_text}; it takes {takes}"
        )
    takes = "; ".join(f"{s.name} takes {', '.join(s.names)}" for s in specs)
    raise ConfigError(f"unknown parameter(s) {names_text}: no notebook takes them; {takes}")


def check_values(spec: NotebookSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The declared parameters present in ``values``, each converted by its kind.

    Raises:
        ConfigError: naming the notebook, the parameter, its value and what it allows.
    """
    checked = {}
    for parameter in spec.parameters:
        if parameter.name not in values:
            continue
        value = values[parameter.name]
        try:
            checked[parameter.name] = parameter.kind.parse(value)
        except (ValueError, TypeError, ConfigError) as exc:
            raise ConfigError(
                f"notebook {spec.name}: parameter {parameter.name}={_excerpt(value)} is not "
                f"allowed; it takes {parameter.kind.allowed}"
            ) from exc
    return checked


def checked_parameters(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Notebook ``name``'s parameters taken from ``values``, checked, with what follows from them.

    A notebook calls it on its own namespace (``checked_parameters("trace_audit", globals())``)
    right after its parameters cell; headless runs call it before the notebook starts. Every
    declared parameter must be in ``values``. Returns each parameter converted by its kind,
    plus ``window_start`` and ``window_end``, and ``step_s`` for a notebook whose ``step``
    sets its range queries (within the points cap of :func:`params.report_step`).
    """
    spec = notebook_spec(name)
    missing = [n for n in spec.names if n not in values]
    if missing:
        raise ConfigError(f"notebook {name}: parameter(s) {', '.join(missing)} not given")
    checked = check_values(spec, values)
    try:
        start, end = params.window(checked["start"], checked["end"], checked["hours"])
        checked.update(window_start=start, window_end=end)
        if spec.range_queries is not None:
            queries = spec.range_queries()
            checked["step_s"] = params.report_step(checked["step"], start, end, queries)
    except ConfigError as exc:
        raise ConfigError(f"notebook {name}: {exc}") from exc
    return checked


def notebook_defaults(spec: NotebookSpec) -> dict[str, Any]:
    """The default value of every parameter, as the notebook's parameters cell assigns it."""
    from papermill import inspect_notebook

    declared = inspect_notebook(str(spec.path))
    return {name: ast.literal_eval(p["default"]) for name, p in declared.items()}


def prepare_parameters(spec: NotebookSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` for a headless run of ``spec`` before it starts; return them converted.

    Unknown names are refused; the given values, over the notebook's defaults, must pass
    :func:`checked_parameters` exactly as the notebook will check them.
    """
    refuse_unknown([spec], given)
    converted = check_values(spec, given)
    checked_parameters(spec.name, {**notebook_defaults(spec), **converted})
    return converted


def _excerpt(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
