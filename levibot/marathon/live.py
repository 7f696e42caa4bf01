"""A live marathon's summary: what the evaluation needs, gathered from the running one."""

from __future__ import annotations

from typing import Any

import pandas as pd

from levibot.online.shadow_log import ShadowLog
from levibot.settings import Settings
from levibot.state.paths import Paths
from levibot.timeframe import utc_now


def live_summary(
    settings: Settings, *, url: str, now: pd.Timestamp | None = None
) -> dict[str, Any]:
    """What `evaluate_marathon` needs, gathered from a live marathon (not a replay).

    Window: from the start snapshot written by `levibot marathon start` to `now`; the
    timeline holds every stored drift check of that window plus the server's health
    now; API errors are the ERROR lines of the managed server's log.
    """
    import httpx

    from levibot.state.drift_log import drift_history
    from levibot.state.records import read_marathon
    from levibot.timeframe import floor_to_bar, timeframe_delta

    paths = Paths.of(settings)
    snapshot = read_marathon(paths)
    if snapshot is None:
        raise RuntimeError(
            f"no marathon snapshot at {paths.marathon}: run `levibot marathon start`"
        )
    now = utc_now() if now is None else pd.Timestamp(now)
    start = floor_to_bar(snapshot["started_at"], settings.timeframe)
    end = floor_to_bar(now, settings.timeframe)
    timeline = [
        {"bar": report["timestamp"], "drift": report["status"]}
        for report in drift_history(paths)
        if start <= pd.Timestamp(report["timestamp"]) <= now
    ]
    try:
        health = httpx.get(f"{url}/healthz", timeout=10).json()
        timeline.append({
            "bar": end.isoformat(), "ok": bool(health["ok"]), "kill_switch": health["kill_switch"],
            "staleness": health["feature_staleness_sec"]["worst"],
            "status": health.get("status"), "problems": health.get("problems", []),
        })  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError):
        timeline.append(
            {"bar": end.isoformat(), "ok": False, "kill_switch": None, "staleness": None}
        )
    log = paths.server_log
    errors = log.read_text(errors="replace").count("ERROR") if log.exists() else 0
    served = ShadowLog(paths.logs).predictions(since=start)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "bars": int((end - start) / timeframe_delta(settings.timeframe)),
        "requests": int(served["served"].sum()) if len(served) else 0,
        "errors": errors,
        "timeline": timeline,
    }
