"""The one bar-frame contract every source returns and every consumer expects.

A bar frame has a UTC ``DatetimeIndex`` named ``timestamp`` holding each bar's **open**
time, the OHLCV columns, and the auxiliary series. An auxiliary series a source does
not have is an explicit all-NaN column, never zeros pretending to be data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INDEX_NAME = "timestamp"
OHLCV_COLUMNS = ["open", "high", "low", "close", "volume"]
AUX_COLUMNS = ["funding_rate", "open_interest", "ob_imbalance", "news_impact", "news_confidence"]
BAR_COLUMNS = OHLCV_COLUMNS + AUX_COLUMNS


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows but the right columns, dtypes and index."""
    index = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME)
    return pd.DataFrame({col: pd.Series(dtype="float64") for col in BAR_COLUMNS}, index=index)


def conform_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Order columns as BAR_COLUMNS (missing auxiliaries become NaN) with float64 values.

    Raises KeyError naming the missing OHLCV columns, since those cannot be invented.
    """
    missing = [col for col in OHLCV_COLUMNS if col not in frame.columns]
    if missing:
        raise KeyError(f"bar frame lacks required columns {missing}; has {list(frame.columns)}")
    out = frame.reindex(columns=BAR_COLUMNS).astype("float64")
    if not isinstance(out.index, pd.DatetimeIndex):
        raise TypeError("bar frame must have a DatetimeIndex of bar open times")
    out.index = (
        out.index.tz_localize("UTC") if out.index.tz is None else out.index.tz_convert("UTC")
    )
    out.index.name = INDEX_NAME
    for col in AUX_COLUMNS:
        if col not in frame.columns:
            out[col] = np.nan
    return out
