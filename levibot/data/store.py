"""The feature store: one Parquet file per symbol and timeframe, upserted atomically.

Two tables per symbol: ``bars`` (what the sources delivered after validation, the
source of truth) and ``features`` (bars joined with the derived features, rewritten
from the bars on every ingest). Upserts keep the newest value per timestamp, so
ingesting an overlapping range twice leaves no duplicates. Files are written with
small row groups so the server's ``tail`` reads only the end of a file.

Appending a bar (`append`, what a live feed and the marathon replay do every bar) does
not rewrite the table: new rows are appended as JSON lines to a delta file beside it
(``<SYMBOL>_<tf>.delta.jsonl``, whole lines under a lock, see `levibot.online.jsonl`),
folded into the table once it holds `COMPACT_ROWS` rows. Readers see table + delta
(re-parsed only when the delta changed); a whole-table `write` drops the delta after
the table is replaced, and a delta left by a crash in between only repeats rows the
table already has (the newest copy of a timestamp wins). Feature values are float64,
which JSON round-trips exactly; a non-finite value is stored as null (NaN).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from levibot.data.schema import INDEX_NAME
from levibot.io import CorruptFileError, write_parquet_atomic
from levibot.online.jsonl import append_jsonl_lines
from levibot.timeframe import timeframe_delta, to_utc, utc_now

TABLES = ("bars", "features")
ROW_GROUP_SIZE = 2048
HEAD_BYTES = 64
COMPACT_ROWS = 512  # delta rows that trigger folding the delta into the table
_SYMBOL = re.compile(r"^[A-Z0-9]{2,24}$")


def upsert_frames(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Union of both frames by index; where both have a timestamp, `new` wins."""
    if existing is None or existing.empty:
        merged = new
    else:
        merged = pd.concat([existing, new])
        merged = merged[~merged.index.duplicated(keep="last")]
    return merged.sort_index(kind="stable")


@dataclass(frozen=True)
class _DeltaMemo:
    """What was parsed of a delta file: its inode, the bytes consumed, the rows."""

    inode: int
    offset: int
    frame: pd.DataFrame | None
    head: bytes  # the file's first bytes: tells a new delta from the one parsed


class FeatureStore:
    """Parquet tables under ``root`` for one timeframe."""

    def __init__(self, root: Path | str, timeframe: str) -> None:
        self.root = Path(root)
        self.timeframe = timeframe
        self.bar_length = timeframe_delta(timeframe)
        self._tail_memo: dict[tuple[Path, int], tuple[tuple, pd.DataFrame]] = {}
        self._combined_memo: dict[tuple[Path, int], tuple[tuple, pd.DataFrame]] = {}
        self._delta_memo: dict[Path, _DeltaMemo] = {}

    def path(self, symbol: str, table: str = "features") -> Path:
        """File of one table; symbols are checked so they can never escape the root."""
        if not _SYMBOL.match(symbol or ""):
            raise ValueError(f"invalid symbol {symbol!r}: letters and digits only, e.g. BTCUSDT")
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {TABLES}")
        return self.root / table / f"{symbol}_{self.timeframe}.parquet"

    def delta_path(self, symbol: str, table: str = "features") -> Path:
        """The append-only delta beside a table (see the module docstring)."""
        path = self.path(symbol, table)
        return path.with_name(path.name.removesuffix(".parquet") + ".delta.jsonl")

    def _read_delta(self, path: Path) -> pd.DataFrame | None:
        """The delta's rows; only the lines appended since the last read are parsed."""
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._delta_memo.pop(path, None)
            return None
        memo = self._delta_memo.get(path)
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)  # a new delta (even on a reused inode) differs here
            same = memo is not None and memo.inode == stat.st_ino and memo.head == head
            if same and memo.offset == stat.st_size:
                return memo.frame
            if not same or stat.st_size < memo.offset:
                memo = _DeltaMemo(stat.st_ino, 0, None, head)
            handle.seek(memo.offset)
            data = handle.read(stat.st_size - memo.offset)
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        records = []
        for line in data[:end].splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a torn line a crashed writer left: that row is lost, not the rest
        frame = memo.frame
        if records:
            times = [r.pop(INDEX_NAME) for r in records]
            index = pd.DatetimeIndex(pd.to_datetime(times, utc=True, format="ISO8601"),
                                     name=INDEX_NAME).as_unit("us")  # fmt: skip
            new = pd.DataFrame.from_records(records, index=index).astype("float64")
            if frame is None or frame.empty:
                frame = new
            elif index[0] > frame.index[-1] and index.is_monotonic_increasing:
                frame = pd.concat([frame, new])  # the usual case: newer rows at the end
            else:
                frame = upsert_frames(frame, new)
        self._delta_memo[path] = _DeltaMemo(stat.st_ino, memo.offset + end, frame, head)
        return frame

    def _read_file(self, path: Path) -> pd.DataFrame | None:
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise CorruptFileError(f"{path}: cannot read Parquet ({exc})") from exc

    def _with_delta(self, frame: pd.DataFrame | None, symbol: str, table: str):
        delta = self._read_delta(self.delta_path(symbol, table))
        if delta is None or delta.empty:
            return frame
        if frame is not None and len(frame.columns) and list(delta.columns) != list(frame.columns):
            delta = delta.reindex(columns=frame.columns)
        if frame is not None and len(frame) and delta.index[0] > frame.index[-1]:
            return pd.concat([frame, delta])  # the usual case: the delta continues the table
        return upsert_frames(frame, delta)

    def append(self, symbol: str, rows: pd.DataFrame, table: str = "features") -> None:
        """Add rows newer than every stored one, without rewriting the table."""
        if rows.empty:
            return
        if rows.index.name != INDEX_NAME or not rows.index.is_monotonic_increasing:
            raise ValueError("store frames need a sorted 'timestamp' index")
        if rows.index.has_duplicates:
            raise ValueError(f"{symbol}: refusing to store duplicate timestamps")
        delta_path = self.delta_path(symbol, table)
        delta = self._read_delta(delta_path)
        exists = self.path(symbol, table).exists()
        last = (
            delta.index[-1] if delta is not None and len(delta)
            else self.last_bar_time(symbol, table) if exists
            else None
        )  # fmt: skip
        if last is not None and rows.index[0] <= last:
            raise ValueError(
                f"{symbol}: appended rows must be newer than the stored {last}; "
                f"got {rows.index[0]} (use upsert to rewrite history)"
            )
        held = 0 if delta is None else len(delta)
        if not exists or held + len(rows) >= COMPACT_ROWS:
            current = self.read(symbol, table) if exists else None
            self.write(symbol, upsert_frames(current, rows), table)
            return
        columns = [str(c) for c in rows.columns]
        records = [
            {INDEX_NAME: t.isoformat(), **dict(zip(columns, values, strict=True))}
            for t, values in zip(rows.index, rows.to_numpy(dtype="float64").tolist(), strict=True)
        ]
        append_jsonl_lines(delta_path, records)

    def symbols(self, table: str = "features") -> list[str]:
        """Symbols that have a file for this timeframe."""
        suffix = f"_{self.timeframe}.parquet"
        folder = self.root / table
        return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))

    def read(self, symbol: str, table: str = "features") -> pd.DataFrame | None:
        """The whole table (with its appended delta), or None when the symbol has none yet."""
        return self._with_delta(self._read_file(self.path(symbol, table)), symbol, table)

    def write(self, symbol: str, frame: pd.DataFrame, table: str = "features") -> Path:
        """Replace a table atomically (a failed write leaves the old file intact)."""
        if frame.index.name != INDEX_NAME or not frame.index.is_monotonic_increasing:
            raise ValueError("store frames need a sorted 'timestamp' index")
        if frame.index.has_duplicates:
            raise ValueError(f"{symbol}: refusing to store duplicate timestamps")
        written = write_parquet_atomic(
            self.path(symbol, table), frame, engine="pyarrow", row_group_size=ROW_GROUP_SIZE
        )
        self.delta_path(symbol, table).unlink(missing_ok=True)  # the table now holds it all
        return written

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
        stat = os.stat(path)
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size, n)
        memo = self._tail_memo.get((path, n))
        if memo is not None and memo[0] == key:  # the table is unchanged: only the delta
            delta_path = self.delta_path(symbol, table)
            self._read_delta(delta_path)
            seen = self._delta_memo.get(delta_path)
            version = (key, (seen.inode, seen.offset) if seen is not None else None)
            combined = self._combined_memo.get((path, n))
            if combined is not None and combined[0] == version:
                return combined[1]
            frame = self._with_delta(memo[1], symbol, table)
            frame = frame.iloc[max(len(frame) - n, 0) :] if n else frame.iloc[:0]
            self._combined_memo[(path, n)] = (version, frame)
            return frame
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
        self._tail_memo[(path, n)] = (key, frame)
        frame = self._with_delta(frame, symbol, table)
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
