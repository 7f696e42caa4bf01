"""Drift results: the only reader and writer of ``<registry>/drift/``.

One JSON report per check, named after the check's time (so replaying a time overwrites
its own report), plus the newest report again (`Paths.drift_latest`), which the server's status,
``marathon check`` and the evaluation read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from levibot.io import CorruptFileError, read_json, write_json_atomic
from levibot.state.paths import Paths
from levibot.timeframe import to_utc


def report_path(paths: Paths, stamp: pd.Timestamp | str) -> Path:
    return paths.drift_dir / f"{to_utc(stamp):%Y%m%dT%H%M%S}.json"


def write_drift_report(paths: Paths, stamp: pd.Timestamp | str, payload: dict[str, Any]) -> Path:
    """Store one check's report and make it the latest; returns the report's path."""
    report = write_json_atomic(report_path(paths, stamp), payload)
    write_json_atomic(paths.drift_latest, payload)
    return report


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
