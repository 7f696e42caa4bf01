"""Market trading calendars: how much *open-market* time passed between two instants.

Staleness means "the feed is late", which only makes sense while the market trades: a
Friday-close FX bar read on Sunday morning is not 30 hours stale. Crypto trades 24/7;
FX closes weekly from Friday 22:00 to Sunday 22:00 UTC. A calendar is a weekly list of
closed windows, so custom sessions are data (`Settings.market_calendar`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class TradingCalendar:
    """Weekly closed windows as (start, end) offsets from Monday 00:00 UTC."""

    name: str
    closed: tuple[tuple[pd.Timedelta, pd.Timedelta], ...] = ()

    @property
    def always_open(self) -> bool:
        return not self.closed

    def _closed_seconds_until(self, t: pd.Timestamp) -> float:
        """Closed seconds from the epoch Monday 1970-01-05 to `t` (for differences)."""
        origin = pd.Timestamp("1970-01-05", tz="UTC")
        elapsed = t - origin
        weeks, rest = divmod(elapsed, WEEK)
        per_week = sum((end - start).total_seconds() for start, end in self.closed)
        partial = sum(
            max(0.0, (min(rest, end) - start).total_seconds()) for start, end in self.closed
        )
        return weeks * per_week + partial

    def open_seconds(self, start: pd.Timestamp, end: pd.Timestamp) -> float:
        """Seconds in [start, end) when the market is open (negative if end < start)."""
        total = (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds()
        if self.always_open:
            return total
        closed = self._closed_seconds_until(pd.Timestamp(end)) - self._closed_seconds_until(
            pd.Timestamp(start)
        )
        return total - closed

    def is_open(self, t: pd.Timestamp) -> bool:
        rest = (pd.Timestamp(t) - pd.Timestamp("1970-01-05", tz="UTC")) % WEEK
        return not any(start <= rest < end for start, end in self.closed)


def _at(day: int, hour: int) -> pd.Timedelta:
    return pd.Timedelta(days=day, hours=hour)


CALENDARS = {
    "24/7": TradingCalendar("24/7"),
    # Friday 22:00 -> Sunday 22:00 UTC (Monday = day 0)
    "fx": TradingCalendar("fx", ((_at(4, 22), _at(6, 22)),)),
}


def calendar_named(name: str) -> TradingCalendar:
    try:
        return CALENDARS[name]
    except KeyError:
        raise ValueError(
            f"unknown market_calendar {name!r}; use one of {sorted(CALENDARS)}"
        ) from None
