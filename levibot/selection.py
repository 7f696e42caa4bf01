"""Walk-forward policy selection: thresholds chosen out of sample, with a trade-rate floor.

Why: choosing entry/exit thresholds on the window whose calibrator was fitted on it (and
whose data also stopped the boosting) picked near-buy-and-hold policies that scored
Sharpe 9 in-sample and lost on every test window. Here:

1. The candidate thresholds are quantile levels of the score (entry at the 60th .. 95th
   percentile, exit at the 10th .. 90th (below entry) of the calibrated P(up) over the calibration
   window), so the grid always trades, whatever range P(up) lives in. A quantile policy
   depends only on the ranks of the scores, and every calibration map is monotone, so
   the calibrator fitted on this window adds no in-sample information to the choice; the
   thresholds are served as the absolute P(up) levels at those quantiles.
2. The calibration window is cut into `N_BLOCKS` time blocks (purged by the label
   horizon); block k's probabilities calibrated by a map fitted on blocks < k only (out
   of fold) give the expected move per unit of P(up), i.e. the cost break-even below.
3. A configuration is eligible only if it makes at least `TRADE_RATE_MARGIN` x
   `min_trades` closed trades per `marathon_hours` across the symbols on the selection
   blocks (the gate needs `min_trades` to judge it, and the objective pulls the choice to
   the edge of the eligible set, so without a margin the test window falls short about
   half the time); the best eligible one by Sharpe - 3 MaxDD is chosen. No eligible one:
   `SelectionError`, and nothing is registered.
4. Generalisation is measured, not assumed: walk-forward (thresholds from the quantiles
   of blocks 1..k-1 only, chosen there, scored on block k), the rank correlation of
   in-sample with out-of-sample scores over the grid, the probability of backtest
   overfitting (CSCV, Bailey et al. 2017) and the deflated Sharpe ratio of the choice
   for the number of configurations tried.

The cost break-even, P(up) above which the expected move over the horizon pays the round
trip, is reported: at crypto-sized costs and realistic information coefficients it is
usually above every threshold that trades often enough, i.e. the policy is expected to
lose its costs, and the report says so rather than hiding it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr

from levibot.backtest import book_stats, cost_rate, grid_portfolio
from levibot.models.calibration import RANK_PRESERVING, choose_calibrator
from levibot.policy import Policy
from levibot.timeframe import timeframe_delta

ENTRY_QUANTILES = tuple(round(0.60 + 0.05 * i, 2) for i in range(8))  # 0.60 .. 0.95
EXIT_QUANTILES = tuple(round(0.10 + 0.10 * i, 2) for i in range(9))  # 0.10 .. 0.90
N_BLOCKS = 4
CSCV_PARTS = 6
DD_WEIGHT = 3.0
TRADE_RATE_MARGIN = 1.5
MIN_DISTINCT_SCORES = 20
EULER_GAMMA = 0.5772156649


class SelectionError(ValueError):
    """No policy can be registered; the message names the release and the reason."""


@dataclass
class GridBooks:
    """Every configuration's equal-weight book over the symbols, bar by bar."""

    index: pd.DatetimeIndex
    net: np.ndarray  # (n, k) portfolio net return per bar
    exposure: np.ndarray  # (n, k) mean position over the symbols
    entries: np.ndarray  # (n, k) positions opened at the bar, summed over the symbols

    def metrics(self, rows: np.ndarray, timeframe: str, marathon_hours: float) -> pd.DataFrame:
        """Per-configuration metrics on the bars `rows` (a boolean mask or indices)."""
        net, exposure = self.net[rows], self.exposure[rows]
        stats = book_stats(net, exposure, timeframe)
        trades = self.entries[rows].sum(axis=0)
        bars = max(int(np.asarray(rows).sum() if np.asarray(rows).dtype == bool else len(rows)), 1)
        per_48h = trades * (pd.Timedelta(hours=marathon_hours) / timeframe_delta(timeframe)) / bars
        frame = pd.DataFrame(stats)
        frame["trade_count"] = trades.astype("int64")
        frame["trades_per_48h"] = per_48h
        frame["score"] = frame["sharpe"] - DD_WEIGHT * frame["max_drawdown"]
        return frame


def grid_books(
    p_up: Mapping[str, pd.Series],
    returns: Mapping[str, pd.Series],
    entries: np.ndarray,
    exits: np.ndarray,
    rate: float,
) -> GridBooks:
    """Every (entry, exit) pair through the backtest's own state machine and costs."""
    return GridBooks(*grid_portfolio(p_up, returns, entries, exits, rate))


def time_blocks(index: pd.Index, n_blocks: int) -> np.ndarray:
    """Block number (0..n_blocks-1) of every row, by equal shares of distinct bar times."""
    times = pd.DatetimeIndex(index)
    distinct = np.unique(times.asi8)
    if len(distinct) < 2 * n_blocks:
        raise SelectionError(f"{len(distinct)} bars are too few for {n_blocks} walk-forward blocks")
    edges = distinct[np.linspace(0, len(distinct), n_blocks + 1).astype(int)[1:-1]]
    return np.searchsorted(edges, times.asi8, side="right")


def out_of_fold_probabilities(
    frame: pd.DataFrame, *, label: str, purge: pd.Timedelta, n_blocks: int = N_BLOCKS
) -> tuple[pd.Series, np.ndarray]:
    """Calibrated P(up) of blocks 2.. from maps fitted on the earlier blocks only.

    A row within `purge` before a block's start has a label that looks into the block,
    so it never helps calibrate that block. Block 1's rows are NaN (they only fit), and so
    are a block's rows when the blocks before it cannot be calibrated.
    """
    blocks = time_blocks(frame.index, n_blocks)
    times = pd.DatetimeIndex(frame.index)
    out = pd.Series(np.nan, index=frame.index, name="p_oof")
    labelled = frame[label].notna().to_numpy()
    for block in range(1, n_blocks):
        block_start = times[blocks == block].min()
        fit = labelled & np.asarray(times < block_start - purge)
        try:
            calibrator, _ = choose_calibrator(
                frame.loc[fit, label].to_numpy(), frame.loc[fit, "p_raw"].to_numpy(),
                methods=RANK_PRESERVING,
            )  # fmt: skip
        except ValueError:  # too few labelled rows before this block: it stays NaN
            continue
        rows = blocks == block
        out[rows] = calibrator.transform(frame.loc[rows, "p_raw"].to_numpy())
    return out, blocks


def quantile_grid(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(entries, exits) at quantiles of the scores, exit < entry, duplicates dropped."""
    p = np.asarray(p, dtype="float64")
    p = p[np.isfinite(p)]
    if p.size == 0 or np.ptp(p) <= 1e-9:
        raise SelectionError("the scores are constant or missing: there is nothing to rank")
    distinct = len(np.unique(p))
    if distinct < MIN_DISTINCT_SCORES:
        raise SelectionError(
            f"the scores take only {distinct} distinct values: the model learned (almost) "
            "nothing to rank bars by"
        )
    pairs = {}
    for qe, qx in itertools.product(ENTRY_QUANTILES, EXIT_QUANTILES):
        entry, exit = round(float(np.quantile(p, qe)), 6), round(float(np.quantile(p, qx)), 6)
        if 0.0 <= exit < entry <= 1.0:  # after rounding: a (0.5, 0.5) pair is no policy
            pairs.setdefault((entry, exit), (qe, qx))
    if not pairs:
        raise SelectionError("the scores have too few distinct values for a threshold grid")
    table = pd.DataFrame(
        [(e, x, qe, qx) for (e, x), (qe, qx) in pairs.items()],
        columns=["entry", "exit", "entry_q", "exit_q"],
    )
    return table["entry"].to_numpy(), table["exit"].to_numpy(), table


def _best(metrics: pd.DataFrame, eligible: np.ndarray) -> int | None:
    if not eligible.any():
        return None
    scores = metrics["score"].where(eligible, -np.inf)
    return int(np.argmax(scores.to_numpy()))


def rank_corr(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def cscv_pbo(net: np.ndarray, eligible: np.ndarray, parts: int = CSCV_PARTS) -> float:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    The rows are cut into `parts` time blocks; for each half of them as in-sample, the
    best in-sample Sharpe's out-of-sample rank gives a logit; PBO is the share of
    combinations where that logit is <= 0 (the in-sample best is below the OOS median).
    """
    columns = np.flatnonzero(eligible)
    if len(columns) < 2 or len(net) < 2 * parts:
        return float("nan")
    chunks = np.array_split(np.arange(len(net)), parts)
    logits = []
    for chosen in itertools.combinations(range(parts), parts // 2):
        inside = np.concatenate([chunks[i] for i in chosen])
        outside = np.concatenate([chunks[i] for i in range(parts) if i not in chosen])
        ins, outs = _sharpe(net[inside][:, columns]), _sharpe(net[outside][:, columns])
        best = int(np.argmax(ins))
        rank = (outs < outs[best]).sum() + 0.5 * ((outs == outs[best]).sum() - 1) + 1
        omega = rank / (len(columns) + 1)
        logits.append(math.log(omega / (1 - omega)))
    return float(np.mean(np.array(logits) <= 0))


def _sharpe(net: np.ndarray) -> np.ndarray:
    std = net.std(axis=0, ddof=1)
    return np.where(std > 0, net.mean(axis=0) / np.where(std > 0, std, 1.0), 0.0)


def deflated_sharpe(net: np.ndarray, chosen: int, eligible: np.ndarray) -> float:
    """P(true Sharpe > 0) of the chosen book given how many were tried (Bailey & Lopez de
    Prado 2014): its per-bar Sharpe against the expected maximum of the trials' Sharpes."""
    trials = _sharpe(net[:, np.flatnonzero(eligible)])
    series = net[:, chosen]
    n = len(series)
    if n < 3 or series.std() == 0 or len(trials) < 1:
        return float("nan")
    sr = float(_sharpe(series[:, None])[0])
    count = len(trials)
    spread = float(trials.std(ddof=1)) if count > 1 else 0.0
    sr0 = 0.0
    if count > 1:
        sr0 = spread * (
            (1 - EULER_GAMMA) * norm.ppf(1 - 1 / count)
            + EULER_GAMMA * norm.ppf(1 - 1 / (count * math.e))
        )
    centred = series - series.mean()
    skew = float((centred**3).mean() / series.std() ** 3)
    kurt = float((centred**4).mean() / series.std() ** 4)
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    if denom <= 0:
        return float("nan")
    return float(norm.cdf((sr - sr0) * math.sqrt(n - 1) / math.sqrt(denom)))


def cost_break_even(frame: pd.DataFrame, *, forward_return: str, rate: float) -> float:
    """P(up) at which the expected move over the label horizon pays the round trip.

    From the out-of-fold calibrated P(up): E[move | p] ~ slope * (p - 0.5), with the
    slope fitted by least squares through (0.5, 0); break-even where it equals 2 x cost.
    """
    rows = frame[["p_oof", forward_return]].dropna()
    x, y = rows["p_oof"].to_numpy() - 0.5, rows[forward_return].to_numpy()
    slope = float((x * y).sum() / (x * x).sum()) if len(rows) > 10 and (x * x).sum() > 0 else 0.0
    if slope <= 0:
        return 1.0  # the scores do not point the right way out of fold: nothing pays
    return float(min(1.0, 0.5 + 2 * rate / slope))


@dataclass
class Selection:
    """The chosen policy and the evidence about how it was chosen."""

    policy: Policy
    grid: pd.DataFrame  # one row per configuration: thresholds and selection-window metrics
    chosen: pd.Series
    walk_forward: pd.DataFrame  # per step: chosen config, its in-sample and next-block score
    generalisation: dict[str, float] = field(default_factory=dict)
    cost_break_even: float = float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "entry": self.policy.entry_threshold,
            "exit": self.policy.exit_threshold,
            "entry_quantile": float(self.chosen["entry_q"]),
            "exit_quantile": float(self.chosen["exit_q"]),
            "configurations": len(self.grid),
            "eligible": int(self.grid["eligible"].sum()),
            "selection_sharpe": float(self.chosen["sharpe"]),
            "selection_trades_per_48h": float(self.chosen["trades_per_48h"]),
            "cost_break_even_p_up": self.cost_break_even,
            **self.generalisation,
        }


def by_symbol(
    frame: pd.DataFrame, column: str, returns_column: str
) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """Pooled rows -> per-symbol scores and bar returns (a missing return earns 0)."""
    p = {s: g[column] for s, g in frame.groupby("symbol")}
    r = {s: g[returns_column].fillna(0.0) for s, g in frame.groupby("symbol")}
    return p, r


def select_policy(
    calibration: pd.DataFrame,
    *,
    label: str,
    bar_return: str,
    forward_return: str,
    purge: pd.Timedelta,
    fee_bps: float,
    slippage_bps: float,
    timeframe: str,
    min_trades: int,
    marathon_hours: float,
    release: str,
) -> Selection:
    """Choose quantile thresholds of the calibrated P(up) on the calibration window.

    `calibration` holds one row per (symbol, bar) with `p_raw`, `p_cal`, the label, the
    bar return and the forward (label-horizon) return, sorted by time.
    """
    rate = cost_rate(fee_bps, slippage_bps)
    try:
        p_oof, blocks = out_of_fold_probabilities(calibration, label=label, purge=purge)
        selection = calibration.assign(p_oof=p_oof, block=blocks)
        entries, exits, table = quantile_grid(selection["p_cal"].to_numpy())
    except SelectionError as exc:
        raise SelectionError(f"{release}: {exc}") from exc
    p_map, r_map = by_symbol(selection, "p_cal", bar_return)
    books = grid_books(p_map, r_map, entries, exits, rate)
    everything = np.ones(len(books.index), dtype=bool)
    metrics = books.metrics(everything, timeframe, marathon_hours)
    needed = TRADE_RATE_MARGIN * min_trades
    eligible = (metrics["trades_per_48h"] >= needed).to_numpy() & (
        metrics["trade_count"] > 0
    ).to_numpy()
    grid = pd.concat([table, metrics], axis=1).assign(eligible=eligible)
    best = _best(metrics, eligible)
    if best is None:
        most = float(metrics["trades_per_48h"].max())
        bars = pd.Timedelta(hours=marathon_hours) / timeframe_delta(timeframe)
        symbols = selection["symbol"].nunique()
        ceiling = symbols * bars / 2  # a round trip takes at least two bars
        why = (
            f"impossible: {symbols} symbol(s) x {bars:g} bars fit at most {ceiling:g}"
            if ceiling < needed
            else f"the most active makes {most:.1f}"
        )
        raise SelectionError(
            f"{release}: no threshold pair reaches {needed:g} trades per "
            f"{marathon_hours:g} h on the selection window ({why}); a marathon could not "
            "judge it, so nothing is registered"
        )
    walk = _walk_forward(
        selection, table, rate=rate, bar_return=bar_return, needed=needed,
        timeframe=timeframe, marathon_hours=marathon_hours,
    )  # fmt: skip
    break_even = cost_break_even(selection, forward_return=forward_return, rate=rate)
    chosen = grid.iloc[best]
    policy = Policy(float(chosen["entry"]), float(chosen["exit"]), fee_bps, slippage_bps)
    generalisation = {
        "walk_forward_rank_corr": float(walk["rank_corr"].mean()) if len(walk) else np.nan,
        "walk_forward_oos_sharpe": float(walk["out_of_sample_sharpe"].mean())
        if len(walk)
        else np.nan,
        "pbo": cscv_pbo(books.net, eligible),
        "deflated_sharpe": deflated_sharpe(books.net, best, eligible),
    }
    return Selection(policy, grid, chosen, walk, generalisation, break_even)


def _walk_forward(
    selection: pd.DataFrame,
    table: pd.DataFrame,
    *,
    rate: float,
    bar_return: str,
    needed: float,
    timeframe: str,
    marathon_hours: float,
) -> pd.DataFrame:
    """For each block k: the grid's quantile levels turned into thresholds on blocks < k
    only, the best eligible one chosen there, then scored on block k (out of sample: a
    quantile policy depends on ranks, which the increasing calibration map keeps)."""
    steps = []
    blocks = selection["block"].to_numpy()
    for block in range(1, int(blocks.max()) + 1):
        earlier = selection["p_cal"].to_numpy()[blocks < block]
        entries = np.quantile(earlier, table["entry_q"].to_numpy())
        exits = np.quantile(earlier, table["exit_q"].to_numpy())
        usable = exits < entries
        upto = selection[blocks <= block]
        p_map, r_map = by_symbol(upto, "p_cal", bar_return)
        books = grid_books(p_map, r_map, entries[usable], exits[usable], rate)
        bar_block = pd.Series(upto["block"].to_numpy(), index=upto.index)
        bar_block = bar_block.groupby(level=0).first().reindex(books.index).to_numpy()
        ins = books.metrics(bar_block < block, timeframe, marathon_hours)
        outs = books.metrics(bar_block == block, timeframe, marathon_hours)
        ok = ((ins["trades_per_48h"] >= needed) & (ins["trade_count"] > 0)).to_numpy()
        pick = _best(ins, ok)

        def at(frame: pd.DataFrame, column: str, pick: int | None = pick) -> float:
            return float(frame[column].iloc[pick]) if pick is not None else np.nan

        steps.append({
            "block": block + 1, "in_sample_score": at(ins, "score"),
            "out_of_sample_score": at(outs, "score"), "out_of_sample_sharpe": at(outs, "sharpe"),
            "out_of_sample_trades_per_48h": at(outs, "trades_per_48h"),
            "rank_corr": rank_corr(ins["score"], outs["score"]),
        })  # fmt: skip
    return pd.DataFrame(steps)


def score_grid_on(
    frame: pd.DataFrame,
    grid: pd.DataFrame,
    *,
    column: str,
    bar_return: str,
    fee_bps: float,
    slippage_bps: float,
    timeframe: str,
    marathon_hours: float,
) -> pd.DataFrame:
    """The same configurations' metrics on another window (the final report's test)."""
    p_map, r_map = by_symbol(frame, column, bar_return)
    books = grid_books(
        p_map, r_map, grid["entry"].to_numpy(), grid["exit"].to_numpy(),
        cost_rate(fee_bps, slippage_bps),
    )  # fmt: skip
    return books.metrics(np.ones(len(books.index), dtype=bool), timeframe, marathon_hours)
