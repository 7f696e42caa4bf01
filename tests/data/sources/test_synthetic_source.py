import numpy as np
import pandas as pd
import pytest

from levibot.data.schema import BAR_COLUMNS
from levibot.data.sources.synthetic import SyntheticMarket
from levibot.symbols import UnknownSymbolError

END = pd.Timestamp("2024-05-01", tz="UTC")
START = END - pd.Timedelta(days=60)
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture(scope="module")
def market_bars() -> dict[str, pd.DataFrame]:
    market = SyntheticMarket(seed=7)
    return {symbol: market.fetch(symbol, START, END) for symbol in SYMBOLS}


def log_returns(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff().dropna()


def test_same_seed_same_bars_other_seed_other_bars(market_bars):
    again = SyntheticMarket(seed=7).fetch("BTCUSDT", START, END)
    pd.testing.assert_frame_equal(again, market_bars["BTCUSDT"])
    other = SyntheticMarket(seed=8).fetch("BTCUSDT", START, END)
    assert not np.allclose(other["close"], again["close"])


def test_bars_do_not_depend_on_the_window_asked_for(market_bars):
    market = SyntheticMarket(seed=7)
    late = market.fetch("BTCUSDT", END - pd.Timedelta(days=3), END + pd.Timedelta(days=5))
    shared = late.index.intersection(market_bars["BTCUSDT"].index)
    assert len(shared) == 3 * 96
    pd.testing.assert_frame_equal(late.loc[shared], market_bars["BTCUSDT"].loc[shared])


def test_frame_contract(market_bars):
    frame = market_bars["ETHUSDT"]
    assert list(frame.columns) == BAR_COLUMNS
    assert frame.index.tz is not None and frame.index.name == "timestamp"
    assert len(frame) == 60 * 96 and frame.index.is_unique
    assert frame.index[0] == START and frame.index[-1] == END - pd.Timedelta(minutes=15)
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert frame.notna().all().all()


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_stylised_facts(market_bars, symbol):
    returns = log_returns(market_bars[symbol])
    assert returns.abs().autocorr(1) > 0.1  # volatility clustering
    assert returns.kurt() > 3  # fat tails (excess kurtosis)
    assert abs(returns.autocorr(1)) < 0.2  # predictable, but weakly


def test_btc_leads_the_alts_by_a_bar(market_bars):
    btc = log_returns(market_bars["BTCUSDT"])
    for alt in ("ETHUSDT", "SOLUSDT"):
        lagged = log_returns(market_bars[alt]).corr(btc.shift(1))
        reverse = btc.corr(log_returns(market_bars[alt]).shift(1))
        assert lagged > 0.05 and lagged > reverse + 0.05


def test_volume_has_intraday_seasonality(market_bars):
    by_hour = market_bars["BTCUSDT"]["volume"].groupby(market_bars["BTCUSDT"].index.hour).mean()
    assert by_hour.loc[12:17].mean() > 1.3 * by_hour.loc[0:5].mean()


def test_drift_scenarios_change_the_process_only_after_drift_start():
    drift_at = END - pd.Timedelta(days=5)
    base = SyntheticMarket(seed=7).fetch("BTCUSDT", START, END)
    shocked = SyntheticMarket(seed=7, drift_scenario="vol_shock", drift_start=drift_at).fetch(
        "BTCUSDT", START, END
    )
    before = base.index < drift_at
    pd.testing.assert_frame_equal(base.loc[before], shocked.loc[before])
    after_vol = log_returns(shocked.loc[~before]).std() / log_returns(base.loc[~before]).std()
    assert after_vol > 2.0

    frozen = SyntheticMarket(seed=7, drift_scenario="feature_freeze", drift_start=drift_at).fetch(
        "BTCUSDT", START, END
    )
    assert frozen.loc[~before, "ob_imbalance"].nunique() == 1
    assert base.loc[~before, "ob_imbalance"].nunique() > 100
    pd.testing.assert_series_equal(frozen["close"], base["close"])

    flipped = SyntheticMarket(seed=7, drift_scenario="trend_flip", drift_start=drift_at).fetch(
        "BTCUSDT", START, END
    )
    pd.testing.assert_frame_equal(flipped.loc[before], base.loc[before])
    assert not np.allclose(flipped.loc[~before, "close"], base.loc[~before, "close"])


def test_bad_requests_are_refused_clearly():
    with pytest.raises(UnknownSymbolError, match="available"):
        SyntheticMarket(seed=1).fetch("DOGEUSDT", START, END)
    with pytest.raises(ValueError, match="drift_start"):
        SyntheticMarket(drift_scenario="vol_shock")
    with pytest.raises(ValueError, match="starts at"):
        SyntheticMarket().fetch("BTCUSDT", pd.Timestamp("2020-01-01", tz="UTC"), END)
    assert SyntheticMarket().fetch("BTCUSDT", END, END).empty


def test_hourly_timeframe():
    frame = SyntheticMarket(seed=7, timeframe="1h").fetch("BTCUSDT", START, END)
    assert len(frame) == 60 * 24
    assert (frame.index.minute == 0).all()
