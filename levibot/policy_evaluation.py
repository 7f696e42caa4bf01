"""The chosen policy on the untouched test window, next to buy-and-hold and flat.

Runs once, after the selection: nothing here chooses among configurations. It gives the
registry its test metrics, the expected closed trades over a marathon (`trades_per_48h`),
the baselines under the same costs, the selection-vs-test rank correlation of the whole
grid (how well the selection window ranked what the test window then showed), and the
registration gate: a policy that would not trade often enough in a marathon, or never
trades, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from levibot.backtest import annualised_sharpe, combine_books, run_backtest
from levibot.bootstrap import block_bootstrap_interval
from levibot.policy import Policy, backtest_policy
from levibot.selection import Selection, SelectionError, by_symbol, rank_corr, score_grid_on
from levibot.timeframe import periods_per_year, timeframe_delta


@dataclass
class TestReport:
    """The test-window figures of one release's policy."""

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    trades_per_48h: float
    grid: pd.DataFrame  # the selection grid's metrics on the test window

    def flat_metrics(self) -> dict[str, float]:
        """Everything as one flat dict (registry metrics are str -> float)."""
        out = {**self.metrics, "trades_per_48h": self.trades_per_48h}
        for name, values in self.baselines.items():
            out.update({f"{name}_{k}": v for k, v in values.items()})
        return out


def _baseline(returns: dict[str, pd.Series], level: float, policy: Policy, timeframe: str):
    books = {
        symbol: run_backtest(
            pd.Series(level, index=r.index),
            r,
            fee_bps=policy.fee_bps,
            slippage_bps=policy.slippage_bps,
            timeframe=timeframe,
        )
        for symbol, r in returns.items()
    }
    metrics = combine_books(books).metrics
    return {k: float(metrics[k]) for k in ("sharpe", "max_drawdown", "total_return", "exposure")}


def evaluate_on_test(
    test: pd.DataFrame,
    selection: Selection,
    *,
    bar_return: str,
    timeframe: str,
    min_trades: int,
    marathon_hours: float,
    release: str,
) -> TestReport:
    """Score the chosen policy on the test rows (`p_cal`); refuse one a marathon can't judge."""
    policy = selection.policy
    p_up, returns = by_symbol(test, "p_cal", bar_return)
    result = backtest_policy(p_up, returns, policy, timeframe=timeframe)
    bars = len(result.returns)
    per_bar = result.metrics["trade_count"] / max(bars, 1)
    trades_per_48h = float(
        per_bar * (pd.Timedelta(hours=marathon_hours) / timeframe_delta(timeframe))
    )
    baselines = {
        "buy_hold": _baseline(returns, 1.0, policy, timeframe),
        "flat": _baseline(returns, 0.0, policy, timeframe),
    }
    grid = score_grid_on(
        test, selection.grid, column="p_cal", bar_return=bar_return, fee_bps=policy.fee_bps,
        slippage_bps=policy.slippage_bps, timeframe=timeframe, marathon_hours=marathon_hours,
    )  # fmt: skip
    selection.generalisation["selection_test_rank_corr"] = rank_corr(
        selection.grid["score"].reset_index(drop=True), grid["score"].reset_index(drop=True)
    )
    if result.metrics["trade_count"] == 0 or trades_per_48h < min_trades:
        raise SelectionError(
            f"{release}: on the test window the chosen policy (entry {policy.entry_threshold:.4f}"
            f", exit {policy.exit_threshold:.4f}) makes {trades_per_48h:.1f} closed trades per "
            f"{marathon_hours:g} h (< {min_trades}); a marathon could not judge it, so it is "
            "not registered"
        )
    metrics = {k: float(v) for k, v in result.metrics.items() if np.isfinite(v)}
    ppy = periods_per_year(timeframe)
    _, low, high = block_bootstrap_interval(
        (result.returns.to_numpy(),), lambda r: annualised_sharpe(r, ppy)
    )
    metrics.update(sharpe_ci_low=low, sharpe_ci_high=high)
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    return TestReport(metrics, baselines, trades_per_48h, grid)


def describe_test(report: TestReport, selection: Selection) -> dict[str, Any]:
    """A few report lines: the policy next to its baselines, and the generalisation."""
    out: dict[str, Any] = {
        "test sharpe": round(report.metrics["sharpe"], 3),
        "test sharpe 95% CI": "[{:.2f}, {:.2f}]".format(
            report.metrics.get("sharpe_ci_low", float("nan")),
            report.metrics.get("sharpe_ci_high", float("nan")),
        ),
        "test max drawdown": round(report.metrics["max_drawdown"], 4),
        "test trades per 48h": round(report.trades_per_48h, 1),
        "test exposure": round(report.metrics["exposure"], 3),
        "buy & hold sharpe": round(report.baselines["buy_hold"]["sharpe"], 3),
        "buy & hold total return": round(report.baselines["buy_hold"]["total_return"], 4),
        "flat total return": round(report.baselines["flat"]["total_return"], 4),
    }
    for key in ("walk_forward_rank_corr", "selection_test_rank_corr", "pbo", "deflated_sharpe"):
        value = selection.generalisation.get(key)
        out[key.replace("_", " ")] = (
            None if value is None or not np.isfinite(value) else round(value, 3)
        )
    return out
