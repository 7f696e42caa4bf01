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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from levibot.backtest import combine_books, run_backtest
from levibot.io import write_json_atomic
from levibot.models.calibration import expected_calibration_error, reliability_table
from levibot.online.audit import AuditLog
from levibot.online.paper import PaperBook
from levibot.online.shadow_log import ShadowLog
from levibot.registry import ModelEntry, load_canary_policy, load_registry
from levibot.settings import Settings
from levibot.state.drift_log import latest_drift
from levibot.state.paths import Paths
from levibot.thresholds import Thresholds
from levibot.timeframe import periods_per_year

# the runbook's "Expected results": (target, good, excellent); MaxDD and ECE: lower is better
EXPECTED = {
    "sharpe": (1.0, 1.5, 2.0),
    "win_rate": (0.50, 0.55, 0.60),
    "max_drawdown": (0.15, 0.10, 0.05),
    "avg_trade_return": (0.0005, 0.001, 0.002),
    "ece": (0.06, 0.05, 0.03),
}
LOWER_IS_BETTER = {"max_drawdown", "ece"}


@dataclass
class Check:
    name: str
    passed: bool
    value: float | int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "detail": self.detail,
        }


def positions_from_trades(
    trades: pd.DataFrame, open_positions: dict, index: pd.DatetimeIndex
) -> pd.Series:
    """Exposure per bar (decided at the bar's close) rebuilt from a paper book."""
    held = np.zeros(len(index))
    for row in trades.itertuples():
        held[(index >= row.entry_time) & (index < row.exit_time)] = 1.0
    for position in open_positions.values():
        held[index >= pd.Timestamp(position["entry_time"])] = 1.0
    return pd.Series(held, index=index)


def _book(role: str, entry: ModelEntry, trades: pd.DataFrame, open_positions: dict,
          closes: dict[str, pd.Series], timeframe: str):  # fmt: skip
    mine = trades[trades["model"] == role] if len(trades) else trades
    books = {}
    for symbol, close in closes.items():
        symbol_trades = mine[mine["symbol"] == symbol] if len(mine) else mine
        symbol_open = {k: v for k, v in open_positions.items() if k == symbol}
        positions = positions_from_trades(symbol_trades, symbol_open, close.index)
        books[symbol] = run_backtest(
            positions, close.pct_change().fillna(0.0), fee_bps=entry.policy.fee_bps,
            slippage_bps=entry.policy.slippage_bps, timeframe=timeframe,
        )  # fmt: skip
    combined = combine_books(books)
    metrics = dict(combined.metrics)
    metrics["trade_count"] = len(mine)
    if len(mine):
        metrics["win_rate"] = float((mine["return"] > 0).mean())
        metrics["avg_trade_return"] = float(mine["return"].mean())
    return combined, metrics


def block_bootstrap_sharpe_diff(
    a: pd.Series, b: pd.Series, *, periods: float, block: int = 8, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(point, low, high) of Sharpe(a) - Sharpe(b), paired moving-block bootstrap, 95%."""

    def sharpe(x: np.ndarray) -> np.ndarray:
        std = x.std(axis=-1, ddof=1)
        return np.where(std > 0, x.mean(axis=-1) / np.where(std > 0, std, 1) * np.sqrt(periods), 0)

    frame = pd.concat([a, b], axis=1).fillna(0.0).to_numpy()
    length = len(frame)
    if length < 2:
        return 0.0, float("nan"), float("nan")
    point = float(sharpe(frame[:, 0]) - sharpe(frame[:, 1]))
    if length < 2 * block:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, length - block + 1, size=(n, int(np.ceil(length / block))))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n, -1)[:, :length]
    diffs = sharpe(frame[idx, 0]) - sharpe(frame[idx, 1])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return point, float(low), float(high)


def _realised_outcomes(
    predictions: pd.DataFrame, closes: dict[str, pd.Series], horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's logged LightGBM p_up and what the market then did (up = 1)."""
    rows = predictions[
        (predictions["role"] == "candidate") & (predictions["endpoint"] == "/ml/predict")
    ]
    rows = rows.drop_duplicates(["symbol", "bar_time"], keep="last")
    ys, ps = [], []
    for symbol, group in rows.groupby("symbol"):
        close = closes[symbol]
        future = close.shift(-horizon)
        at = group["bar_time"].map(lambda t, c=close: c.get(t, np.nan))
        ahead = group["bar_time"].map(lambda t, f=future: f.get(t, np.nan))
        known = at.notna() & ahead.notna()
        ys.append((ahead[known] > at[known]).astype(float).to_numpy())
        ps.append(group.loc[known, "p_up"].to_numpy(float))
    return (np.concatenate(ys), np.concatenate(ps)) if ys else (np.array([]), np.array([]))


def rate(metric: str, value: float) -> str:
    """Below target / Target / Good / Excellent against the runbook's expected results."""
    if value is None or not np.isfinite(value):
        return "n/a"
    target, good, excellent = EXPECTED[metric]
    better = (lambda v, t: v <= t) if metric in LOWER_IS_BETTER else (lambda v, t: v >= t)
    for label, threshold in (("Excellent", excellent), ("Good", good), ("Target", target)):
        if better(value, threshold):
            return label
    return "Below target"


def decide(
    *,
    passed: int,
    metrics: dict[str, dict[str, float]],
    incidents: dict[str, int],
    max_staleness: float,
    thresholds: Thresholds | None = None,
) -> tuple[str, list[str]]:
    """PROMOTE / EXTEND / ROLLBACK from the checks, both books' metrics and incidents;
    returns the decision and every rule that fired (see the module docstring)."""
    limits = thresholds if thresholds is not None else Thresholds()
    gate, max_stale = limits.gate, limits.max_staleness_sec
    min_trades, margin, dd_ratio = gate.min_trades, gate.sharpe_margin, gate.max_dd_ratio
    cand_metrics, prod_metrics = metrics["candidate"], metrics["prod"]
    sharpe_c, sharpe_p = cand_metrics["sharpe"], prod_metrics["sharpe"]
    dd_c, dd_p = cand_metrics["max_drawdown"], prod_metrics["max_drawdown"]
    critical_drift = incidents.get("critical_drift_checks", 0)
    rollback_rules = []
    if passed <= gate.rollback_max_checks:
        rollback_rules.append(f"only {passed}/5 checks passed (<= {gate.rollback_max_checks})")
    if critical_drift:
        rollback_rules.append(f"critical drift in {critical_drift} drift checks")
    if max_staleness > max_stale:
        rollback_rules.append(f"staleness event: {max_staleness:.0f} s > {max_stale:.0f} s")
    # with fewer than min_trades closed trades a Sharpe gap is noise: it may not decide
    thin = cand_metrics["trade_count"] < min_trades
    if sharpe_c < sharpe_p - gate.sharpe_rollback and not thin:
        rollback_rules.append(
            f"Sharpe canary {sharpe_c:.2f} < prod {sharpe_p:.2f} - {gate.sharpe_rollback}"
        )
    need = gate.promote_min_checks
    promote_rules = {
        "all five checks passed" if need == 5 else f"at least {need}/5 checks passed": passed
        >= need,
        f"Sharpe canary {sharpe_c:.2f} >= prod {sharpe_p:.2f} + {margin}": sharpe_c
        >= sharpe_p + margin,
        f"MaxDD canary {dd_c:.3f} <= {dd_ratio} x prod {dd_p:.3f}": dd_c <= dd_ratio * dd_p,
        f"no critical incidents {incidents}": not any(incidents.values()),
    }
    if rollback_rules:
        decision, fired = "ROLLBACK", rollback_rules
    elif all(promote_rules.values()):
        decision, fired = "PROMOTE", list(promote_rules)
    else:
        decision = "EXTEND"
        fired = [f"{passed}/5 checks passed"] + [
            f"not met: {r}" for r, ok in promote_rules.items() if not ok
        ]
        if thin:
            fired.append(
                f"thin data: {cand_metrics['trade_count']} canary trades < {min_trades}, "
                "so the Sharpe rules are not applied"
            )
        fired.append("extend the marathon to 72h")
    return decision, fired


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
        books[role] = _book(role, entry, trades, open_positions, closes, replay.timeframe)
    (prod_book, prod_metrics), (cand_book, cand_metrics) = books["prod"], books["candidate"]
    point, low, high = block_bootstrap_sharpe_diff(
        cand_book.returns, prod_book.returns, periods=periods_per_year(replay.timeframe)
    )
    realised_y, realised_p = _realised_outcomes(predictions, full_closes, replay.horizon)
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
    now = pd.Timestamp.now("UTC") if now is None else pd.Timestamp(now)
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
