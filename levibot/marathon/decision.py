"""The T+48h decision: the checks' record, the promote / extend / rollback rules, grades.

Pure functions of the evidence and the threshold model (see `levibot.marathon.evaluate`
for the rules in words), so every rule is tested without building a marathon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from levibot.thresholds import Thresholds

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
