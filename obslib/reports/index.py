"""``rendered/index.html``: every report of a run with its verdict, linked."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from obslib import clock
from obslib.files import write_atomic
from obslib.reports.results import load_results, package_versions
from obslib.reports.run import ReportRun, versions_footer
from obslib.reports.secrets import scrub

_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700", "error": "#8250df"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1f2328; }
table { border-collapse: collapse; width: 100%; } td, th { padding: .5rem .75rem; text-align: left;
border-bottom: 1px solid #d0d7de; } .verdict { color: white; padding: .15rem .5rem; border-radius: 1rem;
font-weight: 600; font-size: .85rem; } .muted { color: #57606a; font-size: .9rem; }
.headline { margin-top: .25rem; } td:nth-child(2) { max-width: 14rem; }
"""


def _window_text(start: str | None, end: str | None) -> str:
    """``2026-12-01 06:00:00 to 2026-12-02 07:04:27`` (UTC, to the second)."""
    import pandas as pd

    if not start or not end:
        return ""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    return f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S}"


def _row(run: ReportRun, out_dir: Path) -> str:
    results = load_results(run.results)
    window = results.get("window") or {}
    span = _window_text(window.get("start"), window.get("end")) if window else ""
    colour = _COLOURS.get(run.verdict, "#57606a")
    headline = str(results.get("headline") or "")
    note = str(results.get("verdict_note") or "")
    below = f"<div class='headline'>{html.escape(headline)}</div>" if headline else ""
    if run.error:
        below += f"<div class='muted'>{html.escape(str(run.error.get('ename')))}: {html.escape(str(run.error.get('evalue'))[:200])}</div>"
    link = html.escape(run.html.relative_to(out_dir).as_posix())
    return (
        f"<tr><td><a href='{link}'>{html.escape(run.title)}</a>{below}</td>"
        f"<td><span class='verdict' style='background:{colour}'>{html.escape(run.verdict)}</span>"
        + (f"<div class='muted'>{html.escape(note)}</div>" if note else "")
        + f"</td><td class='muted'>{html.escape(span)}</td><td class='muted'>{run.seconds:.0f} s</td>"
        f"<td><a href='{html.escape(run.results.relative_to(out_dir).as_posix())}'>results JSON</a></td></tr>"
    )


def write_index(runs: Sequence[ReportRun], out_dir: str | Path, notes: Sequence[str] = ()) -> Path:
    """Write ``index.html`` linking every report with its verdict."""
    out = Path(out_dir).resolve()
    when = clock.now().strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(_row(run, out) for run in runs)
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Daedalus observability reports</title>
<style>{_STYLE}</style></head><body>
<h1>Daedalus observability reports</h1>
<p class="muted">Generated {when}. Verdicts: pass, fail, inconclusive (no data, or partial data, is
never a pass), error (the report failed; open it for the error and what to check). What each
verdict means for each report is in the README ("What the verdicts mean").</p>
<table><thead><tr><th>Report</th><th>Verdict</th><th>Window (UTC)</th><th>Took</th><th></th></tr></thead>
<tbody>
{rows}
</tbody></table>
<h2>Backends</h2><ul>{items}</ul>
{versions_footer(package_versions())}
</body></html>
"""
    path = out / "index.html"
    write_atomic(path, scrub(page))
    return path
