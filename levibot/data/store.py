"""The feature store: one Parquet file per symbol and timeframe, upserted atomically.

Two tables per symbol: ``bars`` (what the sources delivered after validation, the
source of truth) and ``features`` (bars joined with the derived features, rewritten
from the bars on every ingest). Upserts keep the newest value per timestamp, so
ingesting an overlapping range twice leaves no duplicates. Files are written with
small row groups so the server's ``tail`` reads only the end of a file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from levibot.data.schema import INDEX_NAME
from levibot.io import CorruptFileError, write_parquet_atomic
from levibot.timeframe import timeframe_delta, to_utc, utc_now

TABLES = ("bars", "features")
ROW_GROUP_SIZE = 2048
_SYMBOL = re.compile(r"^[A-Z0-9]{2,24}$")


def upsert_frames(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Union of both frames by index; where both have a timestamp, `new` wins."""
    if existing is None or existing.empty:
        merged = new
    else:
        merged = pd.concat([existing, new])
        merged = merged[~merged.index.duplicated(keep="last")]
    return merged.sort_index(kind="stable")


class FeatureStore:
    """Parquet tables under ``root`` for one timeframe."""

    def __init__(self, root: Path | str, timeframe: str) -> None:
        self.root = Path(root)
        self.timeframe = timeframe
        self.bar_length = timeframe_delta(timeframe)

    def path(self, symbol: str, table: str = "features") -> Path:
        """File of one table; symbols are checked so they can never escape the root."""
        if not _SYMBOL.match(symbol or ""):
            raise ValueError(f"invalid symbol {symbol!r}: letters and digits only, e.g. BTCUSDT")
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {TABLES}")
        return self.root / table / f"{symbol}_{self.timeframe}.parquet"

    def symbols(self, table: str = "features") -> list[str]:
        """Symbols that have a file for this timeframe."""
        suffix = f"_{self.timeframe}.parquet"
        folder = self.root / table
        return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))

    def read(self, symbol: str, table: str = "features") -> pd.DataFrame | None:
        """The whole table, or None when the symbol has none yet."""
        path = self.path(symbol, table)
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise CorruptFileError(f"{path}: cannot read Parquet ({exc})") from exc

    def write(self, symbol: str, frame: pd.DataFrame, table: str = "features") -> Path:
        """Replace a table atomically (a failed write leaves the old file intact)."""
        if frame.index.name != INDEX_NAME or not frame.index.is_monotonic_increasing:
            raise ValueError("store frames need a sorted 'timestamp' index")
        if frame.index.has_duplicates:
            raise ValueError(f"{symbol}: refusing to store duplicate timestamps")
        return write_parquet_atomic(
            self.path(symbol, table), frame, engine="pyarrow", row_group_size=ROW_GROUP_SIZE
        )

    def upsert(self, symbol: str, frame: pd.DataFrame, table: str = "bars") -> pd.DataFrame:
        """Merge `frame` into the table (newest values win) and return the merged table."""
        merged = upsert_frames(self.read(symbol, table), frame)
        self.write(symbol, merged, table)
        return merged

    def tail(self, symbol: str, n: int, table: str = "features") -> pd.DataFrame:
        """The last `n` rows, reading only the row groups that hold them."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        path = self.path(symbol, table)
        if not path.exists():
            raise FileNotFoundError(f"no {table} stored for {symbol} at {self.timeframe}: {path}")
        try:
            parquet = pq.ParquetFile(path)
            groups, rows = [], 0
            for group in range(parquet.num_row_groups - 1, -1, -1):
                if rows >= n:
                    break
                groups.insert(0, group)
                rows += parquet.metadata.row_group(group).num_rows
            frame = (
                parquet.read_row_groups(groups).to_pandas() if groups else self.read(symbol, table)
            )
        except Exception as exc:
            raise CorruptFileError(f"{path}: cannot read Parquet ({exc})") from exc
        return frame.iloc[max(len(frame) - n, 0) :] if n else frame.iloc[:0]

    def last_bar_time(self, symbol: str, table: str = "features") -> pd.Timestamp:
        """Open time of the newest stored bar."""
        last = self.tail(symbol, 1, table)
        if last.empty:
            raise LookupError(f"no bars stored for {symbol} at {self.timeframe}")
        return last.index[-1]

    def staleness_seconds(self, symbol: str, now: pd.Timestamp | None = None) -> float:
        """now - close time of the latest bar (negative would mean a clock problem)."""
        now = to_utc(now) if now is not None else utc_now()
        closed_at = self.last_bar_time(symbol) + self.bar_length
        return float((now - closed_at) / np.timedelta64(1, "s"))
