"""What drift monitoring compares for each feature, chosen from the data.

A 24 h window of a persistent feature -- an EMA ratio, a volatility level, a funding
rate with a multi-hour memory, an RSI -- holds a handful of independent values, so its
distribution differs from a multi-week reference on every ordinary day: PSI of such
levels is large without any drift, and a threshold raised to it is blind. Their
bar-to-bar *changes* are close to stationary (a return-like series), so the check
compares those instead: a volatility shock, a frozen feed or a broken computation still
moves them, a trending market does not.

The method of each feature is decided when the reference is fitted and stored with it:
``level`` when the level's lag-1 autocorrelation in the reference is below
`PERSISTENT`, else ``change`` (the first difference within one symbol, in time order)
when that one's is, else ``change2`` (the second difference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from levibot.features import CROSS_ASSET_FEATURES, FEATURES

LEVEL, CHANGE, CHANGE_OF_CHANGE = "level", "change", "change2"
DIFFERENCES = {LEVEL: 0, CHANGE: 1, CHANGE_OF_CHANGE: 2}
PERSISTENT = 0.6  # lag-1 autocorrelation from which a level is monitored by its changes
MONITORED_FEATURES = [*FEATURES, *CROSS_ASSET_FEATURES]

Frames = pd.DataFrame | Mapping[str, pd.DataFrame]


def lag1_autocorrelation(series: Sequence[np.ndarray]) -> float:
    """Lag-1 autocorrelation pooled over symbols (NaN pairs skipped; NaN when
    there is nothing to correlate or no variation)."""
    pairs = []
    for values in series:
        ok = ~np.isnan(values[1:]) & ~np.isnan(values[:-1])
        pairs.append(np.stack([values[:-1][ok], values[1:][ok]]))
    both = np.concatenate(pairs, axis=1) if pairs else np.empty((2, 0))
    if both.shape[1] < 3 or both[0].std() == 0 or both[1].std() == 0:
        return float("nan")
    return float(np.corrcoef(both)[0, 1])


def choose_method(series: Sequence[np.ndarray]) -> str:
    """The least differencing that leaves the series short-memoried (at most twice)."""
    for method in (LEVEL, CHANGE):
        changed = [monitored_columns(values[None, :], [method])[0] for values in series]
        rho = lag1_autocorrelation(changed)
        if not (np.isfinite(rho) and rho >= PERSISTENT):
            return method
    return CHANGE_OF_CHANGE


def as_frames(frames: Frames) -> dict[str, pd.DataFrame]:
    """One frame per symbol; a single frame is one series."""
    if isinstance(frames, pd.DataFrame):
        return {"": frames}
    return dict(frames)


def raw_columns(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Feature-major float64 values (±inf as NaN) of one symbol's rows in time order;
    a missing column is all NaN (the caller names it)."""
    values = np.full((len(features), len(frame)), np.nan)
    for j, name in enumerate(features):
        if name in frame.columns:
            values[j] = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
    values[~np.isfinite(values)] = np.nan
    return values


def monitored_columns(raw: np.ndarray, methods: Sequence[str]) -> np.ndarray:
    """The compared values: `change` rows differenced (the first bar has no change)."""
    out = raw.copy()
    for j, method in enumerate(methods):
        times = DIFFERENCES.get(method, 0) if raw.shape[1] else 0
        for _ in range(times):
            out[j, 1:] = np.diff(out[j])
            out[j, 0] = np.nan
    return out


def in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    if isinstance(frame.index, pd.DatetimeIndex) and not frame.index.is_monotonic_increasing:
        return frame.sort_index(kind="stable")
    return frame


def longest_run(values: np.ndarray) -> tuple[int, int]:
    """(longest run of one repeated finite value, longest run of NaN) in a 1-D series."""
    if values.size == 0:
        return 0, 0
    nan = np.isnan(values)
    repeats = (values[1:] == values[:-1]) & ~nan[1:]  # value i equals value i - 1
    finite_run = _longest_true(repeats) + 1 if (~nan).any() else 0
    return finite_run, _longest_true(nan)


def _longest_true(mask: np.ndarray) -> int:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if starts.size else 0


def trailing_run(values: np.ndarray) -> tuple[int, int]:
    """(bars the last finite value has repeated at the end, NaN bars at the end)."""
    if values.size == 0:
        return 0, 0
    finite = np.flatnonzero(~np.isnan(values))
    nan_tail = values.size - 1 - int(finite[-1]) if finite.size else values.size
    if nan_tail:
        return 0, nan_tail
    last = values[-1]
    different = np.flatnonzero(values != last)
    return values.size - 1 - int(different[-1]) if different.size else values.size, 0
