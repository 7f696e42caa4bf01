"""Ensemble weights for LightGBM vs transformer, tuned on what the server logged.

`run_tuning` (called by the pipeline, the CLI and the marathon scheduler) reads the
shadow prediction logs of the last few days, pairs the LightGBM and the transformer
p_up of each (symbol, bar) and picks the blend weight that trades best:

1. Pairing. For one role (default "prod"), the last p_up logged per (symbol, bar_time,
   endpoint) by ``/ml/predict`` (LightGBM) and by ``/ml/predict_deep`` (transformer) are
   joined on (symbol, bar_time), inner join: a bar only one model was logged for is not
   used, whatever order or length the two logs have.
2. Returns. From the feature store's ``close``: ``returns[t] = close_t / close_{t-1} - 1``
   on the stored bar grid, with the backtest's timing (`levibot.backtest`): the position
   decided at bar t earns ``returns[t + 1]``. The book spans the first paired bar to the
   bar after the last one; a stored bar without a pair has NaN p_up, which keeps the
   position (the hysteresis rule), so unpaired bars never contribute a signal.
3. Grid. For w in 0, 0.05, ..., 1: ``p = w * p_lgbm + (1 - w) * p_deep`` -> positions
   with the role's policy thresholds -> `run_backtest` with the policy's fee and
   slippage per symbol -> `combine_books` -> Sharpe. ``w_opt`` is the best Sharpe; ties
   (within 1e-9) go to the w closest to 0.5, i.e. no evidence means no tilt.
4. Smoothing. ``w_new = alpha * w_opt + (1 - alpha) * w_prev`` (alpha 0.3), where
   ``w_prev`` is the LightGBM weight of the current weights file (0.5
   without one), clipped to [0, 1].
5. Minimum data. At least `MIN_ALIGNED_ROWS` (32) paired (symbol, bar) rows with a
   stored bar, pooled over symbols (a day of 15m bars is 96 per symbol, so 32 is a third
   of a day of one symbol), and at least `MIN_TRADES` (2) trades in the best book; one
   trade or a few bars are luck, not evidence. Otherwise the previous weights (0.5/0.5
   when there are none) are kept and ``reason`` says why; that is a result, not an
   error.

The weights file keeps the format the server's snapshot loader reads
(``{"weights": {"lgbm": w, "deep": 1 - w}, ...}``) plus ``updated_at``, ``reason``,
``w_opt``, ``aligned_rows`` and a ``history`` of the last 30 weight sets, carried over
from the previous file. It is written atomically under a lock on
``<file>.lock``, so a concurrent tuning run cannot lose history. A corrupt previous file
is an error naming it; it is never silently reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from levibot.backtest import BacktestResult, combine_books, positions_from_signals, run_backtest
from levibot.data.store import FeatureStore
from levibot.io import file_lock
from levibot.online.layout import ENDPOINTS
from levibot.online.shadow_log import ShadowLog
from levibot.policy import Policy
from levibot.registry import load_registry
from levibot.settings import Settings
from levibot.state.paths import Paths
from levibot.state.weights import DEFAULT_WEIGHTS, append_weights, current_weights
from levibot.timeframe import to_utc, utc_now

LGBM_ENDPOINT = ENDPOINTS["lgbm"]
DEEP_ENDPOINT = ENDPOINTS["deep"]

WEIGHT_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # 0.00 .. 1.00
DEFAULT_ALPHA = 0.3
MIN_ALIGNED_ROWS = 32
MIN_TRADES = 2
_TIE_TOLERANCE = 1e-9


class TuningError(ValueError):
    """Tuning cannot run as asked (bad arguments, no policy, an invalid weights file)."""


@dataclass(frozen=True)
class TuningResult:
    """The weights to serve and how they were found.

    ``w_opt`` is the best LightGBM weight on the logged window (None when nothing could
    be evaluated); ``weights`` is what to serve: the EWMA of ``w_opt`` with the previous
    weights, or the previous weights themselves when ``kept_previous``.
    """

    weights: dict[str, float]
    w_opt: float | None
    sharpe_by_w: dict[float, float]
    aligned_rows: int
    kept_previous: bool
    reason: str
    tuned_at: str
    trade_count: int = 0
    previous_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (grid keys as "0.05" strings)."""
        return {
            "weights": dict(self.weights),
            "w_opt": self.w_opt,
            "sharpe_by_w": {f"{w:.2f}": s for w, s in self.sharpe_by_w.items()},
            "aligned_rows": self.aligned_rows,
            "trade_count": self.trade_count,
            "kept_previous": self.kept_previous,
            "previous_weights": dict(self.previous_weights),
            "reason": self.reason,
            "tuned_at": self.tuned_at,
        }


# ---------------------------------------------------------------------- the registry


def role_policy(registry_file: Path | str, role: str = "prod") -> Policy:
    """The trading policy of the registry's `role` release."""
    if role not in ("prod", "candidate"):
        raise TuningError(f"role must be 'prod' or 'candidate', got {role!r}")
    entry = getattr(load_registry(registry_file), role)
    if entry is None:
        raise TuningError(f"{registry_file}: no {role} release, so no policy to tune with")
    p = entry.policy
    return Policy(p.entry_threshold, p.exit_threshold, p.fee_bps, p.slippage_bps)


# ------------------------------------------------------------------------- pairing


def _last_p_up(frame: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    rows = frame[frame["endpoint"] == endpoint]
    rows = rows.drop_duplicates(["symbol", "bar_time"], keep="last")  # frame is in ts order
    return rows[["symbol", "bar_time", "p_up"]]


def align_predictions(
    predictions: pd.DataFrame, role: str = "prod", model_id: str | None = None
) -> pd.DataFrame:
    """(symbol, bar_time, p_lgbm, p_deep): both models' last p_up per bar, inner-joined.

    Rows of other roles or endpoints (or, with `model_id`, of another release that held
    the role earlier in the window), and rows without a finite p_up or a bar_time, are
    ignored. Input order does not matter beyond "later ts wins" for duplicates.
    """
    columns = ["symbol", "bar_time", "p_lgbm", "p_deep"]
    if predictions.empty:
        return pd.DataFrame(columns=columns)
    mine = predictions["role"] == role
    if model_id is not None:
        mine &= predictions["model_id"] == model_id
    frame = predictions.loc[mine].copy()
    frame["p_up"] = pd.to_numeric(frame["p_up"], errors="coerce")
    frame["bar_time"] = pd.to_datetime(frame["bar_time"], utc=True, errors="coerce")
    frame = frame[np.isfinite(frame["p_up"].to_numpy(dtype="float64"))]
    frame = frame[frame["bar_time"].notna() & frame["symbol"].notna()]
    frame = frame.sort_values("ts", kind="stable")
    lgbm = _last_p_up(frame, LGBM_ENDPOINT).rename(columns={"p_up": "p_lgbm"})
    deep = _last_p_up(frame, DEEP_ENDPOINT).rename(columns={"p_up": "p_deep"})
    merged = lgbm.merge(deep, on=["symbol", "bar_time"], how="inner", validate="1:1")
    merged = merged.sort_values(["symbol", "bar_time"], kind="stable", ignore_index=True)
    return merged[columns]


def bar_returns(store: FeatureStore, symbol: str) -> pd.Series | None:
    """Close-to-close simple returns on the stored bar grid (``returns[t]`` ends at t)."""
    frame = store.read(symbol)
    if frame is None or frame.empty or "close" not in frame.columns:
        return None
    close = frame["close"].astype("float64")
    returns = close / close.shift(1) - 1.0
    returns.index = pd.DatetimeIndex(returns.index).tz_convert("UTC")
    return returns.rename("return")


def _book_inputs(
    aligned: pd.DataFrame, store: FeatureStore
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series], int]:
    """Per symbol: paired p_up on its store window, that window's returns; dropped rows."""
    pairs: dict[str, pd.DataFrame] = {}
    returns: dict[str, pd.Series] = {}
    dropped = 0
    for symbol, rows in aligned.groupby("symbol", sort=True):
        series = bar_returns(store, str(symbol))
        if series is None:
            dropped += len(rows)
            continue
        index = series.index
        bars = pd.DatetimeIndex(rows["bar_time"]).as_unit(index.unit)
        known = bars.isin(index)
        dropped += int((~known).sum())
        if not known.any():
            continue
        rows = rows.loc[known].set_axis(bars[known])
        first = index.get_loc(rows.index[0])
        last = index.get_loc(rows.index[-1])
        window = index[first : last + 2]  # + the bar after the last decision, if stored
        pairs[str(symbol)] = rows[["p_lgbm", "p_deep"]].reindex(window)
        returns[str(symbol)] = series.reindex(window)
    return pairs, returns, dropped


def evaluate_grid(
    pairs: dict[str, pd.DataFrame],
    returns: dict[str, pd.Series],
    policy: Policy,
    *,
    timeframe: str,
    grid: tuple[float, ...] = WEIGHT_GRID,
) -> dict[float, BacktestResult]:
    """The combined book of every blend weight w (LightGBM share) in `grid`."""
    books: dict[float, BacktestResult] = {}
    for w in grid:
        per_symbol = {}
        for symbol, frame in pairs.items():
            p = (w * frame["p_lgbm"] + (1.0 - w) * frame["p_deep"]).clip(0.0, 1.0)
            positions = positions_from_signals(p, policy.entry_threshold, policy.exit_threshold)
            per_symbol[symbol] = run_backtest(
                positions,
                returns[symbol],
                fee_bps=policy.fee_bps,
                slippage_bps=policy.slippage_bps,
                timeframe=timeframe,
            )
        books[w] = combine_books(per_symbol)
    return books


def best_weight(sharpe_by_w: dict[float, float]) -> float:
    """Highest Sharpe; ties go to the w closest to 0.5 (then the smaller w)."""
    top = max(sharpe_by_w.values())
    tied = [w for w, s in sharpe_by_w.items() if s >= top - _TIE_TOLERANCE * max(1.0, abs(top))]
    return min(tied, key=lambda w: (abs(w - 0.5), w))


def smooth(w_opt: float, w_prev: float, alpha: float = DEFAULT_ALPHA) -> dict[str, float]:
    """EWMA step ``alpha * w_opt + (1 - alpha) * w_prev`` as {lgbm, deep} in [0, 1]."""
    w = min(1.0, max(0.0, alpha * w_opt + (1.0 - alpha) * w_prev))
    return {"lgbm": w, "deep": 1.0 - w}


# -------------------------------------------------------------------------- tuning


def _check_args(days: float, alpha: float, role: str) -> None:
    if not (math.isfinite(days) and days > 0):
        raise TuningError(f"days must be a positive number, got {days}")
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise TuningError(f"alpha must be in [0, 1], got {alpha}")
    if role not in ("prod", "candidate"):
        raise TuningError(f"role must be 'prod' or 'candidate', got {role!r}")


def tune_weights(
    settings: Settings,
    *,
    now: pd.Timestamp | str | None = None,
    days: float | None = None,
    role: str = "prod",
    alpha: float = DEFAULT_ALPHA,
    policy: Policy | None = None,
    min_rows: int = MIN_ALIGNED_ROWS,
    min_trades: int = MIN_TRADES,
    registry_file: Path | str | None = None,
) -> TuningResult:
    """Tune the blend weight on the logs of ``(now - days, now]`` (module doc); no writes.

    `days` defaults to the settings' `tuning_days`. The registry (`registry_file`, else
    the settings') gives both the policy (unless `policy` is passed) and the release
    whose logs are paired, so the two always belong to the same registry.
    """
    days = settings.tuning_days if days is None else days
    _check_args(days, alpha, role)
    paths = Paths.of(settings, registry=registry_file)
    now_ts = to_utc(now) if now is not None else utc_now()
    tuned_at = now_ts.isoformat()
    previous = current_weights(paths.ensemble_weights)
    prev = previous or dict(DEFAULT_WEIGHTS)
    if policy is None:
        policy = role_policy(paths.registry, role)
    current = getattr(load_registry(paths.registry, missing_ok=True), role)

    since = now_ts - pd.Timedelta(days=days)
    predictions = ShadowLog(paths.logs).predictions(since=since)
    if not predictions.empty:
        predictions = predictions[predictions["ts"] <= now_ts]
    aligned = align_predictions(predictions, role, current.id if current else None)
    store = paths.store()
    pairs, returns, dropped = _book_inputs(aligned, store)
    rows = sum(int(frame["p_lgbm"].notna().sum()) for frame in pairs.values())

    sharpe_by_w: dict[float, float] = {}
    w_opt: float | None = None
    trades = 0
    if pairs:
        books = evaluate_grid(pairs, returns, policy, timeframe=settings.timeframe)
        sharpe_by_w = {w: float(book.metrics["sharpe"]) for w, book in books.items()}
        w_opt = best_weight(sharpe_by_w)
        trades = int(books[w_opt].metrics["trade_count"])

    window = f"last {days:g} day(s) of {role} logs"
    ignored = f"; {dropped} paired row(s) without a stored bar ignored" if dropped else ""
    shortfall = None
    if rows < min_rows:
        shortfall = f"only {rows} aligned (symbol, bar) row(s) in the {window} (< {min_rows})"
    elif trades < min_trades:
        shortfall = f"the best book (w={w_opt:.2f}) made {trades} trade(s) (< {min_trades})"
    if shortfall is not None:
        kept = "kept previous weights" if previous else "kept default 0.5/0.5 weights (no file)"
        return TuningResult(
            weights=dict(prev),
            w_opt=w_opt,
            sharpe_by_w=sharpe_by_w,
            aligned_rows=rows,
            kept_previous=True,
            reason=f"{kept}: {shortfall}{ignored}",
            tuned_at=tuned_at,
            trade_count=trades,
            previous_weights=dict(prev),
        )
    assert w_opt is not None
    weights = smooth(w_opt, prev["lgbm"], alpha)
    reason = (
        f"tuned on {rows} aligned (symbol, bar) rows over {len(pairs)} symbol(s) in the "
        f"{window}: w_opt={w_opt:.2f} (Sharpe {sharpe_by_w[w_opt]:.2f}, {trades} trades); "
        f"lgbm {prev['lgbm']:.3f} -> {weights['lgbm']:.3f} (EWMA alpha={alpha:g}){ignored}"
    )
    return TuningResult(
        weights=weights,
        w_opt=w_opt,
        sharpe_by_w=sharpe_by_w,
        aligned_rows=rows,
        kept_previous=False,
        reason=reason,
        tuned_at=tuned_at,
        trade_count=trades,
        previous_weights=dict(prev),
    )


def _write(path: Path, result: TuningResult) -> Path:
    """Record `result` in the weights file; the caller holds the lock."""
    record = {
        "weights": dict(result.weights),
        "updated_at": result.tuned_at,
        "reason": result.reason,
        "w_opt": result.w_opt,
        "aligned_rows": result.aligned_rows,
        "kept_previous": result.kept_previous,
    }
    entry = {
        "at": result.tuned_at,
        "weights": dict(result.weights),
        "w_opt": result.w_opt,
        "kept_previous": result.kept_previous,
    }
    return append_weights(path, record, entry)


def write_weights(path: Path | str, result: TuningResult) -> Path:
    """Write `result` to the weights file atomically, keeping the last history sets."""
    path = Path(path)
    with file_lock(path):
        return _write(path, result)


def run_tuning(
    settings: Settings,
    *,
    now: pd.Timestamp | str | None = None,
    days: float | None = None,
    role: str = "prod",
    alpha: float = DEFAULT_ALPHA,
    policy: Policy | None = None,
    registry_file: Path | str | None = None,
) -> TuningResult:
    """Tune and write the ensemble weights file (one locked update); see `tune_weights`."""
    path = Paths.of(settings, registry=registry_file).ensemble_weights
    with file_lock(path):
        result = tune_weights(
            settings, now=now, days=days, role=role, alpha=alpha, policy=policy,
            registry_file=registry_file,
        )  # fmt: skip
        _write(path, result)
    return result
