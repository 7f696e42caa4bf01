"""The audit log appends one entry per action, readable by any process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from levibot.online.audit import AuditLog

NOW = pd.Timestamp("2026-03-01 08:30", tz="UTC")


def test_record_and_entries(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path, clock=lambda: NOW)
    assert log.entries() == []
    written = log.record("ops", "kill_switch", enabled=True, reason="drill")
    log.record("cli", "promote", model_id="m2", metrics={"sharpe": float("nan")})
    assert written == {
        "ts": "2026-03-01T08:30:00+00:00",
        "actor": "ops",
        "action": "kill_switch",
        "details": {"enabled": True, "reason": "drill"},
    }
    entries = AuditLog(path).entries()  # a new instance (another process) reads them
    assert [e["action"] for e in entries] == ["kill_switch", "promote"]
    assert entries[0] == written
    assert entries[1]["details"] == {"model_id": "m2", "metrics": {"sharpe": None}}
    assert [e["action"] for e in log.entries(limit=1)] == ["promote"]
    assert log.entries(limit=0) == []
    assert len(path.read_text().splitlines()) == 2


def test_naive_clock_is_utc_and_default_clock_works(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", clock=lambda: pd.Timestamp("2026-03-01 08:30"))
    assert log.record("a", "b")["ts"] == "2026-03-01T08:30:00+00:00"
    entry = AuditLog(tmp_path / "audit.jsonl").record("a", "c")
    assert pd.Timestamp(entry["ts"]).tzinfo is not None


def test_actor_and_action_are_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="actor"):
        AuditLog(tmp_path / "audit.jsonl").record("", "x")
