"""OHLCV sanity checks and quarantine: bad rows are set aside with a reason, never dropped.

A row is bad when its OHLCV values are missing or infinite, a price is not positive,
volume is negative, high is below max(open, close) or low above min(open, close), its
timestamp is off the timeframe grid, or it repeats an earlier timestamp (the first
occurrence is kept). Auxiliary series may be NaN: that means "not available".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from levibot.data.schema import OHLCV_COLUMNS, conform_bars
from levibot.timeframe import timeframe_delta

REASON_COLUMN = "reason"


class DataValidationError(ValueError):
    """Too many bad rows: the message names the source and shows the first bad rows."""


@dataclass
class ValidationResult:
    """Clean bars, the quarantined rows (with a reason) and the gaps found."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    gaps: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def missing_bars(self) -> int:
        return int(self.gaps["missing_bars"].sum()) if len(self.gaps) else 0

    @property
    def bad_fraction(self) -> float:
        total = len(self.clean) + len(self.quarantine)
        return len(self.quarantine) / total if total else 0.0


def row_problems(bars: pd.DataFrame, timeframe: str) -> pd.Series:
    """The first problem of each row ('' when the row is fine), in check order."""
    values = bars[OHLCV_COLUMNS]
    prices = bars[["open", "high", "low", "close"]]
    checks: list[tuple[str, np.ndarray]] = [
        ("nan_or_inf", ~np.isfinite(values.to_numpy(dtype="float64")).all(axis=1)),
        ("non_positive_price", (prices <= 0).any(axis=1).to_numpy()),
        ("negative_volume", (bars["volume"] < 0).to_numpy()),
        ("high_below_open_close", (bars["high"] < bars[["open", "close"]].max(axis=1)).to_numpy()),
        ("low_above_open_close", (bars["low"] > bars[["open", "close"]].min(axis=1)).to_numpy()),
        ("off_grid_timestamp", (bars.index != bars.index.floor(timeframe_delta(timeframe)))),
        ("duplicate_timestamp", bars.index.duplicated(keep="first")),
    ]
    reasons = np.full(len(bars), "", dtype=object)
    for reason, failed in reversed(checks):  # earlier checks win
        reasons = np.where(np.asarray(failed, dtype=bool), reason, reasons)
    return pd.Series(reasons, index=bars.index, name=REASON_COLUMN)


def find_gaps(index: pd.DatetimeIndex, timeframe: str) -> pd.DataFrame:
    """Runs of missing bars between consecutive clean timestamps."""
    step = timeframe_delta(timeframe)
    if len(index) < 2:
        return pd.DataFrame(columns=["after", "before", "missing_bars"])
    deltas = index[1:] - index[:-1]
    where = np.flatnonzero(deltas > step)
    return pd.DataFrame(
        {
            "after": index[where],
            "before": index[where + 1],
            "missing_bars": [int(deltas[i] / step) - 1 for i in where],
        }
    )


def validate_bars(
    bars: pd.DataFrame,
    *,
    timeframe: str,
    source: str,
    max_bad_fraction: float = 0.01,
) -> ValidationResult:
    """Split `bars` into clean rows and quarantined rows; fail loudly past the threshold.

    Raises DataValidationError naming `source` when the bad fraction exceeds
    `max_bad_fraction`, so a broken feed stops the pipeline instead of training on it.
    """
    frame = conform_bars(bars)
    order = np.argsort(frame.index.to_numpy(), kind="stable")
    frame = frame.iloc[order]
    reasons = row_problems(frame, timeframe)
    bad = reasons.to_numpy() != ""
    quarantine = frame.loc[bad].assign(**{REASON_COLUMN: reasons.to_numpy()[bad]})
    clean = frame.loc[~bad]
    gaps = find_gaps(clean.index, timeframe)
    result = ValidationResult(clean=clean, quarantine=quarantine, gaps=gaps)
    if result.bad_fraction > max_bad_fraction:
        counts = quarantine[REASON_COLUMN].value_counts().to_dict()
        raise DataValidationError(
            f"{source}: {len(quarantine)} of {len(frame)} rows are bad "
            f"({result.bad_fraction:.2%} > allowed {max_bad_fraction:.2%}); reasons {counts}; "
            f"first bad rows:\n{quarantine.head(5).to_string()}"
        )
    return result
