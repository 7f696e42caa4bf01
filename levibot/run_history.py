"""Run history: every pipeline build that reached the T+48h evaluation, kept under an id.

Each build used to overwrite the previous reports, so two runs could not be compared.
Now a build's reports, its evaluation JSON and a `run.json` record (decision, checks
with values, models, data window, settings, git sha, start and duration, what each task
did) are copied to ``reports/runs/<run-id>/``; `reports/index.html` shows the latest run
and lists the earlier ones. `compare_runs` lines two records up for `levibot runs compare`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.io import CorruptFileError, read_json, write_json_atomic
from levibot.state.paths import Paths
from levibot.timeframe import utc_now


class UnknownRunError(RuntimeError):
    """No recorded run (or several) answers to the id given."""


CANARY_FIELDS = ("configured_fraction", "served_fraction", "closed_reasons")


def git_revision(root: Path | str) -> str:
    """Short sha of the checkout (with '+dirty' for uncommitted changes), or 'unknown'."""

    def git(*args: str) -> str:
        run = subprocess.run(
            ["git", *args], cwd=root, text=True, capture_output=True, check=True, timeout=10
        )
        return run.stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty.strip() else "")


def make_record(
    evaluation: dict[str, Any],
    *,
    tasks: Sequence[dict[str, Any]] = (),
    revision: str = "unknown",
    finished: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """What a run page and a comparison need from one build (JSON-ready)."""
    finished = finished or utc_now()
    seconds = float(sum(t.get("seconds") or 0.0 for t in tasks))
    started = finished - pd.Timedelta(seconds=seconds)
    run_id = f"{finished:%Y%m%dT%H%M%SZ}-{revision.split('+')[0]}"
    return {
        "run_id": run_id,
        "started_at": started.floor("s").isoformat(),
        "finished_at": finished.floor("s").isoformat(),
        "duration_sec": round(seconds, 1),
        "git": revision,
        "decision": evaluation.get("decision"),
        "decision_text": evaluation.get("decision_text"),
        "rules_fired": list(evaluation.get("rules_fired", [])),
        "checks": [
            {k: c.get(k) for k in ("name", "critical", "status", "value", "detail")}
            for c in evaluation.get("checks", [])
        ],
        "checks_passed": evaluation.get("checks_passed"),
        "models": dict(evaluation.get("models", {})),
        "metrics": dict(evaluation.get("metrics", {})),
        "window": dict(evaluation.get("window", {})),
        "settings": dict(evaluation.get("settings", {})),
        "canary": {k: evaluation.get("canary", {}).get(k) for k in CANARY_FIELDS},
        "tasks": [dict(t) for t in tasks],
    }


def unrecorded(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The page record of an evaluation outside a build (a notebook run by hand): no run
    id, time or tasks, since nothing was kept."""
    record = make_record(evaluation)
    for key in ("run_id", "started_at", "finished_at", "duration_sec", "git", "tasks"):
        record.pop(key)
    return record


def save_run(paths: Paths, record: dict[str, Any]) -> Path:
    """Copy the build's reports and evaluation next to its record; returns the folder."""
    target = paths.run_record(record["run_id"])
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    for report in paths.reports_dir.glob("*.html"):
        if report != paths.report_index:
            shutil.copy2(report, folder / report.name)
    if paths.evaluation.exists():
        shutil.copy2(paths.evaluation, folder / paths.evaluation.name)
    write_json_atomic(target, record)  # last: a folder with a record is complete
    return folder


def list_runs(paths: Paths) -> list[dict[str, Any]]:
    """Every recorded run, newest first; an unreadable record is skipped."""
    runs = []
    if paths.report_runs.is_dir():
        for folder in paths.report_runs.iterdir():
            try:
                record = read_json(paths.run_record(folder.name))
            except (OSError, CorruptFileError, ValueError):
                continue
            if isinstance(record, dict) and record.get("run_id") == folder.name:
                runs.append(record)
    return sorted(runs, key=lambda r: r["finished_at"], reverse=True)


def find_run(paths: Paths, run_id: str) -> dict[str, Any]:
    """One run by id, or by a unique prefix ('latest' = the newest)."""
    runs = list_runs(paths)
    if run_id == "latest" and runs:
        return runs[0]
    exact = [r for r in runs if r["run_id"] == run_id]
    matches = exact or [r for r in runs if run_id and r["run_id"].startswith(run_id)]
    if len(matches) != 1:
        known = ", ".join(r["run_id"] for r in runs[:10]) or "none yet (run `make run`)"
        what = "matches no run" if not matches else "matches several runs"
        raise UnknownRunError(f"run id {run_id!r} {what}; recorded runs: {known}")
    return matches[0]


def _check_value(record: dict[str, Any], name: str) -> str:
    check = next((c for c in record["checks"] if c["name"] == name), None)
    if check is None:
        return "-"
    value = check.get("value")
    shown = f" {value:.4g}" if isinstance(value, int | float) else ""
    return f"{check['status']}{shown}"


def _metric(record: dict[str, Any], role: str, name: str) -> str:
    value = record["metrics"].get(role, {}).get(name)
    return "-" if value is None else f"{value:.4g}"


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, run A, run B) rows: decision, models, window, every check, key metrics."""
    rows = [
        ("run", a["run_id"], b["run_id"]),
        ("git", a["git"], b["git"]),
        ("decision", str(a["decision"]), str(b["decision"])),
        ("checks passed", str(a["checks_passed"]), str(b["checks_passed"])),
    ]
    for role in ("prod", "candidate"):
        rows.append((f"{role} model", a["models"].get(role) or "-", b["models"].get(role) or "-"))
    rows.append(("window", _window(a), _window(b)))
    names = [c["name"] for c in a["checks"]] + [
        c["name"] for c in b["checks"] if c["name"] not in {x["name"] for x in a["checks"]}
    ]
    rows += [(f"check {name}", _check_value(a, name), _check_value(b, name)) for name in names]
    for role in ("candidate", "prod"):
        for metric in ("sharpe", "max_drawdown", "total_return", "trade_count", "win_rate"):
            rows.append((f"{role} {metric}", _metric(a, role, metric), _metric(b, role, metric)))
    return rows


def _window(record: dict[str, Any]) -> str:
    window = record.get("window", {})
    return f"{window.get('start', '?')} .. {window.get('end', '?')}"
