"""`reports/index.html` as a run page: the decision first, then why, then the reports.

It used to be an unstyled alphabetical list under one dense sentence. Now it shows a
decision badge, every check with its value and status, the rules that fired, the models,
data window, git sha, start and duration, the canary's served share, the reports in
pipeline order with one status line each, and the earlier runs (`levibot.run_history`).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from levibot.io import write_text_atomic

BADGE = {"PROMOTE": "#1a7f37", "EXTEND": "#9a6700", "ROLLBACK": "#cf222e"}
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
.badge{display:inline-block;color:#fff;font-weight:700;padding:.25em .8em;border-radius:.4em}
table{border-collapse:collapse;margin:.5em 0 1.5em;display:block;overflow-x:auto}
th,td{border-bottom:1px solid #d0d7de;padding:.3em .7em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#cf222e;font-weight:600}.pass{color:#1a7f37}.warn{background:#fff8c5;padding:.5em 1em}
small{color:#57606a}
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _checks(record: dict[str, Any]) -> str:
    rows = []
    for check in record.get("checks", []):
        status = str(check.get("status"))
        css = "fail" if status == "fail" else "pass" if status == "pass" else ""
        name = escape(str(check.get("name"))) + (" (critical)" if check.get("critical") else "")
        rows.append(
            f'<tr><td>{name}</td><td class="{css}">{escape(status)}</td>'
            f"{_cell(check.get('value'))}<td>{escape(str(check.get('detail', '')))}</td></tr>"
        )
    head = "<tr><th>check</th><th>status</th><th>value</th><th>against its limit</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _reports(record: dict[str, Any], present: set[str], prefix: str = "") -> str:
    """Links in pipeline order, each with what its task did in this build."""
    tasks = record.get("tasks") or [{"name": Path(n).stem} for n in sorted(present)]
    items = []
    for task in tasks:
        if "report" in task and task["report"] is None:
            continue  # a function task (fetch-<SYMBOL>): timed in run.json, no report
        name = task.get("report") or f"{task['name']}.html"
        if name not in present:
            continue
        if "ran" in task:
            status = f"ran in {task['seconds']:.1f} s" if task["ran"] else "up to date, not re-run"
        else:
            status = ""
        label = escape(task["name"].replace("_", " "))
        items.append(f'<li><a href="{prefix}{name}">{label}</a> <small>{status}</small></li>')
    return "<ol>" + "".join(items) + "</ol>"


def _picture(index: Path, picture: Path | None) -> str:
    """A link to the task graph, when it was drawn next to the page."""
    if picture is None or not picture.exists() or picture.parent != index.parent:
        return ""
    name = escape(picture.name)
    return f'<p><a href="{name}">Task graph</a> ({name}, drawn by levibot dag)</p>'


def _canary_warning(record: dict[str, Any]) -> str:
    canary = record.get("canary") or {}
    if canary.get("configured_fraction") and not canary.get("served_fraction"):
        reasons = "; ".join(
            f"{k} ({v} checks)" for k, v in (canary.get("closed_reasons") or {}).items()
        )
        return (
            f'<p class="warn">The canary was configured at {canary["configured_fraction"]:.0%} '
            f"but served no request: {escape(reasons or 'closed')}. The evidence comes from "
            "shadow predictions only.</p>"
        )
    return ""


def _earlier(runs: Sequence[dict[str, Any]]) -> str:
    if not runs:
        return "<p><small>No earlier runs recorded.</small></p>"
    rows = []
    for run in runs:
        link = f"runs/{escape(run['run_id'])}/marathon_evaluation.html"
        rows.append(
            f'<tr><td><a href="{link}">{escape(run["run_id"])}</a></td>'
            f"<td>{escape(str(run.get('decision')))}</td>{_cell(run.get('checks_passed'))}"
            f"<td>{escape(str((run.get('models') or {}).get('candidate')))}</td>"
            f"<td>{escape(str(run.get('git')))}</td></tr>"
        )
    head = (
        "<tr><th>run</th><th>decision</th><th>checks passed</th><th>candidate</th><th>git</th></tr>"
    )
    return (
        f"<table>{head}{''.join(rows)}</table>"
        "<p><small>Compare two runs: <code>levibot runs compare A B</code></small></p>"
    )


def write_run_page(
    index: Path | str, record: dict[str, Any], *, earlier: Sequence[dict[str, Any]] = (),
    include: Sequence[str] = (), picture: Path | None = None,
) -> Path:  # fmt: skip
    """The decision-first index page; `include` names reports written after this call,
    `picture` the task graph's PNG (linked when it exists next to the page)."""
    index = Path(index)
    present = {p.name for p in index.parent.glob("*.html")} | set(include)
    present.discard(index.name)
    decision = str(record.get("decision") or "no decision")
    colour = BADGE.get(decision, "#57606a")
    models = record.get("models") or {}
    window = record.get("window") or {}
    settings = record.get("settings") or {}
    span = (
        f"{window.get('start', '?')} .. {window.get('end', '?')} ({window.get('bars', '?')} bars)"
    )
    market = f"{', '.join(settings.get('symbols', []))} / {settings.get('timeframe', '?')}"
    facts = [
        ("run", record.get("run_id", "not recorded (notebook run outside a build)")),
        ("git", record.get("git", "unknown")),
        ("started", record.get("started_at", "")),
        ("duration", f"{record['duration_sec']:.0f} s" if record.get("duration_sec") else ""),
        ("prod model", models.get("prod")),
        ("candidate model", models.get("candidate")),
        ("data window", span),
        ("symbols / timeframe", market),
    ]
    rules = "".join(f"<li>{escape(rule)}</li>" for rule in record.get("rules_fired", []))
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>LeviBot run: {escape(decision)}</title><style>{STYLE}</style></head><body>"
        f'<h1>LeviBot run <span class="badge" style="background:{colour}">'
        f"{escape(decision)}</span></h1>"
        f"<p>{record.get('checks_passed', '?')}/5 checks passed. Why:</p><ul>{rules}</ul>"
        f"{_canary_warning(record)}{_checks(record)}"
        f"{_table(('', ''), facts)}"
        f"<h2>Reports, in pipeline order</h2>{_reports(record, present)}{_picture(index, picture)}"
        f"<h2>Earlier runs</h2>{_earlier(earlier)}</body></html>\n"
    )
    return write_text_atomic(index, html)
