"""Bars from local CSV files: a single .csv, a .zip (e.g. Binance monthly kline dumps)
or a directory of such files.

Why it is careful rather than quick: CSV dumps are where bad data enters. The source
never drops or repairs a row silently; a malformed row stays as a row of NaN so
:mod:`levibot.data.validate` quarantines it with a reason, duplicates stay for the
same reason, and whatever cannot be placed in time (an unparseable timestamp) or is
deliberately left out (an incomplete resampled bar) is counted in ``last_report``.

Layouts understood:

* Binance klines: 12 columns (open_time, open, high, low, close, volume, close_time,
  ...), with or without a header row; open_time in ms, or in us in newer spot dumps.
* Generic OHLCV with a header: a timestamp column (timestamp/time/date/datetime/
  open_time, any case) holding epoch s/ms/us/ns (told apart by magnitude) or ISO
  strings (naive = UTC), open/high/low/close/volume and optionally the auxiliary
  BAR_COLUMNS, any case.

Data finer than the target timeframe is resampled; only complete target bars are kept.
Reading one text into columns and bars is `levibot.data.sources.csv_table`'s part; this
module finds the texts, picks a symbol's rows and reports on each fetch.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.data.schema import INDEX_NAME, conform_bars, empty_bars
from levibot.data.sources.csv_table import (
    SYMBOL_NAME,
    Entry,
    Table,
    read_table,
    table_to_bars,
)
from levibot.data.sources.exchange import split_symbol
from levibot.data.sources.resample import (
    Resampled,
    resample_complete,
    source_interval,
    stable_sort,
)
from levibot.symbols import UnknownSymbolError
from levibot.timeframe import timeframe_delta, to_utc

REPORT_EXAMPLES = 5


@dataclass
class _Loaded:
    """Everything parsed for one symbol, kept so repeated fetches do not re-read files."""

    bars: pd.DataFrame
    files: list[str]
    source_seconds: int | None
    incomplete: pd.DatetimeIndex
    tainted: pd.DatetimeIndex
    malformed_rows: int
    unparseable_rows: list[str] = field(default_factory=list)
    unparseable_locations: list[str] = field(default_factory=list)
    unparseable_count: int = 0


def canonical_symbol(symbol: str) -> str:
    """Upper case without separators, so 'btc/usdt', 'BTC-USDT' and 'BTCUSDT' agree."""
    return re.sub(r"[^A-Z0-9]", "", str(symbol).upper())


def _name_matches(name: str, symbol: str) -> bool:
    """File names start with the symbol followed by a non-alphanumeric character or the end,
    so BTCUSD does not pick up BTCUSDT-1m-2024-01.csv."""
    return _name_symbol(name) == canonical_symbol(symbol)


def _name_symbol(name: str) -> str:
    """The symbol a file name announces (its leading alphanumeric run)."""
    head = re.match(r"[A-Za-z0-9]*", Path(name).name)
    return head.group(0).upper() if head else ""


def _zip_entries(path: Path) -> list[Entry]:
    """The CSV members of a zip (macOS resource forks and folders skipped)."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(
            info.filename
            for info in archive.infolist()
            if not info.is_dir()
            and info.filename.lower().endswith(".csv")
            and "__MACOSX" not in info.filename
        )

    def reader(member: str) -> Callable[[], str]:
        def read() -> str:
            with zipfile.ZipFile(path) as archive:
                return archive.read(member).decode("utf-8-sig", errors="replace")

        return read

    return [Entry(f"{path.name}/{m}", Path(m).name, path.name, reader(m)) for m in names]


def _file_entries(path: Path, *, named_by_user: bool = False) -> list[Entry]:
    """A .csv file or the CSV members of a .zip; in a directory, other files are skipped,
    but a file the user named is read as CSV whatever its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _zip_entries(path)
    if suffix == ".csv" or named_by_user:
        return [Entry(path.name, path.name, None, lambda: path.read_text("utf-8-sig", "replace"))]
    return []


def list_entries(path: Path) -> list[Entry]:
    """All CSV texts under `path` (a file, or the files directly inside a directory)."""
    if path.is_dir():
        return [entry for child in sorted(path.iterdir()) for entry in _file_entries(child)]
    return _file_entries(path, named_by_user=True)


def _select_rows(table: Table, symbol: str) -> Table:
    """Only the rows of `symbol` when the table has a symbol column."""
    if SYMBOL_NAME not in table.columns:
        return table
    wanted = canonical_symbol(symbol)
    keep = [i for i, s in enumerate(table.columns[SYMBOL_NAME]) if canonical_symbol(s) == wanted]
    columns = {name: [values[i] for i in keep] for name, values in table.columns.items()}
    return Table(
        table.label,
        columns,
        [table.rows[i] for i in keep],
        [table.lines[i] for i in keep],
        [table.malformed[i] for i in keep],
    )


class CsvSource:
    """Bars for one or more symbols from CSV files, a zip of them, or a directory.

    ``last_report`` describes the latest fetch: files read, detected source interval,
    incomplete target bars dropped and spoiled bars in the window, rows with a wrong
    number of fields, and rows whose timestamp could not be parsed. The unparseable
    count covers the whole file(s) of the symbol, since such rows cannot be placed in
    (or out of) any window.
    """

    name = "csv"

    def __init__(
        self, path: str | Path, *, timeframe: str, timestamp_format: str | None = None
    ) -> None:
        self.path = Path(path)
        self.timestamp_format = timestamp_format
        if not self.path.exists():
            raise FileNotFoundError(f"CSV source path {self.path} does not exist")
        self.timeframe = timeframe
        self.step = timeframe_delta(timeframe)
        self.last_report: dict[str, Any] = {}
        self._cache: dict[str, _Loaded] = {}

    def fetch(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Bars with open time in [start, end) for `symbol`."""
        self.last_report = {}
        loaded = self._load(symbol)
        start, end = to_utc(start), to_utc(end)
        bars = loaded.bars
        window = bars.loc[(bars.index >= start) & (bars.index < end)]
        self.last_report = self._report(symbol, loaded, start, end, len(window))
        return conform_bars(window) if len(window) else empty_bars()

    def coverage(self, symbol: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Open times of the first and last bar the file(s) hold for `symbol` (None: none)."""
        bars = self._load(symbol).bars
        return (bars.index[0], bars.index[-1]) if len(bars) else None

    def _report(
        self, symbol: str, loaded: _Loaded, start: pd.Timestamp, end: pd.Timestamp, rows: int
    ) -> dict[str, Any]:
        """What the caller should know about the fetch beyond the rows themselves."""

        def within(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
            return stamps[(stamps >= start) & (stamps < end)]

        incomplete, tainted = within(loaded.incomplete), within(loaded.tainted)
        seconds = loaded.source_seconds
        return {
            "symbol": symbol,
            "files": list(loaded.files),
            "source_interval_seconds": seconds,
            "resampled": seconds is not None and seconds != int(self.step.total_seconds()),
            "rows": rows,
            "incomplete_bars_dropped": len(incomplete),
            "incomplete_bar_times": [t.isoformat() for t in incomplete[:REPORT_EXAMPLES]],
            "spoiled_bars": len(tainted),
            "spoiled_bar_times": [t.isoformat() for t in tainted[:REPORT_EXAMPLES]],
            "malformed_rows": loaded.malformed_rows,
            "unparseable_timestamps": loaded.unparseable_count,
            "unparseable_rows": list(loaded.unparseable_rows),
            "unparseable_locations": list(loaded.unparseable_locations),
        }

    def _load(self, symbol: str) -> _Loaded:
        """Parse (once) every row of `symbol` and bring it to the target timeframe."""
        key = canonical_symbol(symbol)
        if key not in self._cache:
            self._cache[key] = self._parse(symbol, self._tables_for(symbol))
        return self._cache[key]

    def _tables_for(self, symbol: str) -> list[Table]:
        """Tables holding `symbol`: named after it, else carrying it in a symbol column,
        else -- for a single file without a symbol column -- the file itself."""
        entries = list_entries(self.path)
        named = [
            e
            for e in entries
            if _name_matches(e.name, symbol)
            or (e.container is not None and _name_matches(e.container, symbol))
        ]
        if named:
            tables = [_select_rows(read_table(e), symbol) for e in named]
        else:
            tables = [read_table(e) for e in entries]
            if self._serves_any_symbol(entries, tables):
                return [t for t in tables if t.rows]
            tables = [_select_rows(t, symbol) for t in tables if SYMBOL_NAME in t.columns]
        tables = [t for t in tables if t.rows]
        if not tables:
            raise UnknownSymbolError(
                f"{self.path}: no CSV data for symbol {symbol!r}; available: "
                f"{self.available_symbols(entries) or 'none found'}"
            )
        return tables

    def _serves_any_symbol(self, entries: list[Entry], tables: list[Table]) -> bool:
        """A single file without a symbol column is the user's one instrument, unless its
        name is plainly another symbol (ETHUSDT-1h.csv does not answer for BTCUSDT)."""
        if not self.path.is_file() or any(SYMBOL_NAME in t.columns for t in tables):
            return False
        names = {self.path.name, *(e.name for e in entries)}
        return not any(split_symbol(_name_symbol(name)) for name in names)

    def available_symbols(self, entries: list[Entry] | None = None) -> list[str]:
        """Symbols announced by file names or found in symbol columns (for error messages)."""
        entries = list_entries(self.path) if entries is None else entries
        found: set[str] = set()
        for entry in entries:
            table = read_table(entry)
            if SYMBOL_NAME in table.columns:
                found.update(s.strip().upper() for s in table.columns[SYMBOL_NAME] if s.strip())
            else:
                found.add(_name_symbol(entry.container or entry.name))
                if split_symbol(_name_symbol(entry.name)):
                    found.add(_name_symbol(entry.name))
        return sorted(s for s in found if s)

    def _parse(self, symbol: str, tables: list[Table]) -> _Loaded:
        """Bars of all tables, sorted, resampled to the target timeframe when finer."""
        frames, raw, where = [], [], []
        for table in tables:
            frame, bad = table_to_bars(table, self.timestamp_format)
            frames.append(frame)
            raw += [",".join(table.rows[i]) for i in bad]
            where += [f"{table.label}:{table.lines[i]}" for i in bad]
        frame = stable_sort(pd.concat(frames)) if frames else empty_bars()
        source = source_interval(frame.index)
        empty = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME)
        result = Resampled(frame, empty, empty)
        if source is not None and source != self.step:
            self._check_interval(symbol, source)
            result = resample_complete(frame, source, self.step)
        return _Loaded(
            bars=result.bars,
            files=[t.label for t in tables],
            source_seconds=None if source is None else int(source.total_seconds()),
            incomplete=result.incomplete,
            tainted=result.tainted,
            malformed_rows=sum(sum(t.malformed) for t in tables),
            unparseable_rows=raw[:REPORT_EXAMPLES],
            unparseable_locations=where[:REPORT_EXAMPLES],
            unparseable_count=len(raw),
        )

    def _check_interval(self, symbol: str, source: pd.Timedelta) -> None:
        """Only finer data whose interval divides the timeframe can become target bars."""
        if source > self.step:
            raise ValueError(
                f"{self.path}: {symbol} bars are {source} apart, coarser than the "
                f"{self.timeframe} timeframe; they cannot be upsampled"
            )
        if source <= pd.Timedelta(0) or self.step % source != pd.Timedelta(0):
            raise ValueError(
                f"{self.path}: {symbol} bars are {source} apart, which does not divide the "
                f"{self.timeframe} timeframe; cannot resample"
            )
