"""The synthetic universe beyond BTC/ETH/SOL: ALT001USDT .. ALT999USDT.

What must hold for a scaling benchmark to mean anything: adding alts never changes the
three original assets (pinned against digests taken before alts existed), a symbol's
bars do not depend on which other symbols were asked for or in what order, and a bad
name is refused with a message that says what exists.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from levibot.data.sources.synthetic import (
    ASSETS,
    SyntheticMarket,
    alt_spec,
    alt_symbol,
    synthetic_universe,
)
from levibot.data.validate import validate_bars
from levibot.ingest import run_ingest
from levibot.settings import load_settings
from levibot.symbols import UnknownSymbolError

START = pd.Timestamp("2024-01-01", tz="UTC")
END = pd.Timestamp("2024-01-11", tz="UTC")
CORE = list(ASSETS)

# sha256 (first 16 hex) of the ';'-joined '{:.8g}' values, seed 7, [START, END), taken
# from the source before alts were added; 8 significant digits keep the digest immune to
# last-bit differences of exp/log between CPUs while any real change shows.
PINNED_CLOSE = {
    "BTCUSDT": "8d7f7367fd76cc31",
    "ETHUSDT": "db4258a29d8a9ce6",
    "SOLUSDT": "02a4c11579304ac3",
}
PINNED_BTC_ALL_COLUMNS = "35820cfc2933db32"
PINNED_LAST_CLOSE = {
    "BTCUSDT": 41006.92127990229,
    "ETHUSDT": 2317.1555194108228,
    "SOLUSDT": 88.88054612792958,
}


def digest(values: np.ndarray) -> str:
    text = ";".join(f"{x:.8g}" for x in np.ravel(values))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fetch_all(market: SyntheticMarket, symbols: list[str]) -> dict[str, pd.DataFrame]:
    return {symbol: market.fetch(symbol, START, END) for symbol in symbols}


@pytest.fixture(scope="module")
def with_alts() -> dict[str, pd.DataFrame]:
    universe = synthetic_universe(20)
    return fetch_all(SyntheticMarket(seed=7, symbols=universe), universe)


@pytest.mark.parametrize("symbol", CORE)
def test_original_three_match_the_digests_taken_before_alts_existed(symbol, with_alts):
    for frame in (SyntheticMarket(seed=7).fetch(symbol, START, END), with_alts[symbol]):
        assert digest(frame["close"].to_numpy()) == PINNED_CLOSE[symbol]
        assert frame["close"].iloc[-1] == pytest.approx(PINNED_LAST_CLOSE[symbol], rel=1e-12)
    if symbol == "BTCUSDT":
        assert digest(with_alts[symbol].to_numpy()) == PINNED_BTC_ALL_COLUMNS


def test_alts_leave_the_original_three_bit_identical(with_alts):
    alone = fetch_all(SyntheticMarket(seed=7, symbols=CORE), CORE)
    for symbol in CORE:
        pd.testing.assert_frame_equal(with_alts[symbol], alone[symbol], check_exact=True)


def test_bars_do_not_depend_on_request_order_or_company(with_alts):
    universe = list(with_alts)
    backwards = fetch_all(SyntheticMarket(seed=7, symbols=universe[::-1]), universe[::-1])
    for symbol in universe:
        pd.testing.assert_frame_equal(backwards[symbol], with_alts[symbol], check_exact=True)
    lonely = SyntheticMarket(seed=7, symbols=["ALT011USDT"]).fetch("ALT011USDT", START, END)
    pd.testing.assert_frame_equal(lonely, with_alts["ALT011USDT"], check_exact=True)


def test_alts_are_deterministic_by_seed(with_alts):
    again = SyntheticMarket(seed=7).fetch("ALT005USDT", START, END)
    pd.testing.assert_frame_equal(again, with_alts["ALT005USDT"], check_exact=True)
    other = SyntheticMarket(seed=8).fetch("ALT005USDT", START, END)
    assert not np.allclose(other["close"], again["close"])
    assert alt_spec(5) == alt_spec(5)  # constants from the number alone, not the seed
    assert alt_spec(5) != alt_spec(6)


def test_each_alt_has_its_own_stream_and_follows_btc(with_alts):
    btc = np.log(with_alts["BTCUSDT"]["close"]).diff().dropna()
    first, second = with_alts["ALT001USDT"], with_alts["ALT002USDT"]
    # order-book imbalance is drawn from the asset's own stream only
    assert abs(np.corrcoef(first["ob_imbalance"], second["ob_imbalance"])[0, 1]) < 0.1
    for frame in (first, second):
        assert np.log(frame["close"]).diff().dropna().corr(btc) > 0.3


@pytest.mark.parametrize(
    "symbol", ["ALT000USDT", "ALT1USDT", "ALT1000USDT", "ALT001USDC", "FOOUSDT", "alt001usdt"]
)
def test_unknown_names_are_refused_clearly(symbol):
    with pytest.raises(UnknownSymbolError, match=r"ALT001USDT \.\. ALT999USDT") as raised:
        SyntheticMarket(symbols=["BTCUSDT", symbol])
    assert symbol in str(raised.value)
    with pytest.raises(UnknownSymbolError, match="BTCUSDT, ETHUSDT, SOLUSDT"):
        SyntheticMarket().fetch(symbol, START, END)


def test_universe_sizes():
    assert synthetic_universe(2) == ["BTCUSDT", "ETHUSDT"]
    assert synthetic_universe(5) == [*CORE, "ALT001USDT", "ALT002USDT"]
    assert synthetic_universe(len(CORE) + 999)[-1] == "ALT999USDT"
    for bad in (0, len(CORE) + 1000):
        with pytest.raises(ValueError, match="symbols"):
            synthetic_universe(bad)
    with pytest.raises(ValueError, match="alt numbers"):
        alt_symbol(0)


def test_hundred_symbols_generate_valid_bars():
    universe = synthetic_universe(100)
    assert len(set(universe)) == 100 and universe[:3] == CORE
    assert universe[-1] == "ALT097USDT"
    market = SyntheticMarket(seed=7, symbols=universe)
    end = START + pd.Timedelta(days=3)
    closes = []
    for symbol in universe:
        frame = market.fetch(symbol, START, end)
        result = validate_bars(frame, timeframe="15m", source="synthetic", max_bad_fraction=0.0)
        assert len(result.clean) == 3 * 96 and result.quarantine.empty, symbol
        closes.append(frame["close"].to_numpy())
    assert len({digest(c) for c in closes}) == 100  # no two alts share a path


def test_ingest_accepts_alts_on_the_synthetic_source(tmp_path, monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("LEVIBOT_"):
            monkeypatch.delenv(name)
    settings = load_settings(
        None, root=tmp_path, symbols="BTCUSDT,ALT001USDT,ALT042USDT", days=3,
        end="2024-01-05T00:00:00Z", seed=7,
    )  # fmt: skip
    result = run_ingest(settings, project_root=tmp_path)
    assert list(result.quality["symbol"]) == ["BTCUSDT", "ALT001USDT", "ALT042USDT"]
    assert (result.quality["rows_stored"] == 3 * 96).all()
    alt = result.features["ALT042USDT"]
    assert alt["btc_ret_1"].notna().sum() > 0  # BTC leads the alts in the features too
