"""One CSV text as a table of text columns: the header, the layout, the row shapes,
and the conversion of those columns to float bars on UTC open times.

Split from `levibot.data.sources.csv`, which finds the texts (files, zips, folders),
picks a symbol's rows and reports on a fetch.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from levibot.data.schema import AUX_COLUMNS, OHLCV_COLUMNS
from levibot.data.sources.timestamps import parse_timestamps

TIMESTAMP_NAMES = ("open_time", "timestamp", "datetime", "date", "time")  # first found wins
SYMBOL_NAME = "symbol"
VALUE_COLUMNS = OHLCV_COLUMNS + AUX_COLUMNS
BINANCE_POSITIONS = ["open_time", "open", "high", "low", "close", "volume"]
_UNNAMED = re.compile(r"|unnamed:?_?0|index")  # names pandas and spreadsheets give an index


@dataclass(frozen=True)
class Entry:
    """One CSV text: a file, or a member of a zip (``container`` is the zip's name)."""

    label: str
    name: str
    container: str | None
    read: Callable[[], str]


@dataclass
class Table:
    """The rows of one entry as text columns, plus what was wrong with their shape."""

    label: str
    columns: dict[str, list[str]]
    rows: list[list[str]]
    lines: list[int]
    malformed: list[bool]


def _normal(name: str) -> str:
    """Header names compared case- and separator-insensitively ('Open time' = open_time)."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _is_header(row: Sequence[str]) -> bool:
    """A first row naming a timestamp or price column is a header, not data."""
    names = {_normal(cell) for cell in row}
    return bool(names & {*TIMESTAMP_NAMES, *OHLCV_COLUMNS})


def _trimmed(row: Sequence[str]) -> list[str]:
    """A row without trailing empty cells (a header's trailing comma names no column)."""
    cells = list(row)
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def _fits(row: Sequence[str], width: int) -> bool:
    """A row has the table's width; extra cells are tolerated only when empty."""
    return len(row) == width or (len(row) > width and not any(c.strip() for c in row[width:]))


def _read_rows(entry: Entry) -> tuple[list[list[str]], list[int]]:
    """Non-blank CSV rows with their line numbers (blank lines are not rows)."""
    reader = csv.reader(io.StringIO(entry.read()))
    rows, lines = [], []
    for row in reader:
        if len(row) > 1 or (row and row[0].strip()):
            rows.append(row)
            lines.append(reader.line_num)
    return rows, lines


def _header_positions(header: Sequence[str] | None, label: str) -> dict[str, int]:
    """Column name -> position; a header-less file is taken to be in Binance kline order."""
    if header is None:
        return {name: i for i, name in enumerate(BINANCE_POSITIONS)}
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        positions.setdefault(_normal(name), i)
    stamp = next((name for name in TIMESTAMP_NAMES if name in positions), None)
    stamp_at = positions[stamp] if stamp is not None else None
    if stamp_at is None and header and _UNNAMED.fullmatch(_normal(header[0])):
        stamp_at = 0  # pandas' to_csv writes the (time) index as an unnamed first column
    missing = [col for col in OHLCV_COLUMNS if col not in positions]
    if stamp_at is None or missing:
        raise ValueError(
            f"{label}: cannot read bars from header {list(header)}: need a timestamp column "
            f"named one of {'/'.join(TIMESTAMP_NAMES)} (or an unnamed first column) and "
            f"{OHLCV_COLUMNS}"
            + (f"; missing {missing}" if missing else "")
            + "; rename the columns in the file's first line"
        )
    keep = [SYMBOL_NAME, *VALUE_COLUMNS]
    out = {name: positions[name] for name in keep if name in positions}
    out["open_time"] = stamp_at
    return out


def read_table(entry: Entry) -> Table:
    """Text columns of one entry; rows of the wrong width keep only their timestamp text."""
    rows, lines = _read_rows(entry)
    header = _trimmed(rows[0]) if rows and _is_header(rows[0]) else None
    if header is not None:
        rows, lines = rows[1:], lines[1:]
    positions = _header_positions(header, entry.label)
    width = len(header) if header is not None else _modal_width(rows)
    if header is None and rows and width < len(BINANCE_POSITIONS):
        raise ValueError(
            f"{entry.label}: header-less rows have {width} columns; expected the Binance kline "
            f"layout (open_time, open, high, low, close, volume, ...)"
        )
    malformed = [len(row) != width and not _fits(row, width) for row in rows]
    columns = _columns(rows, positions, malformed)
    if (
        header is not None
        and _UNNAMED.fullmatch(_normal(header[0]))
        and positions["open_time"] == 0
    ):
        _refuse_row_numbers(columns["open_time"], header, entry.label)
    return Table(entry.label, columns, rows, lines, malformed)


def _refuse_row_numbers(values: list[str], header: Sequence[str], label: str) -> None:
    """An unnamed first column of 0, 1, 2, ... is pandas' row index, not a time."""
    head = [v.strip() for v in values[:5]]
    start = head[0] if head else ""
    if (
        len(head) > 1
        and start in ("0", "1")
        and head == [str(int(start) + i) for i in range(len(head))]
    ):
        raise ValueError(
            f"{label}: the unnamed first column holds row numbers ({', '.join(head)}, ...), not "
            f"times; name the timestamp column one of {'/'.join(TIMESTAMP_NAMES)} "
            f"(header: {list(header)})"
        )


def _columns(
    rows: list[list[str]], positions: dict[str, int], malformed: list[bool]
) -> dict[str, list[str]]:
    """Text columns by name; a malformed row keeps only its timestamp and symbol."""
    if rows and not any(malformed):  # the common case, done column-wise for speed
        transposed = list(zip(*rows, strict=False))
        return {name: list(transposed[at]) for name, at in positions.items()}
    stamp_at = positions["open_time"]
    columns: dict[str, list[str]] = {name: [] for name in positions}
    for row, bad in zip(rows, malformed, strict=True):
        for name, at in positions.items():
            keep = not bad or at == stamp_at or name == SYMBOL_NAME
            columns[name].append(row[at] if keep and at < len(row) else "")
    return columns


def _modal_width(rows: list[list[str]]) -> int:
    """The usual row width of a header-less file (one odd first row does not set it)."""
    widths = Counter(len(row) for row in rows)
    return widths.most_common(1)[0][0] if widths else 0


def table_to_bars(
    table: Table, timestamp_format: str | None = None
) -> tuple[pd.DataFrame, list[int]]:
    """Float bars indexed by open time, and the row numbers whose timestamp is unparseable.

    Unparseable numbers become NaN (the validator quarantines the row)."""
    index = parse_timestamps(
        table.columns["open_time"], label=table.label, timestamp_format=timestamp_format
    )
    data = {
        name: pd.to_numeric(
            pd.Series(table.columns[name], dtype=object).astype(str).str.strip(),
            errors="coerce",
        ).to_numpy(dtype="float64")
        for name in VALUE_COLUMNS
        if name in table.columns
    }
    frame = pd.DataFrame(data, index=index)
    placed = ~index.isna()
    return frame.loc[placed], np.flatnonzero(~placed).tolist()
