"""The server's view of the feature store: the newest rows per symbol, re-read on change.

A request costs an ``os.stat`` of the symbol's table and of its append delta; the tail
is re-read only when either's (mtime, size) changed, i.e. when a bar was appended.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd

from levibot.calendar import CALENDARS, TradingCalendar
from levibot.data.store import FeatureStore
from levibot.online.clock import Clock, system_clock
from levibot.online.readiness import NeedsWork


class FeatureFeed:
    """Cached tails of the store's feature tables."""

    def __init__(
        self, store: FeatureStore, *, rows: int = 256, clock: Clock = system_clock,
        calendar: TradingCalendar = CALENDARS["24/7"],
    ) -> None:  # fmt: skip
        self.store = store
        self.rows = rows
        self.clock = clock
        self.calendar = calendar
        self._cache: dict[tuple[str, int | None], tuple[tuple, pd.DataFrame]] = {}
        self._paths: dict[str, tuple[Path, Path]] = {}
        self._lock = threading.Lock()

    def latest(self, symbol: str, n: int | None = None, *, read: bool = True) -> pd.DataFrame:
        """The newest `n` rows (default all cached rows) of `symbol`'s features.

        Raises FileNotFoundError when the symbol has no stored features, and NeedsWork
        when `read` is false and the rows are not cached for the file as it is now.
        """
        paths = self._paths.get(symbol)
        if paths is None:
            paths = (self.store.path(symbol), self.store.delta_path(symbol))
            self._paths[symbol] = paths
        stat = os.stat(paths[0])
        try:
            delta = os.stat(paths[1])
            delta_key: tuple[int, int] | None = (delta.st_mtime_ns, delta.st_size)
        except FileNotFoundError:
            delta_key = None
        key = (stat.st_mtime_ns, stat.st_size, delta_key, n)
        cached = self._cache.get((symbol, n))
        if cached is None or cached[0] != key:
            if not read:
                raise NeedsWork(f"{symbol}: feature table changed")
            with self._lock:
                frame = self.store.tail(symbol, max(self.rows, n or 0))
                cached = (key, frame if n is None else frame.iloc[-n:])
                self._cache[(symbol, n)] = cached
        return cached[1]

    def staleness_seconds(self, symbol: str) -> float:
        """Open-market seconds from the newest bar's close to now (the feed's clock)."""
        last = self.latest(symbol, 1).index[-1]
        return self.calendar.open_seconds(last + self.store.bar_length, self.clock())
