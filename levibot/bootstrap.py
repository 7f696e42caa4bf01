"""Moving-block bootstrap intervals for statistics of time-ordered data.

Bars are autocorrelated (volatility clusters, trends), so resampling single bars would
understate the uncertainty; blocks of `block` consecutive bars keep that dependence. The
default block length is n^(1/3), the usual rate for a smooth statistic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def default_block(n: int) -> int:
    return max(2, round(n ** (1 / 3)))


def block_bootstrap_interval(
    columns: tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    *,
    block: int | None = None,
    n: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high) of `statistic(*columns)`, resampling the rows in blocks.

    Every column is resampled with the same block starts (paired). NaN bounds when there
    are too few rows for two blocks, or when the statistic is undefined on a resample.
    """
    length = len(columns[0])
    point = float(statistic(*columns))
    block = block or default_block(length)
    if length < 2 * block:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, length - block + 1, size=(n, int(np.ceil(length / block))))
    rows = (starts[:, :, None] + np.arange(block)).reshape(n, -1)[:, :length]
    values = np.array([statistic(*(c[r] for c in columns)) for r in rows], dtype="float64")
    values = values[np.isfinite(values)]
    if values.size < n // 2:
        return point, float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return point, float(low), float(high)
