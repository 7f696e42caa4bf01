"""Small JSON records of a marathon: its start snapshot, its evaluation, the last check.

One reader (and writer) each, atomic like every state file; the evaluation itself is
written by `levibot.marathon.evaluate` to its pipeline product, and read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from levibot.io import read_json, write_json_atomic
from levibot.state.paths import Paths


def _read(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    payload = read_json(path)
    return payload if isinstance(payload, dict) else None


def write_marathon(paths: Paths, snapshot: dict[str, Any]) -> Path:
    """The marathon's start snapshot (time, releases, settings) that judges it later."""
    return write_json_atomic(paths.marathon, snapshot)


def read_marathon(paths: Paths) -> dict[str, Any] | None:
    return _read(paths.marathon)


def read_evaluation(paths: Paths) -> dict[str, Any] | None:
    return _read(paths.evaluation)


def write_last_check(paths: Paths, record: dict[str, Any]) -> Path:
    return write_json_atomic(paths.last_check, record)


def read_last_check(paths: Paths) -> dict[str, Any] | None:
    return _read(paths.last_check)
