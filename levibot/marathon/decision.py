"""The T+48h decision: the five checks, the promote / extend / rollback rules, grades.

Pure functions of the evidence and the threshold model, so every rule is tested without
building a marathon. The rules, with the go-live guide's numbers as defaults:

ROLLBACK when any of: a critical drift check; a staleness event (worst open-market
staleness above `max_staleness_sec`); at most `rollback_max_checks` (2) of the five
checks passed, i.e. three or more failed; the paired scoring says the candidate forecasts
significantly worse (log loss or Brier, Diebold-Mariano 95% interval above 0); the 95%
interval of Sharpe_canary - Sharpe_prod lies entirely below -`sharpe_rollback` (0.3).
These apply whatever the trade count: the paired scores and the per-bar books do not
need closed trades.

PROMOTE when nothing calls for a rollback and all of: every critical check (ECE,
staleness, drift, API health) passed; at least `promote_min_checks` (4) of five passed;
no critical incident (kill-switch activation, API error); the candidate forecasts
significantly better (log-loss interval below 0); the Sharpe difference's interval lies
above +`sharpe_margin` (0.2); and MaxDD_canary <= `max_dd_ratio` (0.9) x MaxDD_prod.
Judging the scores and the Sharpe margin on the intervals' bounds, not the points, is
what keeps a 48 h sample's noise from promoting. The drawdown rule is a guard, judged on
the point as the guide writes it: a 48 h MaxDD is one path's worst excursion, and
demanding that its interval's upper bound clear 0.9 x prod made PROMOTE unreachable even
when both the log loss and the Sharpe bound showed a much better candidate (the
decision benchmark's `better` scenario).

Otherwise EXTEND, naming what is not yet shown and how many more hours the observed
effect would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from levibot.thresholds import Thresholds

# the go-live guide's "Expected results" as (target, good, excellent) limits:
# Sharpe > 1.2 / 1.5-1.8 / > 2.0; win rate > 52% / 55-58% / > 60%; MaxDD < 15% / 10-13% /
# < 10%; average trade > 0% / 0.5-1% / > 1.5%; ECE < 0.06 / 0.03-0.05 / < 0.03.
EXPECTED = {
    "sharpe": (1.2, 1.5, 2.0),
    "win_rate": (0.52, 0.55, 0.60),
    "max_drawdown": (0.15, 0.13, 0.10),
    "avg_trade_return": (0.0, 0.005, 0.015),
    "ece": (0.06, 0.05, 0.03),
}
LOWER_IS_BETTER = {"max_drawdown", "ece"}
TRADE_METRICS = {"win_rate", "avg_trade_return"}
CRITICAL_CHECKS = ("ece", "staleness", "drift", "api_healthy")
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass
class Check:
    """One of the five checks. `status` is pass / fail / inconclusive (no data to judge)."""

    name: str
    status: str
    value: float | int | None
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def critical(self) -> bool:
        return self.name in CRITICAL_CHECKS

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "critical": self.critical,
            "value": self.value,
            "detail": self.detail,
        }


def status_of(ok: bool | None) -> str:
    return INCONCLUSIVE if ok is None else PASS if ok else FAIL


def rate(
    metric: str, value: float | None, *, trades: int | None = None, min_trades: int = 0
) -> str:
    """Below target / Target / Good / Excellent against the go-live guide's table; trade
    statistics on fewer than `min_trades` closed trades are "n/a (N trades)"."""
    if metric in TRADE_METRICS and trades is not None and trades < min_trades:
        return f"n/a ({trades} trades)"
    if value is None or not np.isfinite(value):
        return "n/a"
    target, good, excellent = EXPECTED[metric]
    if metric in LOWER_IS_BETTER:
        grades = (
            (value < excellent, "Excellent"),
            (value <= good, "Good"),
            (value < target, "Target"),
        )
    else:
        grades = (
            (value > excellent, "Excellent"),
            (value >= good, "Good"),
            (value > target, "Target"),
        )
    return next((label for hit, label in grades if hit), "Below target")


def _interval(value: dict[str, Any]) -> str:
    """ "+1.00 [-2.00, +4.00]"; "n/a (too few bars for an interval)" rather than [nan, nan]."""
    if not _finite(value.get("point"), value.get("ci_low"), value.get("ci_high")):
        return "n/a (too few bars for an interval)"
    return f"{value['point']:+.2f} [{value['ci_low']:+.2f}, {value['ci_high']:+.2f}]"


def _finite(*values: float) -> bool:
    return all(v is not None and np.isfinite(v) for v in values)


def last_judged(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last drift report that had enough rows to judge anything."""
    judged = [r for r in reports if r.get("status") != "insufficient_data"]
    return judged[-1] if judged else None


def drift_check(reports: list[dict[str, Any]]) -> Check:
    """The go-live guide's drift check over a marathon's drift reports (time order).

    Fails on a critical check, or when the last judged check has a feature beyond its
    *critical* limit (one such feature alone is only a warning for the kill switch).
    Features above their warning limits are named but do not fail it: a warning limit
    is a 5% tail per feature and check, so with ~25 features nearly every check has one,
    and "no feature above its warning limit" failed 11 of 20 equal-release marathons.
    The critical limits are calibrated to the marathon (a feature beyond one in at most
    `false_alarm_rate` / 2 of no-drift marathons), which bounds this check's false fails.
    """
    last = last_judged(reports)
    if last is None:
        return Check("drift", status_of(None), 0, "no drift check with enough rows in the window")
    judged = sum(r.get("status") != "insufficient_data" for r in reports)
    critical = sum(r.get("status") == "critical" for r in reports)
    features = last.get("features", {})
    beyond = sorted(f for f, v in features.items() if v.get("status") == "critical")
    warned = sorted(f for f, v in features.items() if v.get("status") == "warning")
    return Check(
        "drift",
        status_of(not critical and not beyond),
        len(beyond),
        f"{judged} drift checks with enough rows, {critical} critical; at the last one, "
        f"beyond their critical limit: {', '.join(beyond) or 'none'}; above their warning "
        f"limit: {', '.join(warned) or 'none'}",
    )


def decide(
    *,
    checks: list[Check],
    evidence: dict[str, Any],
    incidents: dict[str, Any],
    thresholds: Thresholds | None = None,
) -> tuple[str, list[str]]:
    """PROMOTE / EXTEND / ROLLBACK and every rule that fired, in plain words.

    `evidence`: "log_loss" / "brier" (`PairedTest.as_dict()`), "sharpe_difference" and
    "drawdown_excess" ({point, ci_low, ci_high}); `incidents`: critical_drift_checks,
    staleness_events, worst_staleness, kill_switch_activations, api_errors.
    """
    limits = thresholds if thresholds is not None else Thresholds()
    gate = limits.gate
    passed = sum(c.passed for c in checks)
    failed = sum(c.status == FAIL for c in checks)
    total = len(checks)
    log_loss, brier = evidence["log_loss"], evidence["brier"]
    sharpe, drawdown = evidence["sharpe_difference"], evidence["drawdown_excess"]

    rollback: list[str] = []
    if incidents.get("critical_drift_checks", 0):
        rollback.append(f"critical drift in {incidents['critical_drift_checks']} drift checks")
    if incidents.get("staleness_events", 0):
        rollback.append(
            f"feature staleness reached {incidents['worst_staleness']:.0f} s "
            f"(limit {limits.max_staleness_sec:.0f} s)"
        )
    if total - failed <= gate.rollback_max_checks and failed:
        rollback.append(f"{failed} of {total} checks failed (only {total - failed} could pass)")
    for name, test in (("log loss", log_loss), ("Brier score", brier)):
        if test.get("worse"):
            rollback.append(
                f"the candidate forecasts significantly worse: {name} "
                f"{test['difference']:+.4f} per bar, 95% interval "
                f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}] above 0 "
                f"(p = {test['p_value']:.3f})"
            )
    if _finite(sharpe["ci_high"]) and sharpe["ci_high"] < -gate.sharpe_rollback:
        rollback.append(
            f"Sharpe canary - prod {_interval(sharpe)} lies entirely below -{gate.sharpe_rollback}"
        )
    if rollback:
        return "ROLLBACK", rollback

    shown, missing = [], []

    def require(ok: bool, yes: str, no: str) -> None:
        (shown if ok else missing).append(yes if ok else no)

    critical = [c for c in checks if c.critical]
    not_passed = [f"{c.name} ({c.status})" for c in critical if not c.passed]
    require(
        not not_passed,
        "every critical check passed",
        f"critical checks not passed: {', '.join(not_passed)}",
    )
    require(
        passed >= gate.promote_min_checks,
        f"{passed}/{total} checks passed",
        f"{passed}/{total} checks passed (need {gate.promote_min_checks})",
    )
    quiet = not incidents.get("kill_switch_activations") and not incidents.get("api_errors")
    require(
        quiet,
        "no critical incident",
        f"critical incidents: {incidents.get('kill_switch_activations', 0)} kill-switch "
        f"activations, {incidents.get('api_errors', 0)} API errors",
    )
    if log_loss.get("better"):
        shown.append(
            f"the candidate forecasts better: log loss {log_loss['difference']:+.4f} per bar, "
            f"95% interval [{log_loss['ci_low']:+.4f}, {log_loss['ci_high']:+.4f}] "
            f"(p = {log_loss['p_value']:.3f})"
        )
    elif _finite(log_loss.get("ci_low"), log_loss.get("ci_high")):
        more = log_loss.get("hours_needed")
        missing.append(
            f"the forecasts are not yet distinguishable: log loss {log_loss['difference']:+.4f} "
            f"per bar, 95% interval [{log_loss['ci_low']:+.4f}, {log_loss['ci_high']:+.4f}]; "
            f"detectable at this sample size: {log_loss['min_detectable_effect']:.4f}"
            + (
                f"; at the observed effect about {more:.0f} more hours are needed"
                if more is not None and log_loss["difference"] < 0
                else ""
            )
        )
    else:
        missing.append(f"no paired scoring evidence ({log_loss.get('bars', 0)} paired bars)")
    require(
        _finite(sharpe["ci_low"]) and sharpe["ci_low"] >= gate.sharpe_margin,
        f"Sharpe canary - prod {_interval(sharpe)} clears +{gate.sharpe_margin}",
        f"Sharpe canary - prod {_interval(sharpe)} does not clear +{gate.sharpe_margin} "
        "at its lower bound",
    )
    require(
        _finite(drawdown["point"]) and drawdown["point"] <= 0,
        f"MaxDD canary - {gate.max_dd_ratio} x prod {_interval(drawdown)} is at or below 0",
        f"MaxDD canary - {gate.max_dd_ratio} x prod {_interval(drawdown)} is above 0"
        if _finite(drawdown["point"])
        else "no MaxDD comparison (no per-bar paper returns)",
    )
    if not missing:
        return "PROMOTE", shown
    return "EXTEND", [*missing, f"extend the marathon (to {1.5 * gate.marathon_hours:.0f} h)"]
