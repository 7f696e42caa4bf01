"""The marathon's evidence: paper books rebuilt per bar, realised outcomes, the bootstrap.

Both paper books are rebuilt as per-bar positions from their trades and scored by the
one backtest implementation (same fees). 48h of 15m bars is little data, so the Sharpe
difference comes with a paired moving-block bootstrap 95% interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from levibot.backtest import annualised_sharpe, combine_books, run_backtest
from levibot.bootstrap import block_bootstrap_interval
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


def block_bootstrap_sharpe_diff(
    a: pd.Series, b: pd.Series, *, periods: float, block: int = 8, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(point, low, high) of Sharpe(a) - Sharpe(b), paired moving-block bootstrap, 95%."""
    frame = pd.concat([a, b], axis=1).fillna(0.0).to_numpy()
    if len(frame) < 2:
        return 0.0, float("nan"), float("nan")

    def difference(x: np.ndarray, y: np.ndarray) -> float:
        return annualised_sharpe(x, periods) - annualised_sharpe(y, periods)

    return block_bootstrap_interval(
        (frame[:, 0], frame[:, 1]), difference, block=block, n=n, seed=seed
    )


def realised_outcomes(
    predictions: pd.DataFrame, closes: dict[str, pd.Series], horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's logged LightGBM p_up and what the market then did (up = 1)."""
    rows = predictions[
        (predictions["role"] == "candidate") & (predictions["endpoint"] == "/ml/predict")
    ]
    rows = rows.drop_duplicates(["symbol", "bar_time"], keep="last")
    ys, ps = [], []
    for symbol, group in rows.groupby("symbol"):
        close = closes[symbol]
        future = close.shift(-horizon)
        at = group["bar_time"].map(lambda t, c=close: c.get(t, np.nan))
        ahead = group["bar_time"].map(lambda t, f=future: f.get(t, np.nan))
        known = at.notna() & ahead.notna()
        ys.append((ahead[known] > at[known]).astype(float).to_numpy())
        ps.append(group.loc[known, "p_up"].to_numpy(float))
    return (np.concatenate(ys), np.concatenate(ps)) if ys else (np.array([]), np.array([]))
