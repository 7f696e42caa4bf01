"""The decision benchmark's summary per scenario and its Markdown table."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from levibot.marathon.simulation_scenarios import Scenario


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def rule_shape(rule: str) -> str:
    """A fired rule with its numbers and intervals blanked, so the runs' rules can be
    counted: which rule blocks PROMOTE, which one rolls back."""
    shape = re.sub(r"\[[^\]]*\]", "[..]", rule)
    shape = re.sub(r"[-+]?\d+(\.\d+)?", "#", shape)
    return re.sub(r"\s+", " ", shape).strip()


def summarise(outcomes: list[dict[str, Any]], scenario: Scenario) -> dict[str, Any]:
    decisions = [o["decision"] for o in outcomes]
    return {
        "runs": len(outcomes),
        "PROMOTE": decisions.count("PROMOTE"),
        "EXTEND": decisions.count("EXTEND"),
        "ROLLBACK": decisions.count("ROLLBACK"),
        "kill_switch": sum(o["kill_switch"] for o in outcomes),
        "critical_drift": sum(o["critical_drift"] for o in outcomes),
        "loss_alarm": sum(o.get("loss_alarm", False) for o in outcomes),
        "median_loss_alarm_hours": _median([o.get("loss_alarm_hours") for o in outcomes]),
        "median_min_detectable_effect": _median([o["min_detectable_effect"] for o in outcomes]),
        "median_hours_needed": _median([o["hours_needed"] for o in outcomes]),
        "median_log_loss_difference": _median([o["log_loss_difference"] for o in outcomes]),
        "median_sharpe_difference": _median([o["sharpe_difference"] for o in outcomes]),
        "median_detection_hours": _median([o["detection_hours"] for o in outcomes]),
        "rules": dict(
            Counter(
                rule_shape(rule) for o in outcomes for rule in dict.fromkeys(o.get("rules", []))
            ).most_common()
        ),
        "target": scenario.expected,
    }


def format_table(report: dict[str, Any]) -> str:
    """The benchmark as a Markdown table (what `make bench` and the README show)."""
    lines = [
        "| scenario | runs | PROMOTE | EXTEND | ROLLBACK | kill switch | critical drift "
        "| candidate loss alarm | median MDE (log loss) | median hours needed "
        "| median detection (h) | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value: float | None, digits: int) -> str:
        return "n/a" if value is None or value != value else f"{value:.{digits}f}"

    for name, row in report["scenarios"].items():
        lines.append(
            f"| {name} | {row['runs']} | {row['PROMOTE']} | {row['EXTEND']} | {row['ROLLBACK']} "
            f"| {row['kill_switch']} | {row['critical_drift']} | {row.get('loss_alarm', 'n/a')} "
            f"| {num(row['median_min_detectable_effect'], 4)} "
            f"| {num(row['median_hours_needed'], 0)} | {num(row['median_detection_hours'], 1)} "
            f"| {row['target']} |"
        )
    lines.append(
        f"\nmarket edges {report['edges']}; wall time {report['wall_seconds']:.0f} s"
        f" on {report.get('workers', 1)} worker(s)"
    )
    return "\n".join(lines)
