"""Bars from a live exchange through a ccxt-like object (``fetch_ohlcv``).

ccxt is an optional extra (``levibot[live]``) and is imported only when an exchange
is built by id, so offline installs and tests never need it. The source paginates
the half-open window, drops the bar that is still open (its values would change),
and leaves the auxiliary series NaN because OHLCV is all the endpoint provides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from levibot.data.schema import INDEX_NAME, OHLCV_COLUMNS, conform_bars, empty_bars
from levibot.timeframe import timeframe_delta, to_utc, utc_now

QUOTE_ASSETS = ("USDT", "USDC", "BUSD", "EUR", "USD", "BTC", "ETH")  # longest match first
INSTALL_HINT = "pip install 'levibot[live]'"


class OhlcvExchange(Protocol):
    """The one ccxt method the source needs."""

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int | None
    ) -> list[list[Any]]: ...


def split_symbol(symbol: str) -> tuple[str, str] | None:
    """(base, quote) of a concatenated symbol like BTCUSDT, or None when no quote is known."""
    text = re.sub(r"[^A-Za-z0-9]", "", symbol).upper()
    for quote in QUOTE_ASSETS:
        if text.endswith(quote) and len(text) > len(quote):
            return text[: -len(quote)], quote
    return None


def to_ccxt_symbol(symbol: str) -> str:
    """BTCUSDT / BTC-USDT -> BTC/USDT; symbols already in ccxt form pass unchanged."""
    if "/" in symbol:
        return symbol
    parts = split_symbol(symbol)
    return f"{parts[0]}/{parts[1]}" if parts else symbol


def _number(value: Any) -> float:
    """A price or volume as float; None or junk becomes NaN for the validator to catch."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _padded(row: Sequence[Any]) -> list[Any]:
    """The five OHLCV values of a row, short rows padded with None."""
    values = list(row[1:6])
    return values + [None] * (5 - len(values))


def _exchange_label(exchange: object) -> str:
    return str(getattr(exchange, "id", None) or type(exchange).__name__)


class ExchangeSource:
    """Paginated OHLCV bars from an exchange; auxiliary columns are NaN."""

    name = "exchange"

    def __init__(
        self,
        exchange: OhlcvExchange,
        *,
        timeframe: str,
        page_limit: int = 1000,
        now: Callable[[], pd.Timestamp] | None = None,
    ) -> None:
        if page_limit < 1:
            raise ValueError(f"page_limit must be positive, got {page_limit}")
        self.exchange = exchange
        self.timeframe = timeframe
        self.step = timeframe_delta(timeframe)
        self.page_limit = page_limit
        self._now = now or utc_now
        self.last_report: dict[str, Any] = {}

    @classmethod
    def from_exchange_id(cls, exchange_id: str, *, timeframe: str, **kwargs: Any) -> ExchangeSource:
        """Build a ccxt exchange by id (e.g. 'binance'); needs the optional ccxt extra."""
        try:
            import ccxt
        except ImportError as exc:
            raise ImportError(
                f"the exchange source needs ccxt, which is not installed; "
                f"install the optional extra with: {INSTALL_HINT}"
            ) from exc
        factory = getattr(ccxt, exchange_id, None)
        if factory is None:
            raise ValueError(f"ccxt has no exchange {exchange_id!r}")
        return cls(factory({"enableRateLimit": True}), timeframe=timeframe, **kwargs)

    def fetch(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Closed bars with open time in [start, end) for `symbol`."""
        start, end = to_utc(start), to_utc(end)
        rows, pages = self._paginate(symbol, start, end)
        frame = self._to_frame(rows)
        frame = frame.loc[(frame.index >= start) & (frame.index < end)]
        still_open = frame.index + self.step > to_utc(self._now())
        self.last_report = {
            "symbol": symbol,
            "exchange": _exchange_label(self.exchange),
            "pages": pages,
            "open_bars_dropped": int(still_open.sum()),
            "unparseable_timestamps": 0,
        }
        frame = frame.loc[~still_open]
        return conform_bars(frame) if len(frame) else empty_bars()

    def _page(self, symbol: str, since: int) -> list[list[Any]]:
        """One fetch_ohlcv call; exchange errors become a RuntimeError naming both ends."""
        market = to_ccxt_symbol(symbol)
        try:
            return list(self.exchange.fetch_ohlcv(market, self.timeframe, since, self.page_limit))
        except Exception as exc:
            raise RuntimeError(
                f"exchange {_exchange_label(self.exchange)} failed to return {self.timeframe} "
                f"bars for {symbol} ({market}) since {pd.Timestamp(since, unit='ms', tz='UTC')}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _paginate(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[list[Sequence[Any]], int]:
        """Pages from start until end; stops on an empty page or one that does not advance
        (an exchange ignoring `since` would otherwise be asked forever)."""
        since = int(start.value // 1_000_000)
        end_ms = int(end.value // 1_000_000)
        step_ms = int(self.step.total_seconds() * 1000)
        rows: list[Sequence[Any]] = []
        pages = 0
        while since < end_ms:
            page = self._page(symbol, since)
            pages += 1
            fresh = [row for row in page if int(row[0]) >= since]  # re-sent rows are not new
            if not fresh:
                break
            rows.extend(fresh)
            since = max(int(row[0]) for row in fresh) + step_ms
        return rows, pages

    def _to_frame(self, rows: list[Sequence[Any]]) -> pd.DataFrame:
        """[ms, o, h, l, c, v] rows as a sorted bar frame (None values become NaN)."""
        if not rows:
            return empty_bars()
        values = np.array([[_number(v) for v in _padded(row)] for row in rows], dtype="float64")
        stamps = np.array([int(row[0]) for row in rows], dtype="int64")
        index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ms", utc=True), name=INDEX_NAME)
        frame = pd.DataFrame(values, index=index, columns=OHLCV_COLUMNS)
        return frame.iloc[np.argsort(stamps, kind="stable")]
