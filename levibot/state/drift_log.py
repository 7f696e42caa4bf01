"""Drift results: the only reader and writer of ``<registry>/drift/``.

One JSON report per check, named after the check's time (so replaying a time overwrites
its own report), plus the newest report again (`Paths.drift_latest`), which the server's status,
``marathon check`` and the evaluation read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.io import CorruptFileError, file_lock, read_json, write_json_atomic
from levibot.state.paths import Paths
from levibot.timeframe import to_utc

EVENT_SEVERITIES = ("warning", "critical")  # the statuses `events_total` counts


def report_path(paths: Paths, stamp: pd.Timestamp | str) -> Path:
    return paths.drift_dir / f"{to_utc(stamp):%Y%m%dT%H%M%S}.json"


def write_drift_report(paths: Paths, stamp: pd.Timestamp | str, payload: dict[str, Any]) -> Path:
    """Store one check's report and make it the latest; returns the report's path.

    The report also carries `events_total`, the running count of warning / critical checks
    carried forward from the previous latest: the server exports it as a Prometheus counter
    without reading the whole history, and it survives server restarts. The read-count-write
    is under a lock so two checks finishing together (cron and a replay) both count.
    """
    with file_lock(paths.drift_latest):
        counts = drift_event_counts(paths)
        status = payload.get("status")
        if isinstance(status, str) and status in counts:
            counts[status] += 1
        payload = {**payload, "events_total": counts}
        report = write_json_atomic(report_path(paths, stamp), payload)
        write_json_atomic(paths.drift_latest, payload)
    return report


def drift_event_counts(paths: Paths) -> dict[str, int]:
    """Warning / critical checks so far, from the latest report (0 each before the first
    check, or when the latest is unreadable: a counter reset, which Prometheus tolerates)."""
    return report_event_counts(latest_drift(paths))


def report_event_counts(report: dict[str, Any] | None) -> dict[str, int]:
    """The `events_total` a report carries, each a non-negative int (else 0)."""
    stored = (report or {}).get("events_total")
    stored = stored if isinstance(stored, dict) else {}
    counts: dict[str, int] = {}
    for severity in EVENT_SEVERITIES:
        value = stored.get(severity)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        counts[severity] = int(value) if ok and math.isfinite(value) and value >= 0 else 0
    return counts


def latest_drift(paths: Paths) -> dict[str, Any] | None:
    """The newest report, or None when no check ran yet (or the file is unreadable)."""
    try:
        payload = read_json(paths.drift_latest)
    except (FileNotFoundError, CorruptFileError, OSError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def latest_drift_status(paths: Paths) -> str | None:
    """'ok' / 'warning' / 'critical' / 'insufficient_data' of the newest check, or None."""
    latest = latest_drift(paths)
    status = latest.get("status") if latest else None
    return str(status) if status is not None else None


def drift_history(paths: Paths) -> list[dict[str, Any]]:
    """Every stored report, oldest first (the "latest" copy excluded)."""
    if not paths.drift_dir.is_dir():
        return []
    reports = sorted(p for p in paths.drift_dir.glob("*.json") if p != paths.drift_latest)
    return [read_json(p) for p in reports]
