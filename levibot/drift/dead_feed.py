"""Dead feeds: a feature stuck or gone, or a symbol without new bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from levibot.calendar import TradingCalendar
from levibot.drift.monitoring import trailing_run
from levibot.drift.reference import MonitoredRows, ReferenceStats


def dead_feed_reason(
    reference: ReferenceStats, name: str, raw: dict[str, np.ndarray], j: int, bars: int
) -> str | None:
    """Why the feature's feed is dead in some symbol (stuck or gone), or None.

    Stuck: its last value repeated for more bars than `bars` and twice the longest
    repeat of the reference; gone: NaN for that long at the end of the window where the
    reference never was.
    """
    if reference.n.get(name, 0) == 0:
        return None
    stuck_after = max(bars, 2 * reference.longest_repeat.get(name, 0))
    gone_after = max(bars, 2 * reference.longest_nan.get(name, 0))
    for symbol, values in raw.items():
        repeat, missing = trailing_run(values[j])
        where = f" on {symbol}" if symbol else ""
        if repeat >= stuck_after:
            return (
                f"{name}{where} unchanged for the last {repeat} bars "
                f"(reference longest {reference.longest_repeat.get(name, 0)})"
            )
        if missing >= gone_after:
            return f"{name}{where} missing for the last {missing} bars"
    return None


def stalled_symbols(
    rows: MonitoredRows,
    window_end: pd.Timestamp | None,
    bar: pd.Timedelta | None,
    bars: int,
    calendar: TradingCalendar | None,
) -> list[str]:
    """Symbols whose newest bar is `bars` or more open-market bars before the window end."""
    if window_end is None or bar is None:
        return []
    out = []
    for symbol, last in rows.last_bar.items():
        if last is None:
            out.append(f"{symbol or 'the series'} has no bar in the window")
            continue
        gap = (
            calendar.open_seconds(last + bar, window_end)
            if calendar is not None
            else (window_end - (last + bar)).total_seconds()
        )
        missed = int(gap // bar.total_seconds())
        if missed >= bars:
            out.append(f"{symbol or 'the series'} has no new bar for {missed} bars")
    return out
