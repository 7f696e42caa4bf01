"""One drift comparison: PSI and KS per feature against a reference, with statuses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from levibot.drift.reference import ReferenceStats, _index_bounds, _sorted_columns
from levibot.drift.stats import bin_counts_sorted, ks_statistic, psi
from levibot.thresholds import CRITICAL, OK, WARNING, DriftThresholds
from levibot.timeframe import to_utc, utc_now

NO_DATA, INSUFFICIENT = "no_data", "insufficient_data"
SEVERITY = {OK: 0, WARNING: 1, CRITICAL: 2}
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, INSUFFICIENT: 3}


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift; psi/ks are None when there was nothing to compare."""

    feature: str
    status: str
    psi: float | None
    ks: float | None
    n_current: int
    n_reference: int
    nan_share_current: float | None
    nan_share_reference: float | None


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

    @property
    def critical_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.status == CRITICAL]

    @property
    def warning_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.status == WARNING]

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
            "reasons": list(self.reasons),
            "thresholds": self.thresholds.model_dump(),
            "features": {name: asdict(f) for name, f in self.features.items()},
            **self.extra,
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def check_drift(
    reference: ReferenceStats,
    current_frame: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
    *,
    timestamp: pd.Timestamp | str | None = None,
) -> DriftResult:
    """PSI and KS of every reference feature in `current_frame`, with statuses."""
    thresholds = thresholds if thresholds is not None else DriftThresholds()
    ordered, counts = _sorted_columns(current_frame, reference.features)
    rows = len(current_frame)
    results: dict[str, FeatureDrift] = {}
    lost: list[str] = []
    for j, name in enumerate(reference.features):
        n_ref, n_cur = reference.n[name], int(counts[j])
        psi_value = ks_value = None
        if n_ref == 0 or n_cur == 0:
            status = NO_DATA
        else:
            column = ordered[j, :n_cur]
            cur_props = bin_counts_sorted(column, reference.inner_edges[name]) / n_cur
            psi_value = psi(reference.proportions[name], cur_props)
            # float64 -> float32 is monotone, so the rounded column stays sorted
            ref_sorted = reference.sorted_values[name]
            ks_value = ks_statistic(ref_sorted, column.astype(ref_sorted.dtype))
            status = (
                INSUFFICIENT
                if n_cur < thresholds.min_rows
                else thresholds.level(
                    psi_value,
                    ks_value,
                    psi_base=reference.baseline_psi.get(name, 0.0),
                    ks_base=reference.baseline_ks.get(name, 0.0),
                )
            )
        if n_ref > 0 and n_cur < thresholds.min_rows and rows >= thresholds.min_rows:
            lost.append(name)
        results[name] = FeatureDrift(
            feature=name,
            status=status,
            psi=psi_value,
            ks=ks_value,
            n_current=n_cur,
            n_reference=n_ref,
            nan_share_current=_share(rows - n_cur, rows),
            nan_share_reference=reference.nan_share[name] if reference.rows else None,
        )
    compared = [f.status for f in results.values() if f.status in SEVERITY]
    reasons = []
    if rows < thresholds.min_rows:
        status = INSUFFICIENT
        reasons.append(f"{rows} current rows < min_rows {thresholds.min_rows}")
    elif not compared:
        status = INSUFFICIENT
        reasons.append("no feature has data in both windows")
    else:
        status = max(compared, key=SEVERITY.__getitem__)
        if lost:
            reasons.append(f"features missing in the current window: {', '.join(lost)}")
            if SEVERITY[status] < SEVERITY[WARNING]:
                status = WARNING
    start, end = _index_bounds(current_frame)
    stamp = to_utc(timestamp) if timestamp is not None else utc_now()
    return DriftResult(
        status=status,
        timestamp=stamp.isoformat(),
        rows=rows,
        window_start=start,
        window_end=end,
        reference_rows=reference.rows,
        reference_window_start=reference.window_start,
        reference_window_end=reference.window_end,
        features=results,
        thresholds=thresholds,
        reasons=reasons,
    )


def format_table(result: DriftResult) -> str:
    """A plain-text table of the per-feature results and the overall status."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"{'feature':<16} {'psi':>8} {'ks':>7} {'n':>8} {'nan%':>6}  status"]
    for f in result.features.values():
        nan = "-" if f.nan_share_current is None else f"{100 * f.nan_share_current:.0f}"
        lines.append(
            f"{f.feature:<16} {num(f.psi):>8} {num(f.ks):>7} {f.n_current:>8} {nan:>6}  {f.status}"
        )
    lines.append(
        f"overall: {result.status.upper()} ({result.rows} rows, "
        f"{result.window_start} .. {result.window_end})"
    )
    lines.extend(f"  {reason}" for reason in result.reasons)
    return "\n".join(lines)
