"""One drift comparison: PSI and KS per feature against a reference, with statuses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from levibot.calendar import TradingCalendar
from levibot.drift.dead_feed import dead_feed_reason, stalled_symbols
from levibot.drift.monitoring import DIFFERENCES, LEVEL, Frames
from levibot.drift.noise import distinct_times, joint_scale, noise_quantiles, short_window
from levibot.drift.reference import ReferenceStats, monitored_rows, recent_scale
from levibot.drift.stats import bin_counts_sorted, ks_statistic, psi
from levibot.thresholds import CRITICAL, OK, WARNING, DriftThresholds
from levibot.timeframe import to_utc, utc_now

NO_DATA, INSUFFICIENT = "no_data", "insufficient_data"
MISSING_FEATURE, REFERENCE_UNREADABLE = "missing_feature", "reference_unreadable"
SEVERITY = {OK: 0, WARNING: 1, CRITICAL: 2}
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, INSUFFICIENT: 3, REFERENCE_UNREADABLE: 4}


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift; psi/ks are None when there was nothing to compare, the
    thresholds are this check's effective ones, `dead_feed` says why a feed is dead."""

    feature: str
    method: str
    status: str
    psi: float | None
    ks: float | None
    n_current: int
    n_reference: int
    nan_share_current: float | None
    nan_share_reference: float | None
    psi_warning_threshold: float | None = None
    psi_critical_threshold: float | None = None
    ks_warning_threshold: float | None = None
    ks_critical_threshold: float | None = None
    scale: float | None = None  # the newest bars' scale over the rest of the window's
    scale_high_threshold: float | None = None
    level_scale: float | None = None  # the window's scale over the reference's
    level_scale_high_threshold: float | None = None
    dead_feed: str | None = None


@dataclass
class DriftResult:
    """A drift check: per-feature results, the overall status and what was compared."""

    status: str
    timestamp: str
    rows: int
    window_start: str | None
    window_end: str | None
    reference_rows: int
    reference_window_start: str | None
    reference_window_end: str | None
    features: dict[str, FeatureDrift]
    thresholds: DriftThresholds
    reasons: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    joint_scales: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def critical_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.status == CRITICAL]

    @property
    def warning_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.status == WARNING]

    @property
    def dead_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.dead_feed]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "timestamp": self.timestamp,
            "rows": self.rows,
            "window": {"start": self.window_start, "end": self.window_end},
            "reference": {
                "rows": self.reference_rows,
                "start": self.reference_window_start,
                "end": self.reference_window_end,
            },
            "critical_features": self.critical_features,
            "warning_features": self.warning_features,
            "dead_features": self.dead_features,
            "reasons": list(self.reasons),
            "joint_scales": self.joint_scales,
            "thresholds": self.thresholds.model_dump(),
            "features": {name: asdict(f) for name, f in self.features.items()},
            **self.extra,
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def check_drift(
    reference: ReferenceStats,
    current: Frames,
    thresholds: DriftThresholds | None = None,
    *,
    timestamp: pd.Timestamp | str | None = None,
    window_end: pd.Timestamp | None = None,
    bar: pd.Timedelta | None = None,
    calendar: TradingCalendar | None = None,
) -> DriftResult:
    """PSI and KS of every reference feature in `current` (one frame per symbol, or
    one frame), each against its own noise-calibrated limits, plus the dead-feed checks.

    With `window_end` and `bar`, a symbol without new bars for `dead_feed_bars`
    open-market bars (`calendar`) is a dead feed too.
    """
    thresholds = thresholds if thresholds is not None else DriftThresholds()
    rows = monitored_rows(current, reference.features, reference.methods)
    ordered = np.sort(rows.values, axis=1)
    counts = rows.rows - np.isnan(rows.values).sum(axis=1)
    n_rows = rows.rows
    compared_features = sum(1 for name in reference.features if reference.n[name] > 0)
    bar_hours = (bar / pd.Timedelta(hours=1)) if bar is not None else 0.25
    distinct = distinct_times(rows.times)
    window_hours = max(distinct.size, 1) * bar_hours
    short_bars = reference.short_window_bars or thresholds.short_window_bars  # as fitted
    short_hours = short_bars * bar_hours
    recent_cols = short_window(rows, short_bars, distinct)

    def needed(name: str) -> int:
        """min_rows, less the first bar(s) of each symbol a change cannot be taken on."""
        lost = DIFFERENCES.get(reference.methods.get(name, LEVEL), 0) * len(rows.raw)
        return max(1, thresholds.min_rows - lost)

    results: dict[str, FeatureDrift] = {}
    lost: list[str] = []
    for j, name in enumerate(reference.features):
        n_ref, n_cur = reference.n[name], int(counts[j])
        psi_value = ks_value = scale = level_scale = None
        limits = None
        dead = None
        if name in rows.missing:
            status = MISSING_FEATURE if n_ref > 0 else NO_DATA
        elif n_ref == 0 or n_cur == 0:
            status = NO_DATA
        else:
            column = ordered[j, :n_cur]
            cur_props = bin_counts_sorted(column, reference.inner_edges[name]) / n_cur
            psi_value = psi(reference.proportions[name], cur_props)
            # float64 -> float32 is monotone, so the rounded column stays sorted
            ref_sorted = reference.sorted_values[name]
            ks_value = ks_statistic(ref_sorted, column.astype(ref_sorted.dtype))
            psi_at, ks_at, scale_at, level_scale_at = noise_quantiles(
                reference, name, n_cur, thresholds.noise_tail_df
            )
            if scale_at is not None or level_scale_at is not None:
                # the window's median absolute deviation from the reference median: the
                # scale both ratios divide by (the newest bars' own share of it is small)
                window_deviation = float(
                    np.median(np.abs(column - reference.noise[name]["median"]))
                )
            limits = thresholds.limits(
                psi_at=psi_at,
                ks_at=ks_at,
                scale_at=scale_at,
                level_scale_at=level_scale_at,
                features=compared_features,
                window_hours=window_hours,
                short_hours=short_hours,
            )
            scale = None
            if scale_at is not None:
                scale = recent_scale(
                    rows.values[j, recent_cols],
                    rows.values[j, : recent_cols.start],
                    reference.noise[name]["median"],
                    base=window_deviation,
                )
            if level_scale_at is not None:
                level_scale = window_deviation / reference.noise[name]["mad"]
            status = (
                INSUFFICIENT
                if n_cur < needed(name)
                else thresholds.level(psi_value, ks_value, limits, scale, level_scale)
            )
        if name not in rows.missing:
            dead = dead_feed_reason(reference, name, rows.raw, j, thresholds.dead_feed_bars)
            if dead:
                status = CRITICAL
        if n_ref > 0 and n_cur < needed(name) and n_rows >= thresholds.min_rows:
            lost.append(name)
        results[name] = FeatureDrift(
            feature=name,
            method=reference.methods.get(name, LEVEL),
            status=status,
            psi=psi_value,
            ks=ks_value,
            n_current=n_cur,
            n_reference=n_ref,
            nan_share_current=_share(n_rows - n_cur, n_rows),
            nan_share_reference=reference.nan_share[name] if reference.rows else None,
            psi_warning_threshold=limits.psi_warning if limits else None,
            psi_critical_threshold=limits.psi_critical if limits else None,
            ks_warning_threshold=limits.ks_warning if limits else None,
            ks_critical_threshold=limits.ks_critical if limits else None,
            scale=scale,
            scale_high_threshold=limits.scale_high if limits else None,
            level_scale=level_scale,
            level_scale_high_threshold=limits.level_scale_high if limits else None,
            dead_feed=dead,
        )
    status, reasons = _overall(results, n_rows, lost, thresholds)
    joints = {
        "scale": joint_scale(
            reference,
            results,
            "scale",
            thresholds.critical_tail(len(results) + 1, short_hours, 1),
            thresholds.noise_tail_df,
        ),
        "level_scale": joint_scale(
            reference,
            results,
            "level_scale",
            thresholds.critical_tail(len(results) + 1, window_hours, 3),
            thresholds.noise_tail_df,
        ),
    }
    joints = {
        key: (value, None if limit is None else thresholds.clamp_scale(limit))
        for key, (value, limit) in joints.items()
    }
    for key, (joint, limit) in joints.items():
        if joint is not None and limit is not None and joint > limit:
            status = CRITICAL
            span = (
                f"newest {short_bars} bars' scale over the window's"
                if key == "scale"
                else ("window's scale over the reference's")
            )
            reasons.append(
                f"volatility change: the {span} is {joint:.1f}x over "
                f"{len(reference.joint_scale[key]['features'])} features at once "
                f"(limit {limit:.1f}x)"
            )
    stalled = stalled_symbols(rows, window_end, bar, thresholds.dead_feed_bars, calendar)
    if stalled:
        status = CRITICAL
        reasons.extend(f"dead feed: {text}" for text in stalled)
    stamp = to_utc(timestamp) if timestamp is not None else utc_now()
    return DriftResult(
        status=status,
        timestamp=stamp.isoformat(),
        rows=n_rows,
        window_start=rows.start,
        window_end=rows.end,
        reference_rows=reference.rows,
        reference_window_start=reference.window_start,
        reference_window_end=reference.window_end,
        features=results,
        thresholds=thresholds,
        reasons=reasons,
        joint_scales={key: {"value": v, "threshold": t} for key, (v, t) in joints.items()},
    )


def _overall(
    results: dict[str, FeatureDrift], rows: int, lost: list[str], thresholds: DriftThresholds
) -> tuple[str, list[str]]:
    """The worst compared status; a dead or missing feed is critical whatever the rows."""
    reasons = [f"dead feed: {f.dead_feed}" for f in results.values() if f.dead_feed]
    gone = [name for name, f in results.items() if f.status == MISSING_FEATURE]
    if gone:
        reasons.append(f"features missing from the current rows: {', '.join(gone)}")
    if reasons:
        return CRITICAL, reasons
    compared = [f.status for f in results.values() if f.status in SEVERITY]
    if rows < thresholds.min_rows:
        return INSUFFICIENT, [f"{rows} current rows < min_rows {thresholds.min_rows}"]
    if not compared:
        return INSUFFICIENT, ["no feature has data in both windows"]
    status = max(compared, key=SEVERITY.__getitem__)
    beyond = [name for name, f in results.items() if f.status == CRITICAL]
    if status == CRITICAL and len(beyond) < thresholds.min_critical_features:
        status = WARNING
        reasons.append(
            f"only {', '.join(beyond)} beyond its critical limit "
            f"(critical needs {thresholds.min_critical_features} features at once)"
        )
    if lost:
        reasons.append(f"features with too few values in the current window: {', '.join(lost)}")
        if SEVERITY[status] < SEVERITY[WARNING]:
            status = WARNING
    return status, reasons


def format_table(result: DriftResult) -> str:
    """A plain-text table of the per-feature results and the overall status."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{'feature':<14} {'method':<6} {'psi':>7} {'>crit':>6} {'ks':>6} {'>crit':>6} "
        f"{'n':>7} {'nan%':>5}  status"
    ]
    for f in result.features.values():
        nan = "-" if f.nan_share_current is None else f"{100 * f.nan_share_current:.0f}"
        lines.append(
            f"{f.feature:<14} {f.method:<6} {num(f.psi):>7} {num(f.psi_critical_threshold):>6} "
            f"{num(f.ks):>6} {num(f.ks_critical_threshold):>6} {f.n_current:>7} {nan:>5}  "
            f"{f.status}{' (dead feed)' if f.dead_feed else ''}"
        )
    lines.append(
        f"overall: {result.status.upper()} ({result.rows} rows, "
        f"{result.window_start} .. {result.window_end})"
    )
    lines.extend(f"  {reason}" for reason in result.reasons)
    return "\n".join(lines)
