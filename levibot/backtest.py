"""The one vectorised backtest: threshold sweep, marathon and evaluation all call it.

Timing (the rule that keeps it free of look-ahead): ``positions[t]`` is the exposure
decided at bar t's close, using only what is known then (e.g. the model's p_up at t).
It is held over the NEXT bar, so it earns ``returns[t + 1]``, where ``returns[t]`` is
bar t's simple return ``close_t / close_{t-1} - 1``. The book starts flat (the
position before the first bar is 0), so ``returns[0]`` is never earned and may be NaN.

Costs: fee + slippage, in basis points of notional, are charged on every change of
position, ``|positions[t] - positions[t-1]|``, at bar t's close (the trade fills
there). They are taken from equity multiplicatively, so bar t's net return is
``(1 + positions[t-1] * returns[t]) * (1 - cost * |Δpositions[t]|) - 1``. Long-only
exposure in [0, 1] with returns >= -1 and cost < 100% therefore never makes equity
negative.

NaN returns (the first bar, a gap) are treated as 0 return. A trade still open after
the last bar is reported as closed there, marked to market without an exit cost (its
``open_at_end`` flag says so), so trade returns compound to the equity curve exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

import numpy as np
import pandas as pd

from levibot.timeframe import periods_per_year

TRADE_COLUMNS = ["entry_time", "exit_time", "bars_held", "net_return", "open_at_end"]
CAGR_CAP = 1e9  # a lucky handful of bars annualises to absurd numbers; keep JSON finite


@dataclass(frozen=True)
class BacktestResult:
    """One book's per-bar net returns, equity (capital 1.0 before the first bar), trades."""

    returns: pd.Series
    equity: pd.Series
    positions: pd.Series
    trades: pd.DataFrame
    metrics: dict[str, float | int]
    timeframe: str


def check_thresholds(entry: float, exit: float) -> None:
    """Hysteresis needs a dead band: 0 <= exit < entry <= 1, else the state would flap."""
    if not (math.isfinite(entry) and math.isfinite(exit)):
        raise ValueError(f"thresholds must be finite numbers, got entry={entry}, exit={exit}")
    if not 0.0 <= exit < entry <= 1.0:
        raise ValueError(f"need 0 <= exit < entry <= 1, got entry={entry}, exit={exit}")


def cost_rate(fee_bps: float, slippage_bps: float) -> float:
    """Fraction of notional lost per unit of position change."""
    if not (fee_bps >= 0 and slippage_bps >= 0):
        raise ValueError(f"fee_bps and slippage_bps must be >= 0, got {fee_bps}, {slippage_bps}")
    rate = (fee_bps + slippage_bps) / 1e4
    if rate >= 1.0:
        raise ValueError(f"fee + slippage must be below 10,000 bps, got {rate * 1e4}")
    return rate


def hysteresis(p_up: np.ndarray, entry: np.ndarray, exit: np.ndarray) -> np.ndarray:
    """(n,) p_up and (k,) threshold pairs -> (n, k) 0/1 positions, one column per pair.

    The state machine flat -> long at p >= entry, long -> flat at p <= exit, else keep,
    is exactly "mark 1 / 0 / undecided, forward-fill, start flat", because exit < entry
    makes the two marks exclusive. NaN p_up is undecided, so it keeps the current state.
    """
    p = np.asarray(p_up, dtype="float64")[:, None]
    mark = np.where(p >= entry[None, :], 1.0, np.where(p <= exit[None, :], 0.0, np.nan))
    rows = np.where(np.isnan(mark), -1, np.arange(len(p))[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = np.take_along_axis(mark, np.maximum(rows, 0), axis=0)
    return np.where(rows >= 0, filled, 0.0)


def positions_from_signals(p_up: pd.Series, entry: float, exit: float) -> pd.Series:
    """0/1 long exposure from p_up with hysteresis (see `hysteresis`); same index as p_up."""
    check_thresholds(entry, exit)
    column = hysteresis(p_up.to_numpy(dtype="float64"), np.array([entry]), np.array([exit]))
    return pd.Series(column[:, 0], index=p_up.index, name="position")


def simulate(positions: np.ndarray, returns: np.ndarray, rate: float) -> np.ndarray:
    """(n, k) exposures and (n,) bar returns -> (n, k) net returns (timing: module doc)."""
    n, k = positions.shape
    previous = np.concatenate([np.zeros((1, k)), positions], axis=0)[:n]
    gross = 1.0 + previous * np.nan_to_num(returns, nan=0.0)[:, None]
    return gross * (1.0 - rate * np.abs(positions - previous)) - 1.0


def entry_counts(positions: np.ndarray) -> np.ndarray:
    """Trades per column: bars where exposure goes from flat to positive."""
    previous = np.concatenate([np.zeros((1, positions.shape[1])), positions[:-1]], axis=0)
    return ((positions > 0) & (previous <= 0)).sum(axis=0)


def max_drawdowns(net: np.ndarray) -> np.ndarray:
    """Column-wise largest peak-to-trough loss (a positive share), the starting capital 1.0
    counting as a peak."""
    equity = np.cumprod(1.0 + np.asarray(net, dtype=float), axis=0)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0), axis=0)
    return (1.0 - equity / peak).max(axis=0)


def book_stats(net: np.ndarray, positions: np.ndarray, timeframe: str) -> dict[str, np.ndarray]:
    """Column-wise sharpe, max_drawdown, cagr, total_return, exposure of (n, k) books.

    Sharpe is mean / std(ddof=1) of per-bar net returns x sqrt(bars per year); it is
    0.0 with fewer than 2 bars or a (numerically) constant series, where it is undefined.
    Max drawdown is a positive fraction measured from the running peak, counting the
    starting capital 1.0 as a peak. CAGR uses elapsed years = bars / bars per year.
    """
    n, k = net.shape
    ppy = periods_per_year(timeframe)
    if n == 0:
        zeros = np.zeros(k)
        return {
            "sharpe": zeros,
            "max_drawdown": zeros,
            "cagr": zeros,
            "total_return": zeros,
            "exposure": zeros,
        }
    sharpe = np.zeros(k)
    if n >= 2:
        mean = net.mean(axis=0)
        std = net.std(axis=0, ddof=1)
        ok = std > 1e-12 * np.abs(mean)
        sharpe = np.where(ok, mean / np.where(ok, std, 1.0), 0.0) * math.sqrt(ppy)
    equity = np.cumprod(1.0 + net, axis=0)
    max_drawdown = max_drawdowns(net)
    final = equity[-1]
    with np.errstate(divide="ignore"):
        growth = np.log(np.maximum(final, 0.0)) / (n / ppy)
    cagr = np.expm1(np.minimum(growth, math.log1p(CAGR_CAP)))
    return {
        "sharpe": sharpe,
        "max_drawdown": max_drawdown,
        "cagr": cagr,
        "total_return": final - 1.0,
        "exposure": positions.mean(axis=0),
    }


def _trades(net: np.ndarray, positions: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Maximal runs of positive exposure; each trade owns bars entry..exit inclusive."""
    exposed = positions > 0
    before = np.concatenate([[False], exposed[:-1]])
    starts = np.flatnonzero(exposed & ~before)
    exits = np.flatnonzero(before & ~exposed)
    open_at_end = len(exits) < len(starts)
    if open_at_end:
        exits = np.append(exits, len(net) - 1)
    net_return = np.zeros(len(starts))
    if len(starts):
        bounds = np.column_stack([starts, exits + 1]).ravel()
        if bounds[-1] == len(net):
            bounds = bounds[:-1]  # reduceat runs the last segment to the end by itself
        net_return = np.multiply.reduceat(1.0 + net, bounds)[::2] - 1.0
    flags = np.zeros(len(starts), dtype=bool)
    if open_at_end:
        flags[-1] = True
    return pd.DataFrame(
        {
            "entry_time": index.take(starts),
            "exit_time": index.take(exits),
            "bars_held": (exits - starts).astype("int64"),
            "net_return": net_return,
            "open_at_end": flags,
        },
        columns=TRADE_COLUMNS,
    )


def _metrics(
    net: pd.Series, positions: pd.Series, trades: pd.DataFrame, timeframe: str
) -> dict[str, float | int]:
    stats = book_stats(net.to_numpy()[:, None], positions.to_numpy()[:, None], timeframe)
    trade_returns = trades["net_return"].to_numpy(dtype="float64")
    count = len(trade_returns)
    return {
        "sharpe": float(stats["sharpe"][0]),
        "max_drawdown": float(stats["max_drawdown"][0]),
        "cagr": float(stats["cagr"][0]),
        "total_return": float(stats["total_return"][0]),
        # no trades -> 0.0 (with trade_count 0) rather than NaN, so JSON stays numeric
        "win_rate": float((trade_returns > 0).mean()) if count else 0.0,
        "avg_trade_return": float(trade_returns.mean()) if count else 0.0,
        "trade_count": int(count),
        "exposure": float(stats["exposure"][0]),
    }


def check_index(index: pd.Index, what: str) -> None:
    if not (index.is_unique and index.is_monotonic_increasing):
        raise ValueError(f"{what} index must be unique and increasing (time order is the timing)")


def run_backtest(
    positions: pd.Series,
    returns: pd.Series,
    *,
    fee_bps: float,
    slippage_bps: float,
    timeframe: str,
) -> BacktestResult:
    """Backtest one long-only book; `positions[t]` earns `returns[t + 1]` (module doc).

    `positions` (exposure in [0, 1], no NaN) and `returns` must share one index, so a
    misaligned series fails loudly instead of shifting the timing silently.
    """
    if not positions.index.equals(returns.index):
        raise ValueError("positions and returns must share the same index")
    check_index(returns.index, "returns")
    pos = positions.to_numpy(dtype="float64")
    ret = returns.to_numpy(dtype="float64")
    if np.isnan(pos).any() or ((pos < 0) | (pos > 1)).any():
        raise ValueError("positions must be long-only exposures in [0, 1] without NaN")
    if (ret < -1).any():
        raise ValueError("simple returns below -1 are impossible; pass close/prev_close - 1")
    net_values = simulate(pos[:, None], ret, cost_rate(fee_bps, slippage_bps))[:, 0]
    index = returns.index
    net = pd.Series(net_values, index=index, name="net_return")
    position_series = pd.Series(pos, index=index, name="position")
    trades = _trades(net_values, pos, index)
    return BacktestResult(
        returns=net,
        equity=pd.Series(np.cumprod(1.0 + net_values), index=index, name="equity"),
        positions=position_series,
        trades=trades,
        metrics=_metrics(net, position_series, trades, timeframe),
        timeframe=timeframe,
    )


def align_sum(indexes: list[pd.Index], arrays: list[np.ndarray]) -> tuple[pd.Index, np.ndarray]:
    """Sum (n_i, k) arrays onto the sorted union of their indexes; missing rows add 0."""
    union = reduce(lambda left, right: left.union(right), indexes).sort_values()
    total = np.zeros((len(union), arrays[0].shape[1]))
    for index, values in zip(indexes, arrays, strict=True):
        total[union.get_indexer(index)] += values
    return union, total


def grid_portfolio(
    p_up: Mapping[str, pd.Series],
    returns: Mapping[str, pd.Series],
    entries: np.ndarray,
    exits: np.ndarray,
    rate: float,
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """k threshold pairs at once: (union index, mean net (n, k), mean exposure (n, k),
    positions opened per bar summed over the symbols (n, k)), equal weight like
    `combine_books`, so a column equals that pair's `combine_books` book."""
    indexes, nets, positions, opened = [], [], [], []
    for symbol, p in p_up.items():
        values = returns[symbol].to_numpy(dtype="float64")
        if (values < -1).any():
            raise ValueError(f"{symbol}: simple returns below -1 are impossible")
        pos = hysteresis(p.to_numpy(dtype="float64"), entries, exits)
        previous = np.vstack([np.zeros((1, pos.shape[1])), pos[:-1]])
        indexes.append(returns[symbol].index)
        nets.append(simulate(pos, values, rate))
        positions.append(pos)
        opened.append(((pos > 0) & (previous <= 0)).astype("float64"))
    union, net = align_sum(indexes, nets)
    _, exposure = align_sum(indexes, positions)
    _, entered = align_sum(indexes, opened)
    count = len(nets)
    return pd.DatetimeIndex(union), net / count, exposure / count, entered


def combine_books(results: Mapping[str, BacktestResult]) -> BacktestResult:
    """Equal-weight portfolio of per-symbol books, aligned by timestamp (outer join).

    Each bar the portfolio return is the mean of the symbols' net returns, a symbol
    without that bar counting as 0 (its sleeve sits in cash): 1/N of equity per symbol,
    rebalanced every bar. Trades are pooled (with a `symbol` column) for win rate etc.
    """
    if not results:
        raise ValueError("combine_books needs at least one book")
    timeframes = {result.timeframe for result in results.values()}
    if len(timeframes) != 1:
        raise ValueError(f"books mix timeframes {sorted(timeframes)}")
    books = list(results.values())
    indexes = [book.returns.index for book in books]
    union, net_sum = align_sum(indexes, [book.returns.to_numpy()[:, None] for book in books])
    _, pos_sum = align_sum(indexes, [book.positions.to_numpy()[:, None] for book in books])
    net = pd.Series(net_sum[:, 0] / len(books), index=union, name="net_return")
    positions = pd.Series(pos_sum[:, 0] / len(books), index=union, name="position")
    frames = [book.trades.assign(symbol=symbol) for symbol, book in results.items()]
    trades = pd.concat(frames, ignore_index=True)[["symbol", *TRADE_COLUMNS]]
    trades = trades.sort_values(["entry_time", "symbol"], kind="stable", ignore_index=True)
    timeframe = timeframes.pop()
    return BacktestResult(
        returns=net,
        equity=pd.Series(np.cumprod(1.0 + net.to_numpy()), index=union, name="equity"),
        positions=positions,
        trades=trades,
        metrics=_metrics(net, positions, trades, timeframe),
        timeframe=timeframe,
    )


def annualised_sharpe(net: np.ndarray, periods: float) -> float:
    """mean / std (ddof=1) x sqrt(periods) of one book's per-bar net returns; 0.0 for fewer
    than 2 bars or a constant series (the convention `book_stats` uses)."""
    net = np.asarray(net, dtype="float64")
    std = float(net.std(ddof=1)) if net.size > 1 else 0.0
    return float(net.mean() / std * math.sqrt(periods)) if std > 0 else 0.0


def score_sharpe_minus_drawdown(metrics: Mapping[str, float], dd_weight: float = 3.0) -> float:
    """The sweep objective: Sharpe penalised by drawdown (0.10 drawdown costs 0.3 Sharpe)."""
    return float(metrics["sharpe"]) - dd_weight * float(metrics["max_drawdown"])
