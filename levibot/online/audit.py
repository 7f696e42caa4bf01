"""Audit log: who changed what on the running server, one JSON line per action.

Each entry is ``{"ts", "actor", "action", "details"}``. Lines are appended under an
exclusive lock (see `levibot.online.jsonl`), so every server process can write to the
same file; entries are fsynced, because an operator action is rare and must not be lost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.online.jsonl import append_jsonl, read_jsonl
from levibot.timeframe import to_utc, utc_now


class AuditLog:
    """Append-only audit trail at `path` (JSON Lines)."""

    def __init__(self, path: Path | str, clock: Callable[[], pd.Timestamp] = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock

    def record(self, actor: str, action: str, **details: Any) -> dict[str, Any]:
        """Append one entry and return it (the file stores NaN/inf details as null)."""
        if not actor or not action:
            raise ValueError("an audit entry needs a non-empty actor and action")
        entry = {
            "ts": to_utc(self.clock()).isoformat(),
            "actor": actor,
            "action": action,
            "details": details,
        }
        append_jsonl(self.path, entry, fsync=True)
        return entry

    def entries(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries in the order written (the last `limit` ones); torn lines are skipped."""
        rows = read_jsonl(self.path)
        return rows if limit is None else rows[-limit:] if limit > 0 else []
