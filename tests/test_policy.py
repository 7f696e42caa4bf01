import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from levibot.backtest import positions_from_signals
from levibot.policy import (
    DEFAULT_ENTRY_GRID,
    DEFAULT_EXIT_GRID,
    SWEEP_COLUMNS,
    Policy,
    backtest_policy,
    best_policy,
    signal_for,
    sweep_thresholds,
)

T0 = pd.Timestamp("2026-01-01", tz="UTC")
TF = "15m"

# One cycle: a strong signal (0.66) before a rally that p_up keeps above 0.45, a fade
# to 0.40 before a drop, and a bait (0.60) before a loss. Entry in (0.60, 0.66] with
# exit in [0.40, 0.50) catches the rally, leaves before the drop and ignores the bait.
CYCLE_P = [0.66, 0.50, 0.50, 0.40, 0.40, 0.30, 0.60, 0.30]
CYCLE_R = [0.00, 0.02, 0.01, 0.01, -0.03, -0.01, 0.00, -0.02]


def cycles(n: int, start: pd.Timestamp = T0) -> tuple[pd.Series, pd.Series]:
    idx = pd.date_range(start, periods=8 * n, freq="15min", name="timestamp")
    return pd.Series(CYCLE_P * n, index=idx), pd.Series(CYCLE_R * n, index=idx)


def random_book(n: int, seed: int, start: pd.Timestamp = T0) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="15min", name="timestamp")
    returns = pd.Series(np.exp(rng.normal(0, 0.004, n)) - 1, index=idx)
    # p_up slightly informative about the NEXT bar, with a few missing predictions
    p_up = 0.5 + 0.1 * np.tanh(rng.normal(0, 1, n) + 50 * returns.shift(-1).fillna(0).to_numpy())
    p_up[rng.random(n) < 0.02] = np.nan
    return pd.Series(p_up, index=idx), returns


def test_default_grids():
    assert DEFAULT_ENTRY_GRID[0] == 0.50 and DEFAULT_ENTRY_GRID[-1] == 0.70
    assert len(DEFAULT_ENTRY_GRID) == 21
    assert DEFAULT_EXIT_GRID[0] == 0.30 and DEFAULT_EXIT_GRID[-1] == 0.55
    assert len(DEFAULT_EXIT_GRID) == 26


def test_policy_validation():
    Policy(0.6, 0.4, fee_bps=10, slippage_bps=5)
    for entry, exit in [(0.5, 0.5), (0.4, 0.6), (1.1, 0.5), (0.6, -0.1), (math.nan, 0.4)]:
        with pytest.raises(ValueError):
            Policy(entry, exit)
    with pytest.raises(ValueError):
        Policy(0.6, 0.4, fee_bps=-1)


def test_signal_for_cases():
    policy = Policy(0.6, 0.4)
    assert signal_for(0.6, False, policy) == "ENTRY"
    assert signal_for(0.59, False, policy) == "HOLD"
    assert signal_for(0.3, False, policy) == "HOLD"
    assert signal_for(0.4, True, policy) == "EXIT"
    assert signal_for(0.9, True, policy) == "HOLD"
    assert signal_for(math.nan, True, policy) == "HOLD"
    assert signal_for(math.nan, False, policy) == "HOLD"


@settings(max_examples=100, deadline=None)
@given(
    p_up=st.lists(st.one_of(st.floats(0, 1), st.just(math.nan)), max_size=50),
    exit=st.floats(0, 0.9),
    gap=st.floats(0.01, 0.5),
)
def test_signal_for_replays_positions_from_signals(p_up, exit, gap):
    policy = Policy(min(1.0, exit + gap), exit)
    open_, replay = False, []
    for p in p_up:
        action = signal_for(p, open_, policy)
        open_ = {"ENTRY": True, "EXIT": False, "HOLD": open_}[action]
        replay.append(float(open_))
    series = pd.Series(p_up, index=pd.RangeIndex(len(p_up)), dtype="float64")
    backtest_side = positions_from_signals(series, policy.entry_threshold, policy.exit_threshold)
    assert backtest_side.tolist() == replay


def test_sweep_picks_the_known_best_pair():
    p_up, returns = cycles(12)
    frame = sweep_thresholds(
        p_up,
        returns,
        entry_grid=[0.55, 0.60, 0.65],
        exit_grid=[0.35, 0.45],
        fee_bps=5,
        slippage_bps=0,
        timeframe=TF,
    )
    assert list(frame.columns) == SWEEP_COLUMNS
    assert len(frame) == 6
    policy, row = best_policy(frame, min_trades=5)
    assert (policy.entry_threshold, policy.exit_threshold) == (0.65, 0.45)
    assert policy.fee_bps == 5 and bool(row["meets_min_trades"])
    assert row["trade_count"] == 12
    assert row["score"] == frame["score"].max()
    full = sweep_thresholds(p_up, returns, fee_bps=5, slippage_bps=0, timeframe=TF)
    assert len(full) == sum(x < e for e in DEFAULT_ENTRY_GRID for x in DEFAULT_EXIT_GRID)
    best, _ = best_policy(full, min_trades=5)
    assert 0.60 < best.entry_threshold <= 0.66 and 0.40 <= best.exit_threshold < 0.50


def test_best_policy_falls_back_when_no_row_trades_enough():
    p_up, returns = cycles(3)
    frame = sweep_thresholds(
        p_up, returns, entry_grid=[0.65], exit_grid=[0.45], fee_bps=0, slippage_bps=0,
        timeframe=TF,
    )  # fmt: skip
    policy, row = best_policy(frame, min_trades=100)
    assert not row["meets_min_trades"]
    assert policy.entry_threshold == 0.65
    with pytest.raises(ValueError):
        best_policy(frame.iloc[:0])


def test_sweep_rows_equal_backtest_of_each_policy_pooled_across_symbols():
    books = {
        "BTCUSDT": random_book(400, 1),
        "ETHUSDT": random_book(300, 2, T0 + pd.Timedelta("10h")),
        "SOLUSDT": random_book(350, 3, T0 - pd.Timedelta("5h")),
    }
    p_map = {s: p for s, (p, _) in books.items()}
    r_map = {s: r for s, (_, r) in books.items()}
    frame = sweep_thresholds(
        p_map, r_map, entry_grid=[0.52, 0.58], exit_grid=[0.42, 0.5, 0.55],
        fee_bps=4, slippage_bps=2, timeframe=TF,
    )  # fmt: skip
    assert len(frame) == 5  # (0.52, 0.55) is dropped: exit must be below entry
    for row in frame.itertuples():
        policy = Policy(row.entry, row.exit, fee_bps=4, slippage_bps=2)
        metrics = backtest_policy(p_map, r_map, policy, timeframe=TF).metrics
        for column in ("sharpe", "max_drawdown", "cagr", "exposure", "total_return"):
            assert getattr(row, column) == pytest.approx(metrics[column], rel=1e-9, abs=1e-12)
        assert row.trade_count == metrics["trade_count"]


def test_sweep_rejects_misaligned_inputs():
    p_up, returns = cycles(2)
    with pytest.raises(ValueError, match="share one index"):
        sweep_thresholds(p_up.iloc[1:], returns, fee_bps=0, slippage_bps=0, timeframe=TF)
    with pytest.raises(ValueError, match="same symbols"):
        sweep_thresholds({"A": p_up}, {"B": returns}, fee_bps=0, slippage_bps=0, timeframe=TF)
    with pytest.raises(TypeError):
        sweep_thresholds({"A": p_up}, returns, fee_bps=0, slippage_bps=0, timeframe=TF)


def test_sweep_default_grid_is_fast():
    p_map, r_map = {}, {}
    for seed, symbol in enumerate(["BTCUSDT", "ETHUSDT", "SOLUSDT"]):
        p_map[symbol], r_map[symbol] = random_book(3000, seed)
    started = time.perf_counter()
    frame = sweep_thresholds(p_map, r_map, fee_bps=5, slippage_bps=2, timeframe=TF)
    elapsed = time.perf_counter() - started
    assert len(frame) > 400 and frame.notna().all().all()
    assert elapsed < 5.0
