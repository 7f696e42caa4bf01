"""ExchangeSource against a fake ccxt-like exchange: no network, no ccxt."""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
import pytest

from levibot.data.schema import BAR_COLUMNS, empty_bars
from levibot.data.sources.exchange import ExchangeSource, to_ccxt_symbol

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR_MS = 3_600_000
T0_MS = T0.value // 1_000_000


class FakeExchange:
    """Serves hourly bars from T0 for `n_bars` hours, `limit` per call, like ccxt."""

    id = "fakex"

    def __init__(self, n_bars: int = 50, *, ignore_since: bool = False) -> None:
        self.n_bars = n_bars
        self.ignore_since = ignore_since
        self.calls: list[tuple[str, str, int | None, int | None]] = []

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]:
        self.calls.append((symbol, timeframe, since, limit))
        first = 0 if self.ignore_since or since is None else -(-(since - T0_MS) // HOUR_MS)
        stop = min(self.n_bars, first + (limit or 500))
        return [
            [T0_MS + i * HOUR_MS, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0]
            for i in range(max(first, 0), stop)
        ]


def fixed_now(ts: pd.Timestamp):
    return lambda: ts


def source_for(exchange: Any, *, page_limit: int = 10, now: pd.Timestamp | None = None):
    return ExchangeSource(
        exchange,
        timeframe="1h",
        page_limit=page_limit,
        now=fixed_now(now or T0 + pd.Timedelta(days=30)),
    )


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("BTCUSDT", "BTC/USDT"),
        ("ETHBTC", "ETH/BTC"),
        ("SOLUSDC", "SOL/USDC"),
        ("BTCUSD", "BTC/USD"),
        ("btc-eur", "BTC/EUR"),
        ("BNBBUSD", "BNB/BUSD"),
        ("LINKETH", "LINK/ETH"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("WEIRD", "WEIRD"),
    ],
)
def test_symbol_mapping(symbol: str, expected: str) -> None:
    assert to_ccxt_symbol(symbol) == expected


def test_paginates_the_window_and_maps_the_symbol() -> None:
    exchange = FakeExchange(n_bars=50)
    source = source_for(exchange, page_limit=10)
    start, end = T0 + pd.Timedelta(hours=3), T0 + pd.Timedelta(hours=28)
    bars = source.fetch("BTCUSDT", start, end)
    assert list(bars.columns) == BAR_COLUMNS
    assert list(bars.index) == list(pd.date_range(start, end, freq="1h", inclusive="left"))
    assert bars["open"].iloc[0] == 103.0
    assert bars[["funding_rate", "open_interest", "ob_imbalance"]].isna().all().all()
    assert [call[0] for call in exchange.calls] == ["BTC/USDT"] * 3
    assert [call[2] for call in exchange.calls] == [
        T0_MS + 3 * HOUR_MS, T0_MS + 13 * HOUR_MS, T0_MS + 23 * HOUR_MS,
    ]  # fmt: skip
    assert all(call[1] == "1h" and call[3] == 10 for call in exchange.calls)


def test_stops_on_an_empty_page() -> None:
    exchange = FakeExchange(n_bars=12)
    bars = source_for(exchange, page_limit=10).fetch("BTCUSDT", T0, T0 + pd.Timedelta(days=2))
    assert len(bars) == 12
    assert len(exchange.calls) == 3 and exchange.calls[-1][2] == T0_MS + 12 * HOUR_MS


def test_stops_when_a_page_does_not_advance() -> None:
    exchange = FakeExchange(n_bars=5, ignore_since=True)
    bars = source_for(exchange, page_limit=10).fetch(
        "BTCUSDT", T0 + pd.Timedelta(hours=2), T0 + pd.Timedelta(days=2)
    )
    assert list(bars.index) == list(pd.date_range(T0 + pd.Timedelta(hours=2), periods=3, freq="h"))
    assert len(exchange.calls) == 2


def test_drops_the_still_open_bar() -> None:
    now = T0 + pd.Timedelta(hours=5, minutes=20)  # the 05:00 bar is still open
    source = source_for(FakeExchange(n_bars=6), now=now)
    bars = source.fetch("ETHUSDT", T0, T0 + pd.Timedelta(days=1))
    assert bars.index[-1] == T0 + pd.Timedelta(hours=4)
    assert source.last_report["open_bars_dropped"] == 1


def test_empty_window_returns_empty_bars() -> None:
    source = source_for(FakeExchange(n_bars=0))
    pd.testing.assert_frame_equal(
        source.fetch("BTCUSDT", T0, T0 + pd.Timedelta(hours=3)), empty_bars()
    )


def test_exchange_errors_name_symbol_and_exchange() -> None:
    class Broken(FakeExchange):
        def fetch_ohlcv(self, *args: Any, **kwargs: Any) -> list[list[Any]]:
            raise ConnectionError("rate limited")

    with pytest.raises(RuntimeError, match=r"fakex.*BTCUSDT.*rate limited") as info:
        source_for(Broken()).fetch("BTCUSDT", T0, T0 + pd.Timedelta(hours=3))
    assert isinstance(info.value.__cause__, ConnectionError)


def test_missing_ccxt_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)
    with pytest.raises(ImportError, match=r"levibot\[live\]"):
        ExchangeSource.from_exchange_id("binance", timeframe="15m")


def test_from_exchange_id_builds_the_named_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeCcxt:
        @staticmethod
        def fakex(config: dict) -> FakeExchange:
            assert config["enableRateLimit"] is True
            return FakeExchange()

    monkeypatch.setitem(sys.modules, "ccxt", FakeCcxt)
    source = ExchangeSource.from_exchange_id("fakex", timeframe="1h")
    assert isinstance(source.exchange, FakeExchange) and source.name == "exchange"
    with pytest.raises(ValueError, match="nope"):
        ExchangeSource.from_exchange_id("nope", timeframe="1h")
