"""From p_up to trades: the hysteresis policy, its serving-side signal, and the sweep.

The server's `signal_for` and the backtest's `positions_from_signals` implement the
same state machine (flat -> long at p_up >= entry, long -> flat at p_up <= exit, NaN
keeps the state), so the thresholds the sweep picks mean the same thing live.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from levibot.backtest import (
    BacktestResult,
    book_stats,
    check_index,
    check_thresholds,
    combine_books,
    cost_rate,
    grid_portfolio,
    positions_from_signals,
    run_backtest,
)

DEFAULT_ENTRY_GRID = tuple(round(0.50 + 0.01 * i, 2) for i in range(21))  # 0.50 .. 0.70
DEFAULT_EXIT_GRID = tuple(round(0.30 + 0.01 * i, 2) for i in range(26))  # 0.30 .. 0.55
DEFAULT_MIN_TRADES = 10  # fewer trades than this is luck, not an edge
SWEEP_COLUMNS = [
    "entry",
    "exit",
    "sharpe",
    "max_drawdown",
    "cagr",
    "trade_count",
    "exposure",
    "total_return",
    "score",
    "fee_bps",
    "slippage_bps",
]
_CELLS_PER_CHUNK = 4_000_000  # bars x grid pairs per block: bounds memory on long histories

Signal = Literal["ENTRY", "EXIT", "HOLD"]


@dataclass(frozen=True)
class Policy:
    """Hysteresis thresholds on p_up plus the costs they were chosen under."""

    entry_threshold: float
    exit_threshold: float
    fee_bps: float = 0.0
    slippage_bps: float = 0.0

    def __post_init__(self) -> None:
        check_thresholds(self.entry_threshold, self.exit_threshold)
        cost_rate(self.fee_bps, self.slippage_bps)


def signal_for(p_up: float, position_open: bool, policy: Policy) -> Signal:
    """What the server should do at this bar's close; NaN p_up holds (no information)."""
    if p_up is None or math.isnan(p_up):
        return "HOLD"
    if not position_open and p_up >= policy.entry_threshold:
        return "ENTRY"
    if position_open and p_up <= policy.exit_threshold:
        return "EXIT"
    return "HOLD"


def backtest_policy(
    p_up: Mapping[str, pd.Series] | pd.Series,
    returns: Mapping[str, pd.Series] | pd.Series,
    policy: Policy,
    *,
    timeframe: str,
) -> BacktestResult:
    """Backtest one policy on one symbol, or per symbol then `combine_books`."""
    p_map, r_map = _as_mappings(p_up, returns)
    books = {
        symbol: run_backtest(
            positions_from_signals(p_map[symbol], policy.entry_threshold, policy.exit_threshold),
            r_map[symbol],
            fee_bps=policy.fee_bps,
            slippage_bps=policy.slippage_bps,
            timeframe=timeframe,
        )
        for symbol in p_map
    }
    return books[next(iter(books))] if isinstance(p_up, pd.Series) else combine_books(books)


def sweep_thresholds(
    p_up: Mapping[str, pd.Series] | pd.Series,
    returns: Mapping[str, pd.Series] | pd.Series,
    *,
    entry_grid: Sequence[float] = DEFAULT_ENTRY_GRID,
    exit_grid: Sequence[float] = DEFAULT_EXIT_GRID,
    fee_bps: float,
    slippage_bps: float,
    timeframe: str,
    dd_weight: float = 3.0,
) -> pd.DataFrame:
    """Metrics of every (entry, exit) pair with exit < entry, one row each.

    All pairs run at once as columns of one matrix through the same `hysteresis`,
    `simulate` and `book_stats` that `run_backtest` / `combine_books` use, so a row
    equals `backtest_policy(...).metrics` for that pair. Per-symbol books are combined
    equal-weight by timestamp, as `combine_books` does.
    """
    p_map, r_map = _as_mappings(p_up, returns)
    rate = cost_rate(fee_bps, slippage_bps)
    grid = [(e, x) for e in entry_grid for x in exit_grid if x < e]
    for entry, exit in grid:
        check_thresholds(entry, exit)
    entries = np.array([e for e, _ in grid], dtype="float64")
    exits = np.array([x for _, x in grid], dtype="float64")
    union = _union_length(r_map)
    chunk = max(1, _CELLS_PER_CHUNK // max(1, union))
    parts = []
    for start in range(0, len(grid), chunk):
        cols = slice(start, start + chunk)
        parts.append(_sweep_block(p_map, r_map, entries[cols], exits[cols], rate, timeframe))
    frame = pd.DataFrame({"entry": entries, "exit": exits})
    for column in ("sharpe", "max_drawdown", "cagr", "trade_count", "exposure", "total_return"):
        values = np.concatenate([part[column] for part in parts]) if parts else np.zeros(0)
        frame[column] = values.astype("int64" if column == "trade_count" else "float64")
    frame["score"] = frame["sharpe"] - dd_weight * frame["max_drawdown"]
    frame["fee_bps"] = float(fee_bps)
    frame["slippage_bps"] = float(slippage_bps)
    return frame[SWEEP_COLUMNS]


def best_policy(
    sweep_frame: pd.DataFrame, *, min_trades: int = DEFAULT_MIN_TRADES
) -> tuple[Policy, pd.Series]:
    """Highest-score pair among rows with >= `min_trades` trades.

    If no row trades enough, the highest score overall is taken and the returned row's
    `meets_min_trades` is False, so callers can warn instead of crashing. Ties go to
    the first row (lowest entry, then lowest exit, in the sweep's order).
    """
    if sweep_frame.empty:
        raise ValueError("the sweep is empty: no (entry, exit) pair with exit < entry")
    eligible = sweep_frame[sweep_frame["trade_count"] >= min_trades]
    pool = eligible if not eligible.empty else sweep_frame
    best = pool.loc[pool["score"].idxmax()]
    row = pd.Series({**best.to_dict(), "meets_min_trades": not eligible.empty}, name=best.name)
    policy = Policy(
        entry_threshold=float(row["entry"]),
        exit_threshold=float(row["exit"]),
        fee_bps=float(row["fee_bps"]),
        slippage_bps=float(row["slippage_bps"]),
    )
    return policy, row


def _as_mappings(
    p_up: Mapping[str, pd.Series] | pd.Series, returns: Mapping[str, pd.Series] | pd.Series
) -> tuple[Mapping[str, pd.Series], Mapping[str, pd.Series]]:
    """One series becomes a one-symbol book; symbols and indexes must match exactly."""
    if isinstance(p_up, pd.Series) != isinstance(returns, pd.Series):
        raise TypeError("p_up and returns must both be Series or both be mappings")
    if isinstance(p_up, pd.Series):
        p_up, returns = {"_": p_up}, {"_": returns}
    if not p_up or set(p_up) != set(returns):
        raise ValueError(f"p_up and returns need the same symbols: {sorted(p_up)}")
    for symbol in p_up:
        if not p_up[symbol].index.equals(returns[symbol].index):
            raise ValueError(
                f"{symbol}: p_up and returns must share one index "
                "(reindex p_up onto the returns; NaN p_up keeps the state)"
            )
        check_index(returns[symbol].index, symbol)
    return p_up, returns


def _union_length(r_map: Mapping[str, pd.Series]) -> int:
    index = None
    for series in r_map.values():
        index = series.index if index is None else index.union(series.index)
    return 0 if index is None else len(index)


def _sweep_block(
    p_map: Mapping[str, pd.Series],
    r_map: Mapping[str, pd.Series],
    entries: np.ndarray,
    exits: np.ndarray,
    rate: float,
    timeframe: str,
) -> dict[str, np.ndarray]:
    """Combined-book metrics for a block of threshold pairs (one column per pair)."""
    _, net, exposure, opened = grid_portfolio(p_map, r_map, entries, exits, rate)
    stats = book_stats(net, exposure, timeframe)
    return {**stats, "trade_count": opened.sum(axis=0).astype("int64")}
