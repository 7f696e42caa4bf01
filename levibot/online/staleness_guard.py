"""The staleness guard: a feed that stopped turns the kill switch on, audited.

The go-live guide's staleness runbook starts with "kill-switch ON" once any symbol's
features are older than `max_staleness_sec` of open-market time. The server already
forces HOLD on stale features per request; this guard is the persistent stop the
marathon counts as a staleness event. It runs where the drift check runs (every bar in
the replay, `levibot marathon check` live).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from levibot.online.audit import AuditLog
from levibot.online.killswitch import KillSwitch
from levibot.state.paths import Paths

ACTOR = "staleness-guard"


def guard_staleness(
    paths: Paths, staleness: Mapping[str, float | None], *, limit: float, now: pd.Timestamp
) -> str | None:
    """Turn the kill switch on when a symbol is staler than `limit` (or has no data);
    returns "turned_on" / "already_on" when it fired, None when every feed is fresh."""
    late = {s: v for s, v in staleness.items() if v is None or v > limit}
    if not late:
        return None

    def clock() -> pd.Timestamp:
        return pd.Timestamp(now)

    switch = KillSwitch(paths.kill_switch, clock=clock)
    was_on = switch.is_on()
    words = ", ".join(f"{s} {'no data' if v is None else f'{v:.0f} s'}" for s, v in late.items())
    if not was_on:
        switch.set(True, actor=ACTOR, reason=f"stale features ({words} > {limit:.0f} s); re-ingest")
        AuditLog(paths.audit, clock=clock).record(
            ACTOR, "staleness_kill_switch_on", staleness=dict(late), limit=limit
        )
    return "already_on" if was_on else "turned_on"
