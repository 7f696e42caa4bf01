"""Performance drift: a CUSUM on the served release's realised log loss.

Feature distributions cannot see a change in the *relation* between features and
returns (the `trend_flip` scenario): every input looks ordinary while the model's
forecasts turn wrong. The realised score can. Per bar, the release's log loss averaged
over the symbols (once the label horizon has passed) is standardised by its test-window
level -- mean and long-run (HAC) standard deviation, stored in the registry at release
time -- and a one-sided Page CUSUM accumulates the excess:

    S_t = max(0, S_(t-1) + z_t - k),   alarm when S_t > h,

with k = `performance_shift` / 2 (tuned to a shift of that many long-run sd) and h the
limit at which S exceeds h somewhere in a marathon's bars with probability
`performance_false_alarm_rate` under no change (Monte Carlo of steps with the label
overlap's autocorrelation and unit long-run variance, seeded, so the limit is a
deterministic function of its inputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from levibot.marathon.scoring import (
    hac_variance,
    log_loss_per_row,
    newey_west_lag,
    realised_up,
)
from levibot.thresholds import CRITICAL, OK, DriftThresholds

BASELINE_KEYS = ("loss_per_bar_mean", "loss_per_bar_long_run_sd", "loss_per_bar_bars")
NO_BASELINE, TOO_EARLY = "no_baseline", "insufficient_data"
MIN_BARS = 8  # scored bars before the monitor says anything
SIMULATED_PATHS = 20_000


def per_bar_loss(y: np.ndarray, p: np.ndarray, bar_time: np.ndarray) -> pd.Series:
    """Log loss per row averaged over the symbols of each bar, in time order."""
    frame = pd.DataFrame({"bar": bar_time, "loss": log_loss_per_row(y, p)})
    return frame.groupby("bar")["loss"].mean().sort_index()


def loss_baseline(losses: pd.Series, horizon: int) -> dict[str, float]:
    """The test window's per-bar loss level: mean, long-run sd (the larger of a Bartlett
    HAC with Andrews' lag and the label overlap's uniform-kernel variance), bars --
    registry metrics under `BASELINE_KEYS`."""
    values = losses.to_numpy(dtype=float)
    if values.size < MIN_BARS:
        return {}
    bartlett = hac_variance(values, newey_west_lag(values, horizon))
    variance = max(bartlett, _overlap_variance(values, horizon))
    return dict(
        zip(
            BASELINE_KEYS,
            (float(values.mean()), float(np.sqrt(variance)), float(values.size)),
            strict=True,
        )
    )


def _overlap_variance(values: np.ndarray, horizon: int) -> float:
    """Long-run variance with uniform weights up to lag horizon - 1: unbiased for the
    moving-average correlation that overlapping labels create (Bartlett weights shrink
    those lags and understate it)."""
    e = values - values.mean()
    n = e.size
    out = float(e @ e) / n
    for lag in range(1, min(horizon, n)):
        out += 2 * float(e[lag:] @ e[:-lag]) / n
    return max(out, 0.0)


@lru_cache(maxsize=32)
def cusum_limit(bars: int, k: float, rate: float, horizon: int = 1, seed: int = 0) -> float:
    """h such that a CUSUM with allowance `k` over `bars` steps of unit long-run
    variance exceeds h with probability `rate` (seeded Monte Carlo). The steps are the
    mean of `horizon` consecutive normals -- the overlap of `horizon`-bar labels, whose
    long-run variance is 1 like the standardised losses'."""
    rng = np.random.default_rng(seed)
    horizon = max(horizon, 1)
    window = np.zeros((horizon, SIMULATED_PATHS))
    s = np.zeros(SIMULATED_PATHS)
    peak = np.zeros(SIMULATED_PATHS)
    for i in range(max(bars, 1) + horizon - 1):
        window[i % horizon] = rng.standard_normal(SIMULATED_PATHS)
        if i < horizon - 1:
            continue
        s = np.maximum(0.0, s + window.mean(axis=0) - k)
        np.maximum(peak, s, out=peak)
    return float(np.quantile(peak, 1 - rate))


@dataclass(frozen=True)
class PerformanceDrift:
    """One release's loss monitor at a check."""

    role: str
    status: str
    bars: int
    statistic: float | None  # the largest CUSUM value so far
    limit: float | None
    mean_loss: float | None
    baseline_loss: float | None
    alarm_at: str | None  # the first bar the CUSUM crossed the limit

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cusum_path(z: np.ndarray, k: float) -> np.ndarray:
    out = np.empty(z.size)
    s = 0.0
    for i, value in enumerate(z):
        s = max(0.0, s + value - k)
        out[i] = s
    return out


def performance_drift(
    role: str,
    losses: pd.Series,
    baseline: dict[str, float],
    thresholds: DriftThresholds,
    *,
    marathon_bars: int,
    horizon: int = 1,
) -> PerformanceDrift:
    """The CUSUM of `losses` (per-bar, time order) against the release's baseline."""
    mean = float(losses.mean()) if len(losses) else None
    if not all(key in baseline for key in BASELINE_KEYS) or baseline[BASELINE_KEYS[1]] <= 0:
        return PerformanceDrift(role, NO_BASELINE, len(losses), None, None, mean, None, None)
    center, sd = baseline[BASELINE_KEYS[0]], baseline[BASELINE_KEYS[1]]
    if len(losses) < MIN_BARS:
        return PerformanceDrift(role, TOO_EARLY, len(losses), None, None, mean, center, None)
    k = thresholds.performance_shift / 2
    limit = cusum_limit(marathon_bars, k, thresholds.performance_false_alarm_rate, horizon)
    path = cusum_path((losses.to_numpy(dtype=float) - center) / sd, k)
    above = np.flatnonzero(path > limit)
    alarm = str(pd.Timestamp(losses.index[above[0]]).isoformat()) if above.size else None
    return PerformanceDrift(
        role,
        CRITICAL if above.size else OK,
        len(losses),
        float(path.max()),
        limit,
        mean,
        center,
        alarm,
    )


def served_losses(
    predictions: pd.DataFrame,
    closes: dict[str, pd.Series],
    *,
    role: str,
    horizon: int,
    endpoint: str = "/ml/predict",
) -> pd.Series:
    """Per-bar realised log loss of one role's `endpoint` P(up) (bars whose outcome is
    known), from shadow-log prediction rows."""
    if predictions.empty:
        return pd.Series(dtype=float)
    rows = predictions[(predictions["endpoint"] == endpoint) & (predictions["role"] == role)]
    rows = rows[np.isfinite(pd.to_numeric(rows["p_up"], errors="coerce"))]
    rows = rows.drop_duplicates(["symbol", "bar_time"], keep="last")
    parts = []
    for symbol, group in rows.groupby("symbol"):
        close = closes.get(str(symbol))
        if close is None:
            continue
        times = pd.to_datetime(group["bar_time"], utc=True)
        y = realised_up(close, times, horizon)
        known = ~np.isnan(y)
        parts.append(
            pd.DataFrame(
                {
                    "bar": times.to_numpy()[known],
                    "y": y[known],
                    "p": group["p_up"].to_numpy(dtype=float)[known],
                }
            )
        )
    if not parts:
        return pd.Series(dtype=float)
    frame = pd.concat(parts)
    return per_bar_loss(frame["y"].to_numpy(), frame["p"].to_numpy(), frame["bar"].to_numpy())
