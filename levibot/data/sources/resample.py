"""Finer source bars to the target timeframe, keeping only complete target bars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from levibot.data.schema import AUX_COLUMNS, INDEX_NAME, OHLCV_COLUMNS


def stable_sort(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by open time, ties (duplicates) kept in file order for the validator."""
    order = np.argsort(frame.index.asi8, kind="stable")
    return frame.iloc[order]


def source_interval(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The bar interval of the data: the median gap between distinct open times."""
    distinct = np.unique(index.asi8)
    if len(distinct) < 2:
        return None
    return pd.Timedelta(int(np.median(np.diff(distinct))), unit="ns")


@dataclass
class Resampled:
    """Target bars plus the open times of the bars dropped or spoiled on the way."""

    bars: pd.DataFrame
    incomplete: pd.DatetimeIndex
    tainted: pd.DatetimeIndex


def _aggregate(frame: pd.DataFrame, buckets: pd.DatetimeIndex) -> pd.DataFrame:
    """open=first, high=max, low=min, close=last, volume=sum, auxiliaries=last valid."""
    grouped = frame.groupby(buckets, sort=True)
    rules = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    rules.update({col: "last" for col in AUX_COLUMNS if col in frame.columns})
    return pd.DataFrame({col: grouped[col].agg(how) for col, how in rules.items()})


def resample_complete(frame: pd.DataFrame, source: pd.Timedelta, target: pd.Timedelta) -> Resampled:
    """Aggregate sub-bars into target bars, keeping only target bars with every sub-bar.

    A complete target bar built from a malformed, duplicated or off-grid sub-bar gets NaN
    OHLCV, so the validator quarantines it instead of it silently mixing bad rows in."""
    index = frame.index
    buckets = index.floor(target)
    on_grid = np.asarray(index == index.floor(source))
    duplicated = np.asarray(index.duplicated(keep=False))
    finite = np.isfinite(frame[OHLCV_COLUMNS].to_numpy(dtype="float64")).all(axis=1)
    bad = pd.Series(~finite | duplicated | ~on_grid).groupby(buckets).any()
    stamps = pd.Series(index.asi8)[on_grid]
    distinct = stamps.groupby(buckets[on_grid]).nunique().reindex(bad.index, fill_value=0)
    complete = (distinct == target // source).to_numpy()
    bars = _aggregate(frame, buckets)
    spoiled = complete & bad.to_numpy()
    bars.loc[spoiled, OHLCV_COLUMNS] = np.nan
    bars = bars.loc[complete]
    bars.index = pd.DatetimeIndex(bars.index, name=INDEX_NAME)
    return Resampled(bars, bad.index[~complete], bad.index[spoiled])
