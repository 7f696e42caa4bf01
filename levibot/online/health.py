"""What `/healthz` says about a serving process: ok, degraded or unavailable, and why.

unavailable: it cannot predict (no prod model, or a symbol without features). degraded:
it predicts, but something was refused or is unreadable (a registry change, the weights,
a paper book, a kill-switch file that forced it on), so what it serves may not be what
the files say. Each reason is a sentence in `problems`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from levibot.io import CorruptFileError
from levibot.online.clock import system_clock

if TYPE_CHECKING:
    from levibot.online.service import PredictionService
    from levibot.online.snapshot import Snapshot


def feature_staleness(service: PredictionService, snapshot: Snapshot) -> dict[str, float | None]:
    """Seconds since each symbol's newest bar closed; None when it has no features."""
    out: dict[str, float | None] = {}
    for symbol in snapshot.symbols or service.settings.symbols:
        try:
            out[symbol] = service.feed.staleness_seconds(symbol)
        except (FileNotFoundError, IndexError, CorruptFileError):
            out[symbol] = None
    return out


def health_report(service: PredictionService) -> dict[str, Any]:
    """The /healthz body (file paths are redacted by the HTTP layer)."""
    snapshot = service.snapshot()
    staleness = feature_staleness(service, snapshot)
    known = [v for v in staleness.values() if v is not None]
    missing = len(known) < len(staleness)
    can_predict = snapshot.prod is not None and bool(staleness) and not missing
    is_open, why = service.canary_open(snapshot)
    kill = service.kill_switch.public_state()
    problems = _problems(service, snapshot, staleness)
    if kill["forced"]:
        problems.append(kill["reason"])
    status = "unavailable" if not can_predict else ("degraded" if problems else "ok")
    return {
        "status": status,
        "ok": status == "ok",
        "problems": problems,
        "prod_model_id": snapshot.prod.model_id if snapshot.prod else None,
        "candidate_model_id": snapshot.candidate.model_id if snapshot.candidate else None,
        "feature_staleness_sec": {
            "worst": None if missing or not known else max(known),
            "per_symbol": staleness,
        },
        "kill_switch": kill["enabled"],
        "kill_switch_state": kill,
        "canary": {
            "enabled": snapshot.canary.enabled,
            "fraction": snapshot.canary.fraction,
            "open": is_open,
            "reason": why,
        },
        "registry_status": service.watcher.status,
        "uptime_sec": time.time() - service.started,
        "clock": "live" if service.clock is system_clock else "replay",
        "now": service.clock().isoformat(),
    }


def _problems(
    service: PredictionService, snapshot: Snapshot, staleness: dict[str, float | None]
) -> list[str]:
    problems = []
    if snapshot.prod is None:
        problems.append(f"no prod model loaded ({service.watcher.status})")
    missing = sorted(s for s, v in staleness.items() if v is None)
    if missing or not staleness:
        problems.append(f"no features stored for {', '.join(missing) or 'any symbol'}")
    if snapshot.prod is not None and service.watcher.status != "ok":
        problems.append(service.watcher.status)
    for role, book in service.books.items():
        try:
            book.state()
        except (CorruptFileError, OSError) as exc:
            problems.append(
                f"paper book {role} unreadable ({type(exc).__name__}): paper trading is off"
            )
    return problems
