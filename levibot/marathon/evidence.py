"""The marathon's book evidence: paper books rebuilt per bar and their paired intervals.

Both paper books are rebuilt as per-bar positions from their trades (open positions
included) and scored by the one backtest implementation (same fees). 48h of 15m bars is
little data, so the Sharpe difference and the MaxDD excess come with a paired
moving-block bootstrap 95% interval whose block is at least the books' holding period.
The paired forecast scores are in `levibot.marathon.scoring`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from levibot.backtest import annualised_sharpe, combine_books, max_drawdowns, run_backtest
from levibot.bootstrap import block_bootstrap_interval, default_block
from levibot.registry import ModelEntry


def positions_from_trades(
    trades: pd.DataFrame, open_positions: dict, index: pd.DatetimeIndex
) -> pd.Series:
    """Exposure per bar (decided at the bar's close) rebuilt from a paper book."""
    held = np.zeros(len(index))
    for row in trades.itertuples():
        held[(index >= row.entry_time) & (index < row.exit_time)] = 1.0
    for position in open_positions.values():
        held[index >= pd.Timestamp(position["entry_time"])] = 1.0
    return pd.Series(held, index=index)


def book_metrics(role: str, entry: ModelEntry, trades: pd.DataFrame, open_positions: dict,
          closes: dict[str, pd.Series], timeframe: str):  # fmt: skip
    mine = trades[trades["model"] == role] if len(trades) else trades
    books = {}
    for symbol, close in closes.items():
        symbol_trades = mine[mine["symbol"] == symbol] if len(mine) else mine
        symbol_open = {k: v for k, v in open_positions.items() if k == symbol}
        positions = positions_from_trades(symbol_trades, symbol_open, close.index)
        books[symbol] = run_backtest(
            positions, close.pct_change().fillna(0.0), fee_bps=entry.policy.fee_bps,
            slippage_bps=entry.policy.slippage_bps, timeframe=timeframe,
        )  # fmt: skip
    combined = combine_books(books)
    metrics = dict(combined.metrics)
    metrics["trade_count"] = len(mine)
    if len(mine):
        metrics["win_rate"] = float((mine["return"] > 0).mean())
        metrics["avg_trade_return"] = float(mine["return"].mean())
    return combined, metrics


def book_block_length(*positions: pd.Series) -> int:
    """Bootstrap block length from the data: at least n^(1/3) bars and at least the books'
    mean holding period, so a resampled block keeps a whole position's P&L together."""
    n = max((len(p) for p in positions), default=0)
    spans = []
    for held in positions:
        values = np.asarray(held, dtype=float) > 0
        entries = int(np.sum(values[1:] & ~values[:-1]) + (values[0] if len(values) else 0))
        if entries:
            spans.append(values.sum() / entries)
    return int(max(default_block(max(n, 1)), np.ceil(max(spans, default=0.0))))


def paired_book_intervals(
    candidate: pd.Series, prod: pd.Series, *, periods: float, dd_ratio: float,
    block: int, n: int = 2000, seed: int = 0,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Sharpe_c - Sharpe_p and MaxDD_c - dd_ratio x MaxDD_p, each (point, 95% interval),
    from one paired moving-block bootstrap of the two books' per-bar returns."""
    frame = pd.concat([candidate, prod], axis=1).fillna(0.0).to_numpy()

    def sharpe_difference(x: np.ndarray, y: np.ndarray) -> float:
        return annualised_sharpe(x, periods) - annualised_sharpe(y, periods)

    def drawdown_excess(x: np.ndarray, y: np.ndarray) -> float:
        return float(max_drawdowns(x[:, None])[0] - dd_ratio * max_drawdowns(y[:, None])[0])

    out = {}
    for name, statistic in (("sharpe_difference", sharpe_difference),
                            ("drawdown_excess", drawdown_excess)):  # fmt: skip
        if len(frame) < 2:
            point, low, high = float("nan"), float("nan"), float("nan")
        else:
            point, low, high = block_bootstrap_interval(
                (frame[:, 0], frame[:, 1]), statistic, block=block, n=n, seed=seed
            )
        out[name] = {"point": point, "ci_low": low, "ci_high": high, "block": block}
    return out
