"""The kill switch: one JSON file every server process checks before acting.

The file holds ``{"enabled", "changed_at", "actor", "reason"}``; enabled means stop
(no new entries / no canary flow, as the caller decides). `KillSwitch.is_on` is on the
hot path, so it only stats the file and re-reads it when its (inode, mtime, size)
changed. A missing file is off; a file that cannot be read or parsed is ON (fail safe),
with the problem in ``KillState.error``. `KillSwitch.public_state` is the same state for
an unauthenticated endpoint: a corrupt file's reason is a fixed text without its path.
Writes are atomic (temp file + ``os.replace``) under the same file lock as the registry,
so readers never see half a file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from levibot.io import CorruptFileError, file_lock, format_errors, read_json, write_json_atomic
from levibot.timeframe import to_utc, utc_now


class KillState(BaseModel):
    """What the kill switch says; `error` is set when the file was unreadable (then ON)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = False
    changed_at: datetime | None = None
    actor: str | None = None
    reason: str | None = None
    error: str | None = None


class _Stored(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)

    enabled: bool
    changed_at: datetime | None = None
    actor: str | None = None
    reason: str | None = None


_Stamp = tuple[int, int, int]
OFF = KillState()
# Shown instead of KillState.error (which names the file's absolute path) to anyone.
FORCED_ON_REASON = "kill_switch file unreadable: forced on"


class KillSwitch:
    """A kill switch persisted at `path`, shared by every process that opens that file."""

    def __init__(self, path: Path | str, clock: Callable[[], pd.Timestamp] = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock
        self._cache: tuple[_Stamp | None, KillState] | None = None
        self._read_lock = threading.Lock()

    def is_on(self) -> bool:
        """True when trading must stop; one ``stat`` unless the file changed."""
        return self.state().enabled

    def public_state(self) -> dict[str, Any]:
        """JSON-ready ``{"enabled", "reason", "actor", "changed_at", "forced"}`` for health
        checks: `forced` is true when an unreadable file forced it on, and then `reason` is
        `FORCED_ON_REASON` (no file-system path, no parser text). As cheap as `is_on`."""
        state = self.state()
        if state.error is not None:
            return {
                "enabled": True,
                "reason": FORCED_ON_REASON,
                "actor": None,
                "changed_at": None,
                "forced": True,
            }
        changed_at = state.changed_at.isoformat() if state.changed_at is not None else None
        return {
            "enabled": state.enabled,
            "reason": state.reason,
            "actor": state.actor,
            "changed_at": changed_at,
            "forced": False,
        }

    def state(self) -> KillState:
        """The current state (cached until the file changes)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._cache = (None, OFF)
            return OFF
        except OSError as exc:
            return KillState(enabled=True, error=f"{self.path}: cannot stat ({exc})")
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cache = self._cache
        if cache is not None and cache[0] == stamp:
            return cache[1]
        with self._read_lock:
            state = self._read()
            self._cache = (stamp, state)
        return state

    def _read(self) -> KillState:
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return OFF
        except (CorruptFileError, OSError, UnicodeDecodeError) as exc:
            return KillState(enabled=True, error=f"{self.path}: unreadable, failing safe: {exc}")
        try:
            stored = _Stored.model_validate(data)
        except ValidationError as exc:
            problems = format_errors(exc, limit=3)
            return KillState(enabled=True, error=f"{self.path}: invalid, failing safe: {problems}")
        if not isinstance(data.get("enabled"), bool):
            return KillState(
                enabled=True,
                error=f"{self.path}: 'enabled' is not true/false, failing safe",
            )
        return KillState(**stored.model_dump())

    def set(self, enabled: bool, *, actor: str, reason: str) -> KillState:
        """Turn the switch on or off for every process; returns the new state."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {enabled!r}")
        payload: dict[str, Any] = {
            "enabled": enabled,
            "changed_at": to_utc(self.clock()).isoformat(),
            "actor": actor,
            "reason": reason,
        }
        with file_lock(self.path):
            write_json_atomic(self.path, payload)
        self._cache = None
        return self.state()
