"""The scheduled drift check: the store's newest window against the newest release's
training window (`reference_release`).

Loads through the catalog (registry, store, canary-policy thresholds), compares with the
pure `check_drift`, and writes through the catalog (the drift log; on CRITICAL the kill
switch and the audit log).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.calendar import calendar_named
from levibot.data.store import FeatureStore
from levibot.drift.check import (
    NO_DATA,
    REFERENCE_UNREADABLE,
    SEVERITY,
    DriftResult,
    check_drift,
)
from levibot.drift.performance import (
    BASELINE_KEYS,
    PerformanceDrift,
    performance_drift,
    served_losses,
)
from levibot.drift.predictions import ARTIFACT as PREDICTION_ARTIFACT
from levibot.drift.predictions import COLUMN as PREDICTION_COLUMN
from levibot.drift.predictions import prediction_drift
from levibot.drift.reference import ReferenceStats, fit_reference, load_reference
from levibot.io import CorruptFileError
from levibot.online.audit import AuditLog
from levibot.online.killswitch import KillSwitch
from levibot.online.shadow_log import ShadowLog
from levibot.registry import ModelEntry, Registry, load_canary_policy, load_registry
from levibot.settings import Settings
from levibot.state.drift_log import report_path, write_drift_report
from levibot.state.paths import Paths
from levibot.thresholds import CRITICAL, WARNING, DriftThresholds
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


def _window(
    frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """Each symbol's rows with open time in [start, end)."""
    return {
        symbol: frame.loc[(frame.index >= start) & (frame.index < end)]
        for symbol, frame in frames.items()
    }


def pooled(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The symbols' rows stacked in time order (for tables and plots)."""
    return pd.concat(list(frames.values())).sort_index(kind="stable")


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


def current_frames(
    settings: Settings, *, hours: float | None = None, now: pd.Timestamp | str | None = None
) -> dict[str, pd.DataFrame]:
    """Each symbol's rows a check with these arguments compares."""
    store = Paths.of(settings).store()
    frames = _read_frames(store, settings.symbols)
    end = (
        floor_to_bar(now, settings.timeframe)
        if now is not None
        else max(f.index.max() for f in frames.values()) + store.bar_length
    )
    window = _hours(settings, hours, _min_rows(Paths.of(settings)))
    return _window(frames, end - pd.Timedelta(hours=window), end)


def current_window(
    settings: Settings, *, hours: float | None = None, now: pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """The pooled rows a check with these arguments compares (for reports)."""
    return pooled(current_frames(settings, hours=hours, now=now))


def reference_release(registry: Registry) -> tuple[str, ModelEntry] | None:
    """The release whose training window the drift checks compare with: the candidate
    while one is registered (a marathon is running), else prod.

    A marathon ends in PROMOTE (the candidate serves everything) or ROLLBACK (prod goes
    on alone), so the market has to be judged against what the candidate knows: drift
    away from prod's older training window alone is the market moving on, which is a
    reason to replace prod, not to stop trading and keep it. The candidate's window is
    also the newest, so it is the one a working market resembles most.
    """
    if registry.candidate is not None:
        return "candidate", registry.candidate
    return ("prod", registry.prod) if registry.prod is not None else None


def newest_reference(
    settings: Settings,
    *,
    current_hours: float | None = None,
    registry_file: Path | str | None = None,
) -> ReferenceStats:
    """The `reference_release`'s training window as a drift reference, with its
    ordinary-window baseline measured on windows as long as the checks'."""
    paths = Paths.of(settings, registry=registry_file)
    chosen = reference_release(load_registry(paths.registry, missing_ok=True))
    if chosen is None:
        raise DriftError(f"{paths.registry}: no prod model, so no reference window")
    return release_reference(settings, chosen[1], current_hours=current_hours)


def release_reference(
    settings: Settings, entry: ModelEntry, *, current_hours: float | None = None
) -> ReferenceStats:
    """A release's training window (read from the settings' store) as a drift reference."""
    paths = Paths.of(settings)
    frames = _read_frames(paths.store(entry.timeframe), entry.symbols)
    train = _window(
        frames, to_utc(entry.data_window.train_start), to_utc(entry.data_window.train_end)
    )
    limits = load_canary_policy(paths.canary_policy).thresholds.drift
    hours = _hours(settings, current_hours, limits.min_rows)
    fitted = fit_reference(
        train,
        window_bars=window_bars(hours, entry.timeframe),
        short_window_bars=limits.short_window_bars,
    )
    fitted.source = entry.id
    return fitted


def window_bars(hours: float, timeframe: str) -> int:
    """Bars per symbol in a current window of `hours`."""
    return int(pd.Timedelta(hours=hours) / timeframe_delta(timeframe))


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
    training window of `reference_release` (the candidate during a marathon, else prod),
    with the canary policy's drift thresholds unless given.

    The reference is `reference_path` (a stored ``.npz``) when given, else fitted now from
    the store rows of that entry's symbols in [train_start, train_end). The current
    window is the bars opened in [end - current_hours, end), pooled over the symbols,
    where end is the bar boundary at or before `now` (default: just after the newest
    stored bar). The report is named after `now` (else the wall clock); on CRITICAL the
    kill switch goes on (before the report is written) and the event is audited.
    `frames`: the symbols' feature rows when the caller already holds them (the
    in-process replay), instead of reading the store.
    """
    paths = Paths.of(settings, registry=registry_file)
    registry = load_registry(paths.registry, missing_ok=True)
    prod, chosen = registry.prod, reference_release(registry)
    if chosen is None and reference_path is None:
        raise DriftError(f"{paths.registry}: no prod model, so no reference window (or pass one)")
    if thresholds is None:
        thresholds = load_canary_policy(paths.canary_policy).thresholds.drift
    hours = _hours(settings, current_hours, thresholds.min_rows)
    timeframe = prod.timeframe if prod is not None else settings.timeframe
    symbols = list(prod.symbols) if prod is not None else list(settings.symbols)
    if frames is None:
        frames = _read_frames(paths.store(timeframe), symbols)

    if now is not None:
        end = floor_to_bar(now, timeframe)
        stamp = to_utc(now)
    else:
        end = max(frame.index.max() for frame in frames.values()) + timeframe_delta(timeframe)
        stamp = utc_now()
    start = end - pd.Timedelta(hours=hours)
    extra = {
        "model_id": prod.id if prod is not None else None,
        "symbols": symbols,
        "timeframe": timeframe,
        "current_hours": hours,
    }

    if reference_path is not None:
        try:
            reference = load_reference(reference_path)
        except FileNotFoundError as exc:
            raise DriftError(f"{reference_path}: reference file not found") from exc
        except CorruptFileError as exc:
            result = unreadable_result(thresholds, stamp, start, end, str(exc))
            result.extra = {"reference_file": Path(reference_path).name, **extra}
            write_drift_report(paths, stamp, result.to_dict())
            return result
        source = {"reference_file": str(reference_path)}
    else:
        assert chosen is not None
        reference = release_reference(settings, chosen[1], current_hours=hours)
        source = {"reference_model": chosen[1].id, "reference_role": chosen[0]}

    result = check_drift(
        reference,
        _window(frames, start, end),
        thresholds,
        timestamp=stamp,
        window_end=end,
        bar=timeframe_delta(timeframe),
        calendar=calendar_named(settings.market_calendar),
    )
    result.window_start, result.window_end = start.isoformat(), end.isoformat()
    monitors, predicted = release_monitors(paths, thresholds, end, timeframe, hours, frames)
    result.extra = {
        **source,
        **extra,
        "performance": [m.as_dict() for m in monitors],
        "prediction_drift": predicted,
    }
    shifted = [role for role, d in predicted.items() if d["status"] == CRITICAL]
    if shifted:
        result.reasons.append(
            f"prediction drift: the {' and '.join(shifted)} release's P(up) distribution "
            "left its test window's (a warning: the loss monitor says whether it hurts)"
        )
        result.status = escalated(result.status, WARNING)
    failing = [m for m in monitors if m.status == CRITICAL]
    if failing:
        result.status = escalated(result.status, thresholds.performance_severity)
        result.reasons.extend(
            f"performance drift: the {m.role} release's log loss {m.mean_loss:.4f} over "
            f"{m.bars} bars is above its test level {m.baseline_loss:.4f} "
            f"(CUSUM {m.statistic:.1f} > {m.limit:.1f} since {m.alarm_at})"
            for m in failing
        )
    if result.status == CRITICAL:
        report = report_path(paths, stamp)
        result.extra["kill_switch"] = _trip_kill_switch(paths, result, actor, report.name)
    write_drift_report(paths, stamp, result.to_dict())
    return result


def escalated(status: str, to: str) -> str:
    """`status` raised to at least `to` (warning or critical); a check that could not
    judge anything (insufficient data) stays what it was only when `to` is a warning."""
    if to == CRITICAL:
        return CRITICAL
    return to if SEVERITY.get(status, 3) < SEVERITY[to] else status


def release_monitors(
    paths: Paths,
    thresholds: DriftThresholds,
    end: pd.Timestamp,
    timeframe: str,
    hours: float,
    frames: dict[str, pd.DataFrame],
) -> tuple[list[PerformanceDrift], dict[str, dict[str, Any]]]:
    """Per served release: the loss monitor over the marathon so far (the shadow log's
    last `marathon_hours` before `end`, scored on the stored closes in `frames`) and the
    prediction drift of its last `hours`; nothing without a registry or a shadow log."""
    from levibot.release import POLICY_MODEL  # the release module imports this package

    registry = load_registry(paths.registry, missing_ok=True)
    bar = timeframe_delta(timeframe)
    since = end - pd.Timedelta(hours=thresholds.marathon_hours)
    predictions = ShadowLog(paths.logs).predictions(since=since)
    if predictions.empty:
        return [], {}
    bar_times = pd.to_datetime(predictions["bar_time"], utc=True)
    predictions = predictions[bar_times < end]
    recent = predictions[bar_times[bar_times < end] >= end - pd.Timedelta(hours=hours)]
    monitors, drifts = [], {}
    for role, entry in (("prod", registry.prod), ("candidate", registry.candidate)):
        if entry is None or POLICY_MODEL not in entry.models:
            continue
        spec = entry.models[POLICY_MODEL]
        # closes up to `end` only: an outcome is scored once its bar has closed (the
        # in-process replay passes the whole held-out series)
        closes = {
            s: f.loc[f.index < end, "close"]
            for s, f in frames.items()
            if "close" in f and s in entry.symbols
        }
        losses = served_losses(predictions, closes, role=role, horizon=entry.horizon)
        monitors.append(
            performance_drift(
                role,
                losses,
                {k: spec.metrics[k] for k in BASELINE_KEYS if k in spec.metrics},
                thresholds,
                marathon_bars=int(pd.Timedelta(hours=thresholds.marathon_hours) / bar),
                horizon=entry.horizon,
            )
        )
        drifts[role] = _prediction_drift(
            paths, spec.artifacts.get(PREDICTION_ARTIFACT), recent, role, thresholds
        )
    return monitors, drifts


def _prediction_drift(
    paths: Paths, ref: Any, predictions: pd.DataFrame, role: str, thresholds: DriftThresholds
) -> dict[str, Any]:
    """One release's prediction drift in a few numbers (a named status without a
    reference: releases registered before it existed, or an unreadable file)."""
    if ref is None:
        return {"status": NO_DATA, "reason": "the release has no prediction reference"}
    path = Path(ref.path) if Path(ref.path).is_absolute() else paths.registry.parent / ref.path
    try:
        reference = load_reference(path)
    except (FileNotFoundError, CorruptFileError):
        return {"status": REFERENCE_UNREADABLE, "reason": "its prediction reference is unreadable"}
    result = prediction_drift(reference, predictions, role, thresholds)
    feature = result.features.get(PREDICTION_COLUMN)
    return {
        "status": result.status,
        "rows": result.rows,
        **(
            {
                key: getattr(feature, key)
                for key in ("psi", "psi_critical_threshold", "ks", "ks_critical_threshold")
            }
            if feature is not None
            else {}
        ),
    }


def unreadable_result(
    thresholds: DriftThresholds,
    stamp: pd.Timestamp,
    start: pd.Timestamp,
    end: pd.Timestamp,
    problem: str,
) -> DriftResult:
    """A check that could not compare anything because the reference is unreadable:
    a named status (never a pass), the kill switch left alone."""
    return DriftResult(
        status=REFERENCE_UNREADABLE,
        timestamp=stamp.isoformat(),
        rows=0,
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        reference_rows=0,
        reference_window_start=None,
        reference_window_end=None,
        features={},
        thresholds=thresholds,
        reasons=[f"the drift reference is unreadable ({problem.split(': ', 1)[-1]}); refit it"],
    )


def _trip_kill_switch(paths: Paths, result: DriftResult, actor: str, report: str) -> str:
    """Turn the kill switch on (unless it already is) and audit it; returns what happened."""
    at = pd.Timestamp(result.timestamp)  # the check's time: simulated in a replay

    def clock() -> pd.Timestamp:
        return at

    switch = KillSwitch(paths.kill_switch, clock=clock)
    names = result.critical_features
    worst = {
        name: {
            key: getattr(result.features[name], key)
            for key in ("psi", "psi_critical_threshold", "ks", "ks_critical_threshold", "dead_feed")
        }
        for name in names
    }
    was_on = switch.is_on()
    if not was_on:
        reason = (
            f"critical drift in {', '.join(names) or 'the feed'} "
            "(PSI or KS above the feature's calibrated limit, or a dead feed); retrain"
        )
        switch.set(True, actor=actor, reason=reason)
    AuditLog(paths.audit, clock=clock).record(
        actor,
        "drift_kill_switch_on",
        features=names,
        drift=worst,
        window={"start": result.window_start, "end": result.window_end},
        reasons=list(result.reasons),
        report=report,
        already_on=was_on,
    )
    return "already_on" if was_on else "turned_on"
