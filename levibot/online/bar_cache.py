"""The per-bar output cache of one server process, safe under its request threads.

Entries are keyed by tuples whose third element is the symbol; when a symbol's bar moves
on, that symbol's entries are dropped. Values are computed outside the lock (two threads
may compute the same entry once each: it is deterministic, so either copy is right), and
every read or change of the dict happens under the lock, so dropping a symbol's entries
never races an insert ("dictionary changed size during iteration").
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd


class BarCache:
    """Outputs for the current bar of each symbol."""

    def __init__(self) -> None:
        self._entries: dict[tuple, Any] = {}
        self._bar: dict[str, pd.Timestamp] = {}
        self._lock = threading.Lock()

    def roll(self, symbol: str, bar: pd.Timestamp) -> None:
        """Forget `symbol`'s entries when its newest bar is not the one they were for."""
        with self._lock:
            if self._bar.get(symbol) == bar:
                return
            self._entries = {k: v for k, v in self._entries.items() if k[2] != symbol}
            self._bar[symbol] = bar

    def get(self, key: tuple) -> Any:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple, value: Any) -> Any:
        with self._lock:
            self._entries[key] = value
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
