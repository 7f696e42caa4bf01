"""The noise a drift statistic is judged against: quantiles from the reference's
ordinary windows (or iid sampling noise), and the joint scale over the features."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from levibot.drift.reference import MonitoredRows, ReferenceStats
from levibot.thresholds import Quantile


@lru_cache(maxsize=1024)
def tail_z(tail: float, df: float) -> float:
    """The log-statistic's standardised quantile at `tail`: Student t with `df` degrees of
    freedom scaled to unit variance. The ordinary windows' log statistics have heavier
    tails than a normal (`DriftThresholds.noise_tail_df`). Cached: a check asks for the
    same few tails on every feature, and scipy's isf costs ~0.3 ms a call."""
    from scipy import stats

    return float(stats.t.isf(tail, df)) * math.sqrt((df - 2) / df)


@lru_cache(maxsize=1024)
def _chi2_isf(tail: float, df: int) -> float:
    from scipy import stats

    return float(stats.chi2.isf(tail, df))


@lru_cache(maxsize=1024)
def _kolmogorov_isf(tail: float) -> float:
    from scipy import stats

    return float(stats.kstwobign.isf(tail))


def noise_quantiles(
    reference: ReferenceStats, name: str, n_current: int, tail_df: float
) -> tuple[Quantile, Quantile, Quantile | None, Quantile | None]:
    """The feature's noise quantiles at a tail probability, at this sample size.

    PSI / KS: the larger of (a) the ordinary windows' log-normal fit, exp(center + z x
    spread), scaled from their size to `n_current` (PSI ~ 1/n, KS ~ 1/sqrt(n)), and (b)
    the sampling noise of independent rows (PSI ~ chi2(bins - 1) x (1/n + 1/N), KS ~
    Kolmogorov x sqrt(1/n + 1/N)). The scale ratios: exp(center + z x spread) of their
    log over the ordinary windows (None when the reference could not measure them).
    """
    n_ref = max(reference.n[name], 1)
    df = max(reference.inner_edges[name].size, 1)
    noise = reference.noise.get(name, {})
    size = reference.window_rows / n_current if reference.window_rows else 1.0

    def fitted(key: str, tail: float, power: float) -> float:
        if f"{key}_center" not in noise:
            return 0.0
        z = tail_z(tail, tail_df)
        return math.exp(noise[f"{key}_center"] + z * noise[f"{key}_spread"]) * size**power

    def psi_at(tail: float) -> float:
        iid = _chi2_isf(tail, df) * (1 / n_current + 1 / n_ref)
        return max(iid, fitted("psi", tail, 1.0))

    def ks_at(tail: float) -> float:
        iid = _kolmogorov_isf(tail) * math.sqrt(1 / n_current + 1 / n_ref)
        return max(iid, fitted("ks", tail, 0.5))

    def lognormal(key: str) -> Quantile | None:
        if f"{key}_center" not in noise:
            return None
        center, spread = noise[f"{key}_center"], noise[f"{key}_spread"]
        return lambda tail: math.exp(center + tail_z(tail, tail_df) * spread)

    return psi_at, ks_at, lognormal("scale"), lognormal("level_scale")


def distinct_times(times: np.ndarray) -> np.ndarray:
    """The distinct values of sorted times (O(n), no second sort)."""
    if times.size == 0:
        return times
    return times[np.concatenate(([True], times[1:] != times[:-1]))]


def short_window(rows: MonitoredRows, bars: int, distinct: np.ndarray) -> slice:
    """The columns of the last `bars` distinct bar times (rows are in time order)."""
    if distinct.size == 0:
        return slice(0, 0)
    first = distinct[max(distinct.size - bars, 0)]
    return slice(int(np.searchsorted(rows.times, first, side="left")), rows.rows)


def joint_scale(
    reference: ReferenceStats, results: Mapping[str, Any], key: str, tail: float, tail_df: float
) -> tuple[float | None, float | None]:
    """The median over the features of their `key` ratios (on the log scale) and its
    limit at `tail`: one more statistic of its family, with the same tail as each
    feature's."""
    fitted = reference.joint_scale.get(key)
    if not fitted:
        return None, None
    logs = [
        math.log(max(value, 1e-12))
        for name in fitted["features"]
        if name in results and (value := getattr(results[name], key)) is not None
    ]
    if not logs:
        return None, None

    limit = math.exp(fitted["center"] + tail_z(tail, tail_df) * fitted["spread"])
    return math.exp(float(np.median(logs))), limit
