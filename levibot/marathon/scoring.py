"""Paired per-bar scoring of two releases: proper scores, a Diebold-Mariano test, power.

Both releases predict every (symbol, bar) the marathon saw (the shadow log holds the
served and the shadow line of every request), so their forecasts can be scored on the
same realised outcomes with proper scoring rules -- log loss and Brier -- and compared
bar by bar. That evidence does not wait for trades: a 48 h marathon has hundreds of
scored bars even when each policy makes only a few dozen trades.

The test is Diebold-Mariano on the per-bar mean loss differential (candidate - prod,
averaged over the symbols of a bar so their cross-correlation is inside each value),
with a Newey-West (Bartlett) HAC variance: labels overlap for `horizon` bars, so the
differential is autocorrelated at least that far. The lag is Andrews' automatic
bandwidth from an AR(1) fit (at least horizon - 1), and the critical value is the
fixed-b one of Kiefer & Vogelsang (2005), which keeps the size near 5% in samples this
short (`tests/marathon/test_scoring.py` measures the size on
autocorrelated nulls and the power).

Power: the minimum detectable effect at this sample size is (z_(1-a/2) + z_power) x SE;
when the observed effect is smaller, `hours_needed` is how much longer the marathon
would have to run for the observed effect to reach it (SE shrinks as 1/sqrt(T)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

EPS = 1e-6
ALPHA = 0.05  # two-sided level of the paired tests
POWER = 0.80  # the power the minimum detectable effect is quoted at
MIN_PAIRED_BARS = 30  # fewer and neither a HAC variance nor a t reference means anything
TEST_NAME = "Diebold-Mariano, Bartlett HAC variance (Andrews bandwidth), fixed-b critical value"


def log_loss_per_row(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    y = np.asarray(y, dtype=float)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def brier_per_row(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2


SCORES = {"log_loss": log_loss_per_row, "brier": brier_per_row}


def newey_west_lag(d: np.ndarray, horizon: int) -> int:
    """Andrews (1991) automatic Bartlett bandwidth from an AR(1) fit of the series, at
    least horizon - 1 (the overlap of the labels) and below n / 4."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    e = d - d.mean()
    denom = float(e[:-1] @ e[:-1])
    rho = float(np.clip(e[1:] @ e[:-1] / denom, -0.97, 0.97)) if denom > 0 else 0.0
    alpha = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    andrews = 1.1447 * (alpha * n) ** (1 / 3)
    return int(min(max(horizon - 1, np.ceil(andrews)), max(n // 4, 1)))


def hac_variance(d: np.ndarray, lag: int) -> float:
    """Newey-West long-run variance of a series (Bartlett weights, mean removed)."""
    d = np.asarray(d, dtype=float)
    e = d - d.mean()
    n = len(e)
    value = float(e @ e) / n
    for k in range(1, min(lag, n - 1) + 1):
        value += 2 * (1 - k / (lag + 1)) * float(e[k:] @ e[:-k]) / n
    return max(value, 0.0)


def fixed_b_critical(b: float, level: float = ALPHA) -> float:
    """Two-sided critical value of a Bartlett-HAC t statistic under fixed-b asymptotics
    (Kiefer & Vogelsang 2005, their cubic fit for the 95% level): the normal 1.96 is
    too small in samples this short, where the HAC variance is itself noisy."""
    z = float(stats.norm.ppf(1 - level / 2))
    return z + 2.9694 * b + 0.4160 * b**2 - 0.5324 * b**3 if level == ALPHA else z


def fixed_b_p_value(t: float, b: float) -> float:
    """Approximate two-sided p-value: the normal tail at t scaled onto the fixed-b
    critical value (exact at the 5% boundary, which is where decisions are made)."""
    scale = float(stats.norm.ppf(1 - ALPHA / 2)) / fixed_b_critical(b)
    return float(2 * stats.norm.sf(t * scale))


@dataclass(frozen=True)
class PairedTest:
    """The candidate-minus-prod mean of one score with its DM test and power figure."""

    score: str
    bars: int
    candidate: float
    prod: float
    difference: float  # candidate - prod: negative = the candidate forecasts better
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    lag: int
    min_detectable_effect: float
    hours_needed: float | None  # None: already significant, or no effect to extrapolate

    @property
    def better(self) -> bool:
        """The candidate's loss is significantly lower (the interval is below zero)."""
        return bool(np.isfinite(self.ci_high) and self.ci_high < 0)

    @property
    def worse(self) -> bool:
        return bool(np.isfinite(self.ci_low) and self.ci_low > 0)

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "better": self.better,
            "worse": self.worse,
            "test": TEST_NAME,
        }


def diebold_mariano(
    d: np.ndarray,
    *,
    horizon: int,
    score: str = "log_loss",
    bar_hours: float = 0.25,
    candidate: float = float("nan"),
    prod: float = float("nan"),
) -> PairedTest:
    """DM test of mean(d) = 0 for a per-bar loss differential `d` (see the module docs)."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    nan = float("nan")
    if n < MIN_PAIRED_BARS:
        return PairedTest(
            score,
            n,
            candidate,
            prod,
            float(d.mean()) if n else nan,
            nan,
            nan,
            nan,
            nan,
            0,
            nan,
            None,
        )
    lag = newey_west_lag(d, horizon)
    mean = float(d.mean())
    se = float(np.sqrt(hac_variance(d, lag) / n))
    critical = fixed_b_critical(lag / n)
    if se == 0:
        statistic = 0.0 if mean == 0 else float(np.sign(mean) * np.inf)
        p_value = 1.0 if mean == 0 else 0.0
    else:
        statistic = mean / se
        p_value = fixed_b_p_value(abs(statistic), lag / n)
    half = critical * se
    mde = (critical + float(stats.norm.ppf(POWER))) * se
    hours_needed = None
    if p_value >= ALPHA and mean != 0 and np.isfinite(mde) and mde > 0:
        bars_needed = n * (mde / abs(mean)) ** 2
        hours_needed = float(max(bars_needed - n, 0.0) * bar_hours)
    return PairedTest(
        score,
        n,
        candidate,
        prod,
        mean,
        mean - half,
        mean + half,
        statistic,
        p_value,
        lag,
        mde,
        hours_needed,
    )


def realised_up(close: pd.Series, bar_times, horizon: int) -> np.ndarray:
    """1 where the close `horizon` bars after each bar time is above that bar's close,
    0 where not, NaN where either close is not known (yet)."""
    now = close.reindex(bar_times).to_numpy(dtype=float)
    ahead = close.shift(-horizon).reindex(bar_times).to_numpy(dtype=float)
    return np.where(np.isnan(ahead) | np.isnan(now), np.nan, (ahead > now).astype(float))


def paired_frame(
    predictions: pd.DataFrame,
    closes: dict[str, pd.Series],
    *,
    horizon: int,
    endpoint: str = "/ml/predict",
) -> tuple[pd.DataFrame, list[str]]:
    """One row per (symbol, bar) where both releases' `endpoint` P(up) and the realised
    outcome are known: columns symbol, bar_time, p_prod, p_candidate, y.

    Returns the frame and the problems met on the way (NaN predictions, a release that
    changed mid-marathon, bars without an outcome yet), in words for the evaluation.
    """
    problems: list[str] = []
    empty = pd.DataFrame(columns=["symbol", "bar_time", "p_prod", "p_candidate", "y"])
    if predictions.empty:
        return empty, ["no predictions were logged in the marathon window"]
    rows = predictions[predictions["endpoint"] == endpoint]
    models = rows.groupby("role")["model_id"].nunique()
    for role, count in models.items():
        if count > 1:
            problems.append(f"the {role} release changed mid-marathon ({count} model ids)")
    bad = rows["p_up"].isna() | ~np.isfinite(pd.to_numeric(rows["p_up"], errors="coerce"))
    if bad.any():
        problems.append(f"{int(bad.sum())} logged predictions had no finite p_up and were dropped")
    rows = rows[~bad]
    latest = rows.drop_duplicates(["role", "symbol", "bar_time"], keep="last")
    wide = latest.pivot_table(
        index=["symbol", "bar_time"], columns="role", values="p_up", aggfunc="last"
    )
    if not {"prod", "candidate"} <= set(wide.columns):
        return empty, [*problems, "the shadow log does not hold both releases' predictions"]
    wide = wide.dropna(subset=["prod", "candidate"]).reset_index()
    outcome = []
    for symbol, group in wide.groupby("symbol"):
        close = closes.get(symbol)
        if close is None:
            outcome.append(pd.Series(np.nan, index=group.index))
            continue
        outcome.append(pd.Series(realised_up(close, group["bar_time"], horizon), index=group.index))
    wide["y"] = pd.concat(outcome) if outcome else np.nan
    unknown = int(wide["y"].isna().sum())
    if unknown:
        problems.append(f"{unknown} paired bars have no realised outcome yet (last {horizon} bars)")
    wide = wide.dropna(subset=["y"])
    frame = wide.rename(columns={"prod": "p_prod", "candidate": "p_candidate"})
    return frame[["symbol", "bar_time", "p_prod", "p_candidate", "y"]], problems


def paired_scores(frame: pd.DataFrame, *, horizon: int, bar_hours: float) -> dict[str, PairedTest]:
    """Log loss and Brier of both releases on the paired rows, each with its DM test."""
    out = {}
    for name, score in SCORES.items():
        if frame.empty:
            out[name] = diebold_mariano(np.array([]), horizon=horizon, score=name)
            continue
        cand = score(frame["y"].to_numpy(), frame["p_candidate"].to_numpy())
        prod = score(frame["y"].to_numpy(), frame["p_prod"].to_numpy())
        per_bar = pd.Series(cand - prod).groupby(frame["bar_time"].to_numpy()).mean()
        out[name] = diebold_mariano(
            per_bar.sort_index().to_numpy(),
            horizon=horizon,
            score=name,
            bar_hours=bar_hours,
            candidate=float(cand.mean()),
            prod=float(prod.mean()),
        )
    return out
