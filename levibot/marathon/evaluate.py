"""The T+48h evaluation: the five checks, the paired evidence, power, the decision.

Evidence, all out of sample on the marathon's bars:

* paired scoring (`levibot.marathon.scoring`): both releases' policy-model P(up) on
  every (symbol, bar), log loss and Brier, Diebold-Mariano with a HAC variance and a
  fixed-b critical value; the minimum detectable effect and the hours the observed
  effect would still need;
* both paper books rebuilt as per-bar positions (open ones included) and scored by the
  one backtest (same fees); Sharpe_c - Sharpe_p and MaxDD_c - 0.9 x MaxDD_p with a
  paired moving-block bootstrap interval (block >= the books' holding period);
* the five checks of the go-live guide (critical: ECE, staleness, drift, API health;
  important: shadow data), each pass / fail / inconclusive; ECE judged against its
  noise level (`levibot.marathon.calibration_check`), staleness over the whole timeline;
* incidents (kill-switch activations, critical drift checks, staleness events, API
  errors) and the canary's served fraction with the reasons it was closed.

`levibot.marathon.decision` turns that into PROMOTE / EXTEND / ROLLBACK.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from levibot.io import finite_or_null, write_json_atomic
from levibot.marathon.calibration_check import calibration_check
from levibot.marathon.decision import (
    Check,
    decide,
    drift_check,
    last_judged,
    rate,
    status_of,
)
from levibot.marathon.evidence import book_block_length, book_metrics, paired_book_intervals
from levibot.marathon.scoring import paired_frame, paired_scores
from levibot.models.calibration import reliability_table
from levibot.online.audit import AuditLog
from levibot.online.paper import PaperBook
from levibot.online.shadow_log import ShadowLog
from levibot.registry import load_canary_policy, load_registry
from levibot.settings import Settings
from levibot.state.drift_log import drift_history
from levibot.state.paths import Paths
from levibot.timeframe import periods_per_year, timeframe_delta


class MarathonError(RuntimeError):
    """The marathon cannot be evaluated (no candidate, no closed bar); the message says why."""


def _closes(replay: Settings, start: pd.Timestamp, end: pd.Timestamp):
    store = Paths.of(replay).store()
    full, window = {}, {}
    for symbol in replay.symbols:
        frame = store.read(symbol)
        if frame is None or frame.empty:
            raise MarathonError(f"no features stored for {symbol}: nothing to evaluate")
        close = frame["close"]
        full[symbol] = close
        window[symbol] = close.loc[(close.index >= start) & (close.index < end)]
    if not any(len(c) for c in window.values()):
        raise MarathonError(
            f"the marathon window [{start}, {end}) holds no closed bar: nothing to evaluate yet"
        )
    return full, window


def last_psi(reports: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each feature's PSI at the last drift check that had enough rows."""
    last = last_judged(reports)
    return {f: v.get("psi") for f, v in (last or {}).get("features", {}).items()}


def _kill_switch_activations(audit: list[dict]) -> int:
    """Times the switch went from off to on (not every check that found it on)."""
    return sum(
        1
        for e in audit
        if "kill" in e["action"]
        and e.get("details", {}).get("enabled", True)
        and not e.get("details", {}).get("already_on", False)
    )


def canary_evidence(predictions: pd.DataFrame, timeline: list[dict], fraction: float) -> dict:
    """Share of served requests the canary answered, and why it was closed when it was."""
    served = predictions[predictions["served"].astype(bool)] if len(predictions) else predictions
    requests = len(served)
    canary = int((served["variant"] == "canary").sum()) if requests else 0
    reasons = Counter(
        p["canary_reason"]
        for p in timeline
        if p.get("canary_open") is False and p.get("canary_reason")
    )
    return {
        "configured_fraction": fraction,
        "served_requests": requests,
        "canary_requests": canary,
        "served_fraction": canary / requests if requests else None,
        "closed_checks": int(sum(reasons.values())),
        "closed_reasons": dict(reasons),
    }


def evaluate_marathon(
    replay: Settings, summary: dict[str, Any], *, out_path: Path | None = None
) -> dict[str, Any]:
    """Checks, paired evidence with intervals and power, incidents and the decision."""
    paths = Paths.of(replay)
    registry = load_registry(paths.registry)
    if registry.prod is None or registry.candidate is None:
        raise MarathonError("the marathon needs both a prod and a candidate in the registry")
    policy = load_canary_policy(paths.canary_policy)
    limits = policy.thresholds
    start, end = pd.Timestamp(summary["start"]), pd.Timestamp(summary["end"])
    full_closes, closes = _closes(replay, start, end)
    bar_hours = timeframe_delta(replay.timeframe) / pd.Timedelta(hours=1)

    shadow = ShadowLog(paths.logs)
    predictions, trades = shadow.predictions(since=start), shadow.trades(since=start)
    if len(predictions):
        predictions = predictions[predictions["bar_time"] < end]
    if len(trades):
        trades = trades[trades["exit_time"] < end]
    problems: list[str] = []
    if len(predictions):
        stale_ids = (predictions["role"] == "candidate") & (
            predictions["model_id"] != registry.candidate.id
        )
        if stale_ids.any():
            problems.append(
                f"{int(stale_ids.sum())} predictions came from an earlier candidate and were "
                "left out"
            )
        predictions = predictions[~stale_ids]

    # ---- paired scoring and calibration
    paired, found = paired_frame(predictions, full_closes, horizon=replay.horizon)
    problems += found
    scores = paired_scores(paired, horizon=replay.horizon, bar_hours=bar_hours)
    calibration = calibration_check(
        paired["y"].to_numpy(float),
        paired["p_candidate"].to_numpy(float),
        paired["bar_time"].to_numpy(),
        target=limits.ece.target,
        acceptable=limits.ece.acceptable,
    )

    # ---- the paper books, per bar
    books = {}
    for role, entry in (("prod", registry.prod), ("candidate", registry.candidate)):
        open_positions = PaperBook(paths.paper_book(role), label=role).positions()
        books[role] = book_metrics(role, entry, trades, open_positions, closes, replay.timeframe)
    (prod_book, prod_metrics), (cand_book, cand_metrics) = books["prod"], books["candidate"]
    block = book_block_length(prod_book.positions, cand_book.positions)
    intervals = paired_book_intervals(
        cand_book.returns,
        prod_book.returns,
        periods=periods_per_year(replay.timeframe),
        dd_ratio=limits.gate.max_dd_ratio,
        block=block,
    )

    # ---- timeline: staleness, drift, health
    timeline = summary.get("timeline", [])
    staleness = [p["staleness"] for p in timeline if p.get("staleness") is not None]
    worst = max(staleness) if staleness else None
    staleness_events = sum(s > limits.max_staleness_sec for s in staleness)
    drift_reports = [
        r
        for r in drift_history(paths)
        if start <= pd.Timestamp(r["timestamp"]) <= end + pd.Timedelta(hours=1)
    ]
    critical_drift = sum(r.get("status") == "critical" for r in drift_reports)
    audit = [
        e
        for e in AuditLog(paths.audit).entries()
        if start <= pd.Timestamp(e["ts"]) < end + pd.Timedelta(hours=1)
        and e.get("actor") != "marathon-start"  # the go-live smoke test is no incident
    ]
    errors = int(summary.get("errors", 0))
    healthy_end = bool(timeline[-1].get("ok")) if timeline else False
    min_trades = limits.gate.min_trades
    checks = [
        Check(
            "ece",
            calibration.status
            if calibration.status == "inconclusive"
            else status_of(calibration.passed),
            None if not np.isfinite(calibration.ece) else round(calibration.ece, 4),
            calibration.detail,
        ),
        Check(
            "staleness",
            status_of(None if worst is None else staleness_events == 0),
            None if worst is None else round(worst, 1),
            "no staleness reading in the window"
            if worst is None
            else f"worst open-market feature staleness {worst:.0f} s over {len(staleness)} "
            "readings "
            f"(limit {limits.max_staleness_sec:.0f} s); {staleness_events} readings above it",
        ),
        drift_check(drift_reports),
        Check(
            "shadow_data",
            status_of(cand_metrics["trade_count"] >= min_trades),
            cand_metrics["trade_count"],
            f"{cand_metrics['trade_count']} closed candidate paper trades (need {min_trades}); "
            f"{len(paired)} paired scored bars",
        ),
        Check(
            "api_healthy",
            status_of(errors == 0 and healthy_end),
            errors,
            f"{errors} server errors over {summary.get('requests', 0)} requests; "
            f"{'healthy' if healthy_end else 'not healthy'} at the end",
        ),
    ]
    incidents = {
        "kill_switch_activations": _kill_switch_activations(audit),
        "critical_drift_checks": critical_drift,
        "staleness_events": staleness_events,
        "worst_staleness": worst,
        "api_errors": errors,
    }
    evidence = {
        "log_loss": scores["log_loss"].as_dict(),
        "brier": scores["brier"].as_dict(),
        "test": "Diebold-Mariano on the per-bar mean loss difference (candidate - prod), "
        "Bartlett HAC variance with Andrews' bandwidth, fixed-b critical value",
        "paired_bars": int(paired["bar_time"].nunique()) if len(paired) else 0,
        "paired_rows": len(paired),
        **intervals,
        "calibration": calibration.as_dict(),
    }
    decision, fired = decide(
        checks=checks, evidence=evidence, incidents=incidents, thresholds=limits
    )
    canary = canary_evidence(predictions, timeline, policy.fraction)
    notes = list(problems)
    if canary["served_fraction"] == 0:
        notes.append(
            "the canary served no request: "
            + (", ".join(canary["closed_reasons"]) or "it was closed or disabled")
            + " -- the evidence is from shadow predictions only"
        )
    log_loss = scores["log_loss"]
    sharpe = intervals["sharpe_difference"]
    sharpe_mde = (
        (sharpe["ci_high"] - sharpe["ci_low"]) / 2 / 1.96 * 2.8
        if np.isfinite(sharpe["ci_low"])
        else None
    )
    power = {
        "score": "log_loss",
        "min_detectable_effect": log_loss.min_detectable_effect,
        "observed_effect": log_loss.difference,
        "hours_needed": log_loss.hours_needed,
        "sharpe_min_detectable_effect": sharpe_mde,
        "power": 0.8,
        "level": 0.05,
    }
    expected = {
        role: {
            m: {
                "value": metrics.get(m),
                "rating": rate(
                    m, metrics.get(m), trades=metrics["trade_count"], min_trades=min_trades
                ),
            }
            for m in ("sharpe", "win_rate", "max_drawdown", "avg_trade_return")
        }
        for role, metrics in (("prod", prod_metrics), ("candidate", cand_metrics))
    }
    expected["candidate"]["ece"] = {
        "value": calibration.ece,
        "rating": rate("ece", calibration.ece),
    }
    passed = sum(c.passed for c in checks)
    text = f"{decision}: " + "; ".join(fired) + "."
    if notes:
        text += " Note: " + "; ".join(notes) + "."
    result = {
        "decision": decision,
        "rules_fired": fired,
        "decision_text": text,
        "notes": notes,
        "checks": [c.as_dict() for c in checks],
        "checks_passed": passed,
        "evidence": evidence,
        "power": power,
        "metrics": {"prod": prod_metrics, "candidate": cand_metrics},
        "sharpe_difference": sharpe,
        "incidents": incidents,
        "canary": canary,
        "expected_results": expected,
        "models": {"prod": registry.prod.id, "candidate": registry.candidate.id},
        "window": {"start": summary["start"], "end": summary["end"], "bars": summary.get("bars")},
        "psi": last_psi(drift_reports),
        "thresholds": limits.model_dump(),
        "settings": {
            "horizon": replay.horizon,
            "timeframe": replay.timeframe,
            "symbols": list(replay.symbols),
        },
    }
    if out_path is not None:
        write_json_atomic(out_path, finite_or_null(result))
    result["_equity"] = {"prod": prod_book.equity, "candidate": cand_book.equity}
    result["_trades"] = trades
    result["_reliability"] = reliability_table(
        paired["y"].to_numpy(float), paired["p_candidate"].to_numpy(float)
    )
    return result
