"""Market data sources behind one interface: ``fetch(symbol, start, end) -> bar frame``.

``start`` is inclusive and ``end`` exclusive, both bar open times in UTC; the frame
follows :mod:`levibot.data.schema`. Sources do not validate: that is
:mod:`levibot.data.validate`'s job, so bad rows are quarantined in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pandas as pd

from levibot.symbols import UnknownSymbolError

if TYPE_CHECKING:
    from levibot.settings import Settings


__all__ = ["MarketSource", "UnknownSymbolError", "make_source"]


class MarketSource(Protocol):
    """Anything that can return bars for a symbol and a half-open time window."""

    name: str

    def fetch(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Bars with open time in [start, end) for `symbol`."""
        ...


DEFAULT_DRIFT_LEAD = pd.Timedelta(days=2)


def make_source(settings: Settings, now: pd.Timestamp | None = None) -> MarketSource:
    """Build the source named in the settings (imports the optional ones lazily).

    A synthetic drift scenario without an explicit ``drift_start`` begins two days
    before the window's end, so the most recent data is the drifted part.
    """
    if settings.source == "synthetic":
        from levibot.data.sources.synthetic import SyntheticMarket

        drift_start = settings.drift_start
        if settings.drift_scenario != "none" and drift_start is None:
            drift_start = pd.Timestamp(settings.window(now)[1]) - DEFAULT_DRIFT_LEAD
        return SyntheticMarket(
            seed=settings.seed,
            timeframe=settings.timeframe,
            symbols=settings.symbols,
            drift_scenario=settings.drift_scenario,
            drift_start=drift_start,
            edge=settings.sim_edge,
            edge_after=settings.sim_edge_after,
            edge_change=settings.sim_edge_change,
        )
    if settings.source == "csv":
        from levibot.data.sources.csv import CsvSource

        if settings.csv_path is None:
            raise ValueError("source 'csv' needs csv_path (a file, .zip or directory)")
        return CsvSource(
            settings.csv_path,
            timeframe=settings.timeframe,
            timestamp_format=settings.timestamp_format,
        )
    if settings.source == "exchange":
        from levibot.data.sources.exchange import ExchangeSource

        return ExchangeSource.from_exchange_id(settings.exchange_id, timeframe=settings.timeframe)
    raise ValueError(f"unknown source {settings.source!r}: use synthetic, csv or exchange")
