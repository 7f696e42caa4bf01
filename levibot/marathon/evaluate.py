"""The T+48h evaluation: five checks, the promote / extend / rollback rules, evidence.

Every limit below is a field of the threshold model (`levibot.thresholds`, stored in
the canary policy), shown here with its default.

Checks: (1) realised ECE of the candidate <= ece.target 0.05 (<= ece.acceptable 0.06
marginal, still counted as passed but named), (2) feature staleness <= max_staleness_sec
1800 throughout, (3) no feature above its drift warning threshold at the end (PSI 0.2 /
KS 0.15, raised to the feature's ordinary-window baseline: see `levibot.drift`),
(4) >= gate.min_trades 20 shadow (paper) trades of the candidate, (5) API healthy
(no 5xx, health ok at the end).

Rules: PROMOTE when >= gate.promote_min_checks (5) pass, Sharpe_canary >= Sharpe_prod +
gate.sharpe_margin 0.2, MaxDD_canary <= gate.max_dd_ratio 0.9 x MaxDD_prod and no critical
incident (kill-switch activation, critical drift, API error). ROLLBACK when <=
gate.rollback_max_checks (2) checks pass, a critical drift or staleness event happened,
or Sharpe_canary < Sharpe_prod - gate.sharpe_rollback 0.3 -- that last rule only with at
least gate.min_trades canary trades: on fewer, a Sharpe gap is noise (the bootstrap
interval shows it) and the marathon is extended instead. Otherwise EXTEND (to 72h).
Every rule that fired is named in the decision text.

Both paper books are rebuilt as per-bar positions from their trades and scored by the
one backtest implementation (same fees). 48h of 15m bars is little data, so the Sharpe
difference comes with a paired moving-block bootstrap 95% interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from levibot.io import write_json_atomic
from levibot.marathon.decision import Check, decide, rate
from levibot.marathon.evidence import block_bootstrap_sharpe_diff, book_metrics, realised_outcomes
from levibot.models.calibration import expected_calibration_error, reliability_table
from levibot.online.audit import AuditLog
from levibot.online.paper import PaperBook
from levibot.online.shadow_log import ShadowLog
from levibot.registry import load_canary_policy, load_registry
from levibot.settings import Settings
from levibot.state.drift_log import latest_drift
from levibot.state.paths import Paths
from levibot.timeframe import periods_per_year


def evaluate_marathon(
    replay: Settings, summary: dict[str, Any], *, out_path: Path | None = None
) -> dict[str, Any]:
    """Checks, metrics with a bootstrap CI, incidents and the decision, as a dict (and JSON)."""
    paths = Paths.of(replay)
    registry = load_registry(paths.registry)
    if registry.prod is None or registry.candidate is None:
        raise RuntimeError("the marathon needs both a prod and a candidate in the registry")
    limits = load_canary_policy(paths.canary_policy).thresholds
    ece_limits, min_trades = limits.ece, limits.gate.min_trades
    store = paths.store()
    start, end = pd.Timestamp(summary["start"]), pd.Timestamp(summary["end"])
    closes = {}
    full_closes = {}
    for symbol in replay.symbols:
        close = store.read(symbol)["close"]
        full_closes[symbol] = close
        closes[symbol] = close.loc[(close.index >= start) & (close.index < end)]
    shadow = ShadowLog(paths.logs)
    predictions, trades = shadow.predictions(since=start), shadow.trades(since=start)
    predictions = predictions[predictions["bar_time"] < end]  # only this marathon's bars
    trades = trades[trades["exit_time"] < end]
    candidate_rows = predictions["role"] == "candidate"
    predictions = predictions[~candidate_rows | (predictions["model_id"] == registry.candidate.id)]
    books = {}
    for role, entry in (("prod", registry.prod), ("candidate", registry.candidate)):
        open_positions = PaperBook(paths.paper_book(role), label=role).positions()
        books[role] = book_metrics(role, entry, trades, open_positions, closes, replay.timeframe)
    (prod_book, prod_metrics), (cand_book, cand_metrics) = books["prod"], books["candidate"]
    point, low, high = block_bootstrap_sharpe_diff(
        cand_book.returns, prod_book.returns, periods=periods_per_year(replay.timeframe)
    )
    realised_y, realised_p = realised_outcomes(predictions, full_closes, replay.horizon)
    ece_rows = len(realised_y)
    ece = expected_calibration_error(realised_y, realised_p) if ece_rows else float("nan")
    timeline = summary.get("timeline", [])
    staleness = [p["staleness"] for p in timeline if p.get("staleness") is not None]
    max_staleness = max(staleness) if staleness else float("inf")
    psi = latest_drift(paths) or {}
    features = psi.get("features", {})
    psi_values = {f: v["psi"] for f, v in features.items() if v.get("psi") is not None}
    drifted = sorted(f for f, v in features.items() if v.get("status") in ("warning", "critical"))
    max_psi = max(psi_values.values()) if psi_values else float("nan")
    critical_drift = sum(p.get("drift") == "critical" for p in timeline)
    audit = [
        e
        for e in AuditLog(paths.audit).entries()
        if start <= pd.Timestamp(e["ts"]) < end + pd.Timedelta(hours=1)
        and e.get("actor") != "marathon-start"  # the go-live smoke test is no incident
    ]
    kill_on = sum(  # times the switch went from off to on (not every check that found it on)
        1
        for e in audit
        if "kill" in e["action"]
        and e.get("details", {}).get("enabled", True)
        and not e.get("details", {}).get("already_on", False)
    )
    errors = int(summary.get("errors", 0))
    healthy_end = bool(timeline[-1]["ok"]) if timeline else False
    checks = [
        Check(
            "ece",
            ece <= ece_limits.acceptable,
            round(ece, 4) if np.isfinite(ece) else None,
            f"realised ECE of the candidate on {ece_rows} bars: "
            + (
                "pass"
                if ece <= ece_limits.target
                else f"marginal (<= {ece_limits.acceptable})"
                if ece <= ece_limits.acceptable
                else "fail"
            ),
        ),
        Check(
            "staleness",
            max_staleness <= limits.max_staleness_sec,
            round(max_staleness, 1),
            f"worst feature staleness {max_staleness:.0f} s (limit {limits.max_staleness_sec:.0f})",
        ),
        Check(
            "psi",
            bool(psi_values) and not drifted,
            len(drifted),
            (
                f"features above their PSI/KS warning threshold at the end: {drifted or 'none'} "
                f"(PSI > {limits.drift.psi_warning} raised to each feature's ordinary-window "
                f"baseline; max raw PSI "
                f"{max_psi:.2f})"
            )
            if psi_values
            else "no drift result",
        ),
        Check(
            "shadow_trades",
            cand_metrics["trade_count"] >= min_trades,
            cand_metrics["trade_count"],
            f"{cand_metrics['trade_count']} candidate paper trades (need {min_trades})",
        ),
        Check(
            "api_healthy",
            errors == 0 and healthy_end,
            errors,
            f"{errors} server errors over {summary.get('requests', 0)} requests; "
            f"healthy at end: {healthy_end}",
        ),
    ]
    passed = sum(c.passed for c in checks)
    incidents = {
        "kill_switch_activations": kill_on,
        "critical_drift_checks": critical_drift,
        "api_errors": errors,
    }
    decision, fired = decide(
        passed=passed, metrics={"prod": prod_metrics, "candidate": cand_metrics},
        incidents=incidents, max_staleness=max_staleness, thresholds=limits,
    )  # fmt: skip
    significant = np.isfinite(low) and (low > 0 or high < 0)
    evidence = (
        f"Sharpe difference canary - prod = {point:.2f}, "
        f"95% block-bootstrap CI [{low:.2f}, {high:.2f}]: "
        + ("significant" if significant else "not significant (the interval contains 0)")
    )
    expected = {
        role: {m: {"value": metrics.get(m), "rating": rate(m, metrics.get(m))}
               for m in ("sharpe", "win_rate", "max_drawdown", "avg_trade_return")}
        for role, metrics in (("prod", prod_metrics), ("candidate", cand_metrics))
    }  # fmt: skip
    expected["candidate"]["ece"] = {"value": ece, "rating": rate("ece", ece)}
    result = {
        "decision": decision,
        "rules_fired": fired,
        "decision_text": f"{decision}: " + "; ".join(fired) + f". {evidence}.",
        "checks": [c.as_dict() for c in checks],
        "checks_passed": passed,
        "metrics": {"prod": prod_metrics, "candidate": cand_metrics},
        "sharpe_difference": {
            "point": point,
            "ci_low": low,
            "ci_high": high,
            "significant": bool(significant),
        },
        "incidents": incidents,
        "expected_results": expected,
        "models": {"prod": registry.prod.id, "candidate": registry.candidate.id},
        "window": {"start": summary["start"], "end": summary["end"], "bars": summary.get("bars")},
        "psi": psi_values,
        "thresholds": limits.model_dump(),
        "settings": {"horizon": replay.horizon, "timeframe": replay.timeframe,
                     "symbols": list(replay.symbols)},
    }  # fmt: skip
    if out_path is not None:
        write_json_atomic(out_path, result)
    result["_equity"] = {"prod": prod_book.equity, "candidate": cand_book.equity}
    result["_trades"] = trades
    result["_reliability"] = reliability_table(realised_y, realised_p)
    return result
