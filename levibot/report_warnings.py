"""Contradictions a report must show in a visible box, not leave for the reader to spot.

Each function returns plain sentences (empty when nothing is wrong); `warning_box`
renders them for a notebook report. The checks are the ones a reviewer found missing:
a policy that wins on the window it was chosen on and loses on the test window, a
calibration that made the test ECE worse, a canary that served nothing, and grades
given from too few trades.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

MIN_GRADED_TRADES = 20  # fewer closed trades than this: win rate / avg trade are anecdotes


def release_warnings(
    role: str, calibration: Mapping[str, Any], policy: Mapping[str, Any]
) -> list[str]:
    """From a release's `calibration_summary()` and `policy_summary()`."""
    out = []
    chosen, test = policy.get("selection sharpe (calibration window)"), policy.get("test sharpe")
    if isinstance(chosen, int | float) and isinstance(test, int | float) and chosen > 0 > test:
        out.append(
            f"{role}: the policy was chosen at Sharpe {chosen:+.2f} on the calibration window "
            f"and makes {test:+.2f} on the test window: the selection does not generalise"
        )
    for kind in ("lgbm", "deep"):
        raw = calibration.get(f"{kind} ECE raw (test)")
        cal = calibration.get(f"{kind} ECE calibrated (test)")
        if isinstance(raw, int | float) and isinstance(cal, int | float) and cal > raw:
            out.append(
                f"{role} {kind}: calibration made the test ECE worse ({raw:.3f} -> {cal:.3f})"
            )
    return out


def canary_warnings(canary: Mapping[str, Any]) -> list[str]:
    """From the evaluation's or replay's canary block: configured but never served."""
    configured, served = canary.get("configured_fraction"), canary.get("served_fraction")
    if configured and not served:
        reasons = "; ".join(str(r) for r in (canary.get("closed_reasons") or {})) or "closed"
        return [
            f"the canary was set to {configured:.0%} of the traffic but served none of it "
            f"({reasons}): every comparison comes from shadow predictions"
        ]
    return []


def replay_canary_warnings(summary: Mapping[str, Any], fraction: float) -> list[str]:
    """The same check on a replay summary (served requests per variant, the timeline)."""
    served = summary.get("served_by_variant") or {}
    total = sum(served.values())
    if not total:
        return []  # no traffic at all: nothing the canary could have served
    reasons = {
        p["canary_reason"]: True
        for p in summary.get("timeline", [])
        if p.get("canary_open") is False and p.get("canary_reason")
    }
    return canary_warnings({
        "configured_fraction": fraction,
        "served_fraction": served.get("canary", 0) / total if total else None,
        "closed_reasons": reasons,
    })  # fmt: skip


def grade_warnings(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Win rate and average trade graded on fewer than MIN_GRADED_TRADES closed trades."""
    out = []
    for role, values in metrics.items():
        trades = values.get("trade_count")
        if isinstance(trades, int | float) and trades < MIN_GRADED_TRADES:
            out.append(
                f"{role}: {int(trades)} closed trades, fewer than {MIN_GRADED_TRADES}: its win "
                "rate and average trade are not evidence either way"
            )
    return out


def warning_box(lines: Sequence[str]) -> str:
    """HTML for a notebook report: a yellow box listing `lines` (empty string: none)."""
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return (
        '<div style="background:#fff8c5;border-left:4px solid #9a6700;padding:.5em 1em">'
        f"<strong>Check before trusting this page</strong><ul>{items}</ul></div>"
    )
