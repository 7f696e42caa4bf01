"""A few human lines about the registry, for `levibot registry show`."""

from __future__ import annotations

from levibot.registry.schema import ModelEntry, Registry
from levibot.registry.store import EVENTS_KEPT


def _describe_entry(label: str, entry: ModelEntry | None) -> list[str]:
    if entry is None:
        return [f"{label:<10} (none)"]
    pol = entry.policy
    lines = [
        f"{label:<10} {entry.id}  {entry.timeframe} h={entry.horizon} "
        f"{','.join(entry.symbols)}  trained {entry.trained_at:%Y-%m-%d %H:%M}Z "
        f"code {entry.code_version}",
        f"{'':<10} policy entry={pol.entry_threshold:g} exit={pol.exit_threshold:g} "
        f"fee={pol.fee_bps:g}bps slippage={pol.slippage_bps:g}bps",
    ]
    for kind, spec in entry.models.items():
        cal = spec.calibration
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(spec.metrics.items()))
        lines.append(
            f"{'':<10} {kind}: {len(spec.features)} features, {cal.method} "
            f"ECE {cal.ece_raw:.3f}->{cal.ece_calibrated:.3f}; {spec.metrics_window}: {metrics}"
        )
    return lines


def _events_line(registry: Registry, total_events: int | None) -> str:
    """The count line: the file keeps only the newest events, so 'total' needs the archive."""
    if total_events is not None:
        return f"{'events:':<10} {total_events} total"
    if len(registry.events) < EVENTS_KEPT:
        return f"{'events:':<10} {len(registry.events)} total"
    return f"{'events:':<10} newest {len(registry.events)} (older ones, if any, archived)"


def describe(registry: Registry, *, last_events: int = 5, total_events: int | None = None) -> str:
    """A few human lines for `levibot registry show`; `total_events` is the whole history's
    length (``len(registry_events(path))``) when the caller has it."""
    lines = [f"registry schema v{registry.schema_version}"]
    lines += _describe_entry("prod:", registry.prod)
    lines += _describe_entry("candidate:", registry.candidate)
    lines.append(f"{'archive:':<10} {len(registry.archive)} entries")
    for item in registry.archive[-3:]:
        flag = " (rolled back)" if item.rolled_back else ""
        lines.append(
            f"{'':<10} {item.entry.id} was {item.role}{flag}, "
            f"{item.archived_at:%Y-%m-%d %H:%M}Z: {item.reason}"
        )
    lines.append(_events_line(registry, total_events))
    for event in registry.events[-last_events:]:
        ids = ",".join(event.model_ids)
        lines.append(
            f"{'':<10} {event.at:%Y-%m-%d %H:%M:%S}Z {event.action} [{ids}] {event.reason}"
        )
    return "\n".join(lines)
