import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from levibot.backtest import (
    TRADE_COLUMNS,
    combine_books,
    positions_from_signals,
    run_backtest,
    score_sharpe_minus_drawdown,
)
from levibot.timeframe import periods_per_year

T0 = pd.Timestamp("2026-01-01", tz="UTC")
TF = "15m"


def index(n: int, start: pd.Timestamp = T0) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="15min", name="timestamp")


def series(values, idx=None) -> pd.Series:
    values = list(values)
    return pd.Series(values, index=index(len(values)) if idx is None else idx, dtype="float64")


def backtest(positions, returns, fee_bps=0.0, slippage_bps=0.0):
    return run_backtest(
        series(positions),
        series(returns),
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        timeframe=TF,
    )


def reference_positions(p_up, entry, exit):
    """The state machine written as the obvious loop."""
    state, out = 0.0, []
    for p in p_up:
        if not math.isnan(p):
            if state == 0.0 and p >= entry:
                state = 1.0
            elif state == 1.0 and p <= exit:
                state = 0.0
        out.append(state)
    return out


def test_hand_computed_single_trade_with_fee():
    # enter at bar 1's close, exit at bar 3's close: earns bars 2 and 3, pays 10 bps twice
    result = backtest([0, 1, 1, 0, 0], [np.nan, 0.01, 0.02, -0.01, 0.03], fee_bps=10)
    expected = [1.0, 0.999, 0.999 * 1.02, 0.999 * 1.02 * 0.99 * 0.999, 0.999 * 1.02 * 0.99 * 0.999]
    np.testing.assert_array_almost_equal(result.equity.to_numpy(), expected, decimal=12)
    np.testing.assert_array_almost_equal(
        result.returns.to_numpy(), [0.0, -0.001, 0.02, 0.99 * 0.999 - 1, 0.0], decimal=12
    )
    trades = result.trades
    assert list(trades.columns) == TRADE_COLUMNS
    assert len(trades) == 1
    assert trades.loc[0, "entry_time"] == index(5)[1]
    assert trades.loc[0, "exit_time"] == index(5)[3]
    assert trades.loc[0, "bars_held"] == 2
    assert not trades.loc[0, "open_at_end"]
    assert trades.loc[0, "net_return"] == pytest.approx(expected[-1] - 1, abs=1e-12)
    m = result.metrics
    assert m["trade_count"] == 1
    assert m["win_rate"] == 1.0
    assert m["total_return"] == pytest.approx(expected[-1] - 1, abs=1e-12)
    assert m["exposure"] == pytest.approx(0.4)
    assert m["max_drawdown"] == pytest.approx(1 - expected[3] / expected[2], abs=1e-12)


def test_slippage_adds_to_fee():
    a = backtest([0, 1, 1, 0, 0], [0, 0.01, 0.02, -0.01, 0.03], fee_bps=6, slippage_bps=4)
    b = backtest([0, 1, 1, 0, 0], [0, 0.01, 0.02, -0.01, 0.03], fee_bps=10)
    pd.testing.assert_series_equal(a.equity, b.equity)


def test_position_at_t_earns_next_bars_return_not_its_own():
    returns = np.array([0.0] + [0.01, -0.01] * 20)  # alternating: knowing bar t says nothing
    same_bar_oracle = (returns > 0).astype(float)  # decided at t's close from t's own return
    result = backtest(same_bar_oracle, returns)
    assert result.metrics["total_return"] == pytest.approx(0.99**20 - 1)  # every hold loses
    peek = np.append((returns[1:] > 0).astype(float), 0.0)  # cheats: uses bar t+1
    assert backtest(peek, returns).metrics["total_return"] == pytest.approx(1.01**20 - 1)
    # the first bar's return is never earned: the book starts flat
    assert backtest([1, 1], [0.5, 0.0]).metrics["total_return"] == 0.0


def test_costs_charged_on_every_change():
    flips = [0, 1, 0, 1, 0, 1]
    result = backtest(flips, [0.0] * 6, fee_bps=25)
    assert result.metrics["total_return"] == pytest.approx(0.9975**5 - 1)
    assert result.metrics["trade_count"] == 3
    assert bool(result.trades["open_at_end"].iloc[-1])
    half = backtest([0, 0.5, 0.5, 0], [0.0] * 4, fee_bps=100)
    assert half.metrics["total_return"] == pytest.approx(0.995**2 - 1)


def test_open_trade_is_closed_at_last_bar_without_exit_cost():
    result = backtest([0, 1, 1], [0.0, 0.0, 0.1], fee_bps=10)
    trade = result.trades.iloc[0]
    assert bool(trade["open_at_end"])
    assert trade["exit_time"] == index(3)[-1]
    assert trade["bars_held"] == 1
    assert trade["net_return"] == pytest.approx(0.999 * 1.1 - 1)
    assert result.metrics["total_return"] == pytest.approx(trade["net_return"])


def test_sharpe_is_mean_over_sample_std_annualised():
    returns = [0.0, 0.01, -0.005, 0.02, 0.0, 0.003]
    result = backtest([1] * 6, returns)
    earned = np.array([0.0, *returns[1:]])
    expected = earned.mean() / earned.std(ddof=1) * math.sqrt(periods_per_year(TF))
    assert result.metrics["sharpe"] == pytest.approx(expected, rel=1e-12)


def test_max_drawdown_on_toy_curve():
    # equity 1.1, 0.88, 0.968, 1.2584, 0.6292: worst fall 1.2584 -> 0.6292 = 50%
    result = backtest([1] * 6, [0.0, 0.1, -0.2, 0.1, 0.3, -0.5])
    assert result.metrics["max_drawdown"] == pytest.approx(0.5)
    assert backtest([1, 1], [0.0, -0.1]).metrics["max_drawdown"] == pytest.approx(0.1)


def test_zero_trade_empty_and_single_row():
    flat = backtest([0] * 10, np.linspace(-0.01, 0.01, 10))
    assert flat.metrics == {
        "sharpe": 0.0,
        "max_drawdown": 0.0,
        "cagr": 0.0,
        "total_return": 0.0,
        "win_rate": 0.0,
        "avg_trade_return": 0.0,
        "trade_count": 0,
        "exposure": 0.0,
    }
    assert flat.trades.empty and list(flat.trades.columns) == TRADE_COLUMNS
    empty = backtest([], [])
    assert empty.metrics["trade_count"] == 0 and empty.equity.empty
    assert all(math.isfinite(v) for v in empty.metrics.values())
    single = backtest([1], [np.nan], fee_bps=10)
    assert single.equity.iloc[0] == pytest.approx(0.999)
    assert single.metrics["sharpe"] == 0.0 and single.metrics["trade_count"] == 1
    assert all(math.isfinite(v) for v in single.metrics.values())


def test_inputs_validated():
    with pytest.raises(ValueError, match="same index"):
        run_backtest(
            series([0, 1]), series([0, 1], index(2, T0 + pd.Timedelta("1h"))),
            fee_bps=0, slippage_bps=0, timeframe=TF,
        )  # fmt: skip
    with pytest.raises(ValueError, match="long-only"):
        backtest([0, -1], [0, 0])
    with pytest.raises(ValueError, match="NaN"):
        backtest([0, np.nan], [0, 0])
    with pytest.raises(ValueError, match="below -1"):
        backtest([0, 1], [0, -1.5])
    with pytest.raises(ValueError, match=">= 0"):
        backtest([0, 1], [0, 0], fee_bps=-1)


def test_hysteresis_basic_and_nan_keeps_state():
    p = series([0.5, 0.61, 0.55, np.nan, 0.45, 0.39, np.nan, 0.62])
    got = positions_from_signals(p, entry=0.6, exit=0.4)
    assert got.tolist() == [0, 1, 1, 1, 1, 0, 0, 1]
    assert got.index.equals(p.index)


@pytest.mark.parametrize(("entry", "exit"), [(0.5, 0.5), (0.4, 0.6), (1.2, 0.3), (0.6, -0.1)])
def test_bad_thresholds_rejected(entry, exit):
    with pytest.raises(ValueError):
        positions_from_signals(series([0.5]), entry, exit)


probabilities = st.one_of(st.floats(0, 1), st.just(float("nan")), st.sampled_from([0.4, 0.6]))


@settings(max_examples=200, deadline=None)
@given(
    p_up=st.lists(probabilities, max_size=60),
    exit=st.floats(0, 0.99),
    gap=st.floats(0.001, 1),
)
def test_hysteresis_matches_reference_loop(p_up, exit, gap):
    entry = min(1.0, exit + gap)
    got = positions_from_signals(series(p_up), entry, exit)
    assert got.tolist() == reference_positions(p_up, entry, exit)


@settings(max_examples=200, deadline=None)
@given(
    returns=st.lists(st.floats(-1, 5), min_size=1, max_size=60),
    positions=st.lists(st.floats(0, 1), min_size=60, max_size=60),
    cost=st.floats(0, 500),
)
def test_long_only_equity_never_negative(returns, positions, cost):
    result = backtest(positions[: len(returns)], returns, fee_bps=cost, slippage_bps=cost)
    assert (result.equity >= 0).all()
    assert (result.returns >= -1).all()
    assert 0 <= result.metrics["max_drawdown"] <= 1


def test_combine_books_aligns_by_timestamp():
    a = run_backtest(
        series([1, 1, 1]), series([0.0, 0.02, 0.04]), fee_bps=0, slippage_bps=0, timeframe=TF
    )
    later = index(3, T0 + pd.Timedelta("30min"))  # bars 2..4: overlaps a at bar 2 only
    b = run_backtest(
        series([1, 0, 0], later),
        series([0.0, 0.1, 0.3], later),
        fee_bps=0,
        slippage_bps=0,
        timeframe=TF,
    )
    book = combine_books({"A": a, "B": b})
    assert book.returns.index.equals(index(5))
    np.testing.assert_allclose(book.returns.to_numpy(), [0.0, 0.01, 0.02, 0.05, 0.0])
    np.testing.assert_allclose(book.positions.to_numpy(), [0.5, 0.5, 1.0, 0.0, 0.0])
    assert book.equity.iloc[-1] == pytest.approx(1.01 * 1.02 * 1.05)
    assert book.metrics["trade_count"] == 2
    assert book.trades["symbol"].tolist() == ["A", "B"]
    with pytest.raises(ValueError):
        combine_books({})


def test_score_is_sharpe_minus_weighted_drawdown():
    assert score_sharpe_minus_drawdown({"sharpe": 2.0, "max_drawdown": 0.1}) == pytest.approx(1.7)
    metrics = {"sharpe": 1.0, "max_drawdown": 0.2}
    assert score_sharpe_minus_drawdown(metrics, dd_weight=1.0) == pytest.approx(0.8)
