"""The server's view of the feature store: the newest rows per symbol, re-read on change.

A request costs one ``os.stat`` of the symbol's file; the tail is re-read only when
the file's (mtime, size) changed, i.e. when the ingest appended a bar.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd

from levibot.data.store import FeatureStore
from levibot.online.clock import Clock, system_clock


class FeatureFeed:
    """Cached tails of the store's feature tables."""

    def __init__(
        self, store: FeatureStore, *, rows: int = 256, clock: Clock = system_clock
    ) -> None:
        self.store = store
        self.rows = rows
        self.clock = clock
        self._cache: dict[tuple[str, int | None], tuple[tuple, pd.DataFrame]] = {}
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()

    def latest(self, symbol: str, n: int | None = None) -> pd.DataFrame:
        """The newest `n` rows (default all cached rows) of `symbol`'s features.

        Raises FileNotFoundError when the symbol has no stored features.
        """
        path = self._paths.get(symbol)
        if path is None:
            path = self._paths.setdefault(symbol, self.store.path(symbol))
        stat = os.stat(path)
        key = (stat.st_mtime_ns, stat.st_size, n)
        cached = self._cache.get((symbol, n))
        if cached is None or cached[0] != key:
            with self._lock:
                frame = self.store.tail(symbol, max(self.rows, n or 0))
                cached = (key, frame if n is None else frame.iloc[-n:])
                self._cache[(symbol, n)] = cached
        return cached[1]

    def staleness_seconds(self, symbol: str) -> float:
        """now - close time of the newest bar (the store's definition, on the feed's clock)."""
        last = self.latest(symbol, 1).index[-1]
        return float((self.clock() - (last + self.store.bar_length)).total_seconds())
