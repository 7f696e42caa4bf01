"""The scheduled drift check: the store's newest window against the prod training window.

Loads through the catalog (registry, store, canary-policy thresholds), compares with the
pure `check_drift`, and writes through the catalog (the drift log; on CRITICAL the kill
switch and the audit log).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from levibot.data.store import FeatureStore
from levibot.drift.check import DriftResult, check_drift
from levibot.drift.reference import ReferenceStats, fit_reference, load_reference
from levibot.online.audit import AuditLog
from levibot.online.killswitch import KillSwitch
from levibot.registry import ModelEntry, load_canary_policy, load_registry
from levibot.settings import Settings
from levibot.state.drift_log import report_path, write_drift_report
from levibot.state.paths import Paths
from levibot.thresholds import CRITICAL, DriftThresholds
from levibot.timeframe import floor_to_bar, timeframe_delta, to_utc, utc_now


class DriftError(ValueError):
    """A drift check cannot run (no prod model, no stored data, a bad reference file)."""


def _read_frames(store: FeatureStore, symbols: Sequence[str]) -> dict[str, pd.DataFrame]:
    frames = {}
    for symbol in symbols:
        frame = store.read(symbol)
        if frame is None or frame.empty:
            raise DriftError(
                f"no features stored for {symbol} at {store.timeframe} in {store.root}"
            )
        frames[symbol] = frame
    return frames


def _pooled(
    frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Rows of every symbol with open time in [start, end), stacked (index kept)."""
    parts = [frame.loc[(frame.index >= start) & (frame.index < end)] for frame in frames.values()]
    return pd.concat(parts).sort_index(kind="stable")


def _hours(settings: Settings, current_hours: float | None, min_bars: int | None = None) -> float:
    """The current window's length: the configured hours, stretched so it holds at least
    `min_bars` (the drift thresholds' min_rows) bars of each symbol at any timeframe."""
    hours = settings.drift_current_hours if current_hours is None else current_hours
    if not hours > 0:
        raise DriftError(f"current_hours must be positive, got {hours}")
    if min_bars is None:
        min_bars = DriftThresholds().min_rows
    bar_hours = timeframe_delta(settings.timeframe) / pd.Timedelta(hours=1)
    return float(max(hours, min_bars * bar_hours))


def _min_rows(paths: Paths) -> int:
    return load_canary_policy(paths.canary_policy).thresholds.drift.min_rows


def current_window(
    settings: Settings, *, hours: float | None = None, now: pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """The pooled rows a check with these arguments compares (for reports)."""
    store = Paths.of(settings).store()
    frames = _read_frames(store, settings.symbols)
    end = (
        floor_to_bar(now, settings.timeframe)
        if now is not None
        else max(f.index.max() for f in frames.values()) + store.bar_length
    )
    window = _hours(settings, hours, _min_rows(Paths.of(settings)))
    return _pooled(frames, end - pd.Timedelta(hours=window), end)


def prod_reference(
    settings: Settings,
    *,
    current_hours: float | None = None,
    registry_file: Path | str | None = None,
) -> ReferenceStats:
    """The prod model's training window as a drift reference, with its ordinary-window
    baseline measured on windows as long as the checks' (`current_hours`)."""
    paths = Paths.of(settings, registry=registry_file)
    prod = load_registry(paths.registry, missing_ok=True).prod
    if prod is None:
        raise DriftError(f"{paths.registry}: no prod model, so no reference window")
    return release_reference(settings, prod, current_hours=current_hours)


def release_reference(
    settings: Settings, entry: ModelEntry, *, current_hours: float | None = None
) -> ReferenceStats:
    """A release's training window (read from the settings' store) as a drift reference."""
    paths = Paths.of(settings)
    frames = _read_frames(paths.store(entry.timeframe), entry.symbols)
    train = _pooled(
        frames, to_utc(entry.data_window.train_start), to_utc(entry.data_window.train_end)
    )
    hours = _hours(settings, current_hours, _min_rows(paths))
    bars = int(pd.Timedelta(hours=hours) / timeframe_delta(entry.timeframe))
    return fit_reference(train, window_rows=len(entry.symbols) * bars)


def run_drift_check(
    settings: Settings,
    *,
    now: pd.Timestamp | str | None = None,
    current_hours: float | None = None,
    reference_path: Path | str | None = None,
    thresholds: DriftThresholds | None = None,
    actor: str = "drift-check",
    registry_file: Path | str | None = None,
    frames: dict[str, pd.DataFrame] | None = None,
) -> DriftResult:
    """Check the newest `current_hours` (default: the settings') of the store against the
    prod training window, with the canary policy's drift thresholds unless given.

    The reference is `reference_path` (a stored ``.npz``) when given, else fitted now from
    the store rows of the prod entry's symbols in [train_start, train_end). The current
    window is the bars opened in [end - current_hours, end), pooled over the symbols,
    where end is the bar boundary at or before `now` (default: just after the newest
    stored bar). The report is named after `now` (else the wall clock); on CRITICAL the
    kill switch goes on (before the report is written) and the event is audited.
    `frames`: the symbols' feature rows when the caller already holds them (the
    in-process replay), instead of reading the store.
    """
    paths = Paths.of(settings, registry=registry_file)
    prod = load_registry(paths.registry, missing_ok=True).prod
    if prod is None and reference_path is None:
        raise DriftError(f"{paths.registry}: no prod model, so no reference window (or pass one)")
    if thresholds is None:
        thresholds = load_canary_policy(paths.canary_policy).thresholds.drift
    hours = _hours(settings, current_hours, thresholds.min_rows)
    timeframe = prod.timeframe if prod is not None else settings.timeframe
    symbols = list(prod.symbols) if prod is not None else list(settings.symbols)
    if frames is None:
        frames = _read_frames(paths.store(timeframe), symbols)

    if reference_path is not None:
        try:
            reference = load_reference(reference_path)
        except FileNotFoundError as exc:
            raise DriftError(f"{reference_path}: reference file not found") from exc
        source = {"reference_file": str(reference_path)}
    else:
        assert prod is not None
        reference = prod_reference(settings, current_hours=hours, registry_file=registry_file)
        source = {"reference_model": prod.id}

    if now is not None:
        end = floor_to_bar(now, timeframe)
        stamp = to_utc(now)
    else:
        end = max(frame.index.max() for frame in frames.values()) + timeframe_delta(timeframe)
        stamp = utc_now()
    start = end - pd.Timedelta(hours=hours)
    current = _pooled(frames, start, end)

    result = check_drift(reference, current, thresholds, timestamp=stamp)
    result.window_start, result.window_end = start.isoformat(), end.isoformat()
    result.extra = {
        **source,
        "model_id": prod.id if prod is not None else None,
        "symbols": symbols,
        "timeframe": timeframe,
        "current_hours": hours,
    }
    if result.status == CRITICAL:
        report = report_path(paths, stamp)
        result.extra["kill_switch"] = _trip_kill_switch(paths, result, actor, report.name)
    write_drift_report(paths, stamp, result.to_dict())
    return result


def _trip_kill_switch(paths: Paths, result: DriftResult, actor: str, report: str) -> str:
    """Turn the kill switch on (unless it already is) and audit it; returns what happened."""
    at = pd.Timestamp(result.timestamp)  # the check's time: simulated in a replay

    def clock() -> pd.Timestamp:
        return at

    switch = KillSwitch(paths.kill_switch, clock=clock)
    names = result.critical_features
    worst = {
        name: {"psi": result.features[name].psi, "ks": result.features[name].ks} for name in names
    }
    was_on = switch.is_on()
    if not was_on:
        reason = (
            f"critical drift in {', '.join(names)} "
            f"(PSI > {result.thresholds.psi_critical} or KS > {result.thresholds.ks_critical}); "
            "retrain"
        )
        switch.set(True, actor=actor, reason=reason)
    AuditLog(paths.audit, clock=clock).record(
        actor,
        "drift_kill_switch_on",
        features=names,
        drift=worst,
        window={"start": result.window_start, "end": result.window_end},
        report=report,
        already_on=was_on,
    )
    return "already_on" if was_on else "turned_on"
