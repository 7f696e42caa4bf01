"""Shadow logs: every prediction served and every paper trade, as daily JSONL files.

Files live in one directory, one per kind and UTC day of the clock at write time:
``predictions_YYYYMMDD.jsonl`` and ``trades_YYYYMMDD.jsonl``. Appends are whole lines
even with several server processes writing (see `levibot.online.jsonl`).

A prediction record has these fields (others are kept as extra columns):

- ``ts``: ISO UTC time it was logged (added from the clock when absent)
- ``request_id``: id of the HTTP request (or replay step) that produced it
- ``endpoint``: which API produced it, e.g. "/predict"
- ``symbol``: market symbol
- ``bar_time``: open time (UTC, ISO) of the bar the prediction is for
- ``variant``: "prod" or "canary": which arm of the traffic split served it
- ``role``: "prod" or "candidate": which registry model produced this p_up
- ``model_id``: registry id of that model
- ``p_up``: calibrated probability that the price goes up (null when unavailable)
- ``signal``: "ENTRY", "EXIT" or "HOLD"
- ``reason``: why this signal / variant (e.g. a guard that forced HOLD)
- ``served``: True when returned to the caller, False for a shadow-only prediction

A trade record is a closed paper trade as `levibot.online.paper.PaperBook.on_bar`
returns it (model, model_id, symbol, entry/exit time and price, return, pnl, ...).
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.online.jsonl import (
    append_jsonl_lines,
    open_locked_for_read,
    parse_jsonl_lines,
    scan_jsonl,
)
from levibot.timeframe import to_utc, utc_now

PREDICTION_COLUMNS = [
    "ts",
    "request_id",
    "endpoint",
    "symbol",
    "bar_time",
    "variant",
    "role",
    "model_id",
    "p_up",
    "signal",
    "reason",
    "served",
]
TRADE_COLUMNS = [
    "ts",
    "model",
    "model_id",
    "symbol",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "return",
    "pnl",
    "bars_held",
]
_TIME_COLUMNS = ("ts", "bar_time", "entry_time", "exit_time")
_FILE = re.compile(r"^(predictions|trades)_(\d{8})\.jsonl$")
_READ_CHUNK = 1 << 20  # bytes per read when counting: bounds memory on a first big count


@dataclass(slots=True)
class _FileCount:
    """Running counts of one file, so `ShadowLog.counts` only reads what was appended."""

    identity: tuple[int, int]  # (st_dev, st_ino): another file at the path starts over
    offset: int = 0  # bytes up to the end of the last complete line counted
    partial: bytes = b""  # bytes after `offset` read so far: a line not yet terminated
    counter: Counter[str] = field(default_factory=Counter)
    corrupt: int = 0

    @property
    def end(self) -> int:
        """File position to read from next."""
        return self.offset + len(self.partial)

    def feed(self, chunk: bytes, key: str) -> None:
        """Count the complete lines of `partial + chunk`; keep the unterminated rest."""
        data = self.partial + chunk if self.partial else chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            records, bad = parse_jsonl_lines(data[:cut])
            self.counter.update(str(r.get(key) or "unknown") for r in records)
            self.corrupt += len(bad)
            self.offset += cut
        self.partial = data[cut:]


class ShadowLog:
    """Daily-rotated prediction and trade logs in `directory`, shared by all processes."""

    def __init__(
        self,
        directory: Path | str,
        clock: Callable[[], pd.Timestamp] = utc_now,
        *,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self.fsync = fsync
        self._count_cache: dict[tuple[Path, str], _FileCount] = {}
        self._cache_lock = threading.Lock()
        self.bytes_read = 0  # total bytes `counts` read so far: shows it reads only appends
        self._paths: dict[tuple[str, date], Path] = {}

    # ------------------------------------------------------------------ writing

    def log_prediction(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append a prediction record (fields: module doc); returns what was written."""
        return self._append("predictions", record)

    def log_trade(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append a closed paper trade, fsynced (trades are rare, and a paper book clears
        its pending copy once this returns: the line must survive a power cut)."""
        return self._append_many("trades", [record], fsync=True)[0]

    def log_predictions(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several prediction records (served + shadow) in one locked write."""
        return self._append_many("predictions", records)

    def _append(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        return self._append_many(kind, [record])[0]

    def _append_many(
        self, kind: str, records: Sequence[Mapping[str, Any]], *, fsync: bool = False
    ) -> list[dict[str, Any]]:
        now = to_utc(self.clock())
        stamp = now.isoformat()
        rows = [{**record, "ts": record.get("ts") or stamp} for record in records]
        append_jsonl_lines(self.path_for(kind, now.date()), rows, fsync=fsync or self.fsync)
        return rows

    def path_for(self, kind: str, day: date) -> Path:
        """The file of `kind` ("predictions" or "trades") for one UTC day."""
        key = (kind, day)
        path = self._paths.get(key)
        if path is None:
            if kind not in ("predictions", "trades"):
                raise ValueError(f"kind must be 'predictions' or 'trades', got {kind!r}")
            path = self._paths[key] = self.directory / f"{kind}_{day:%Y%m%d}.jsonl"
        return path

    # ------------------------------------------------------------------ reading

    def files(self, kind: str, since: pd.Timestamp | None = None) -> list[Path]:
        """Daily files of `kind` in date order; with `since`, only days that reach it."""
        if not self.directory.is_dir():
            return []
        first_day = None if since is None else to_utc(since).date()
        dated = []
        for path in self.directory.iterdir():
            match = _FILE.match(path.name)
            if not match or match.group(1) != kind:
                continue
            try:
                day = pd.Timestamp(match.group(2)).date()
            except ValueError:
                continue
            if first_day is None or day >= first_day:
                dated.append((day, path))
        return [path for _, path in sorted(dated)]

    def predictions(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """All logged predictions with ``ts >= since``, in time order."""
        return self._frame("predictions", PREDICTION_COLUMNS, since)

    def trades(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """All logged paper trades with ``ts >= since``, in time order."""
        return self._frame("trades", TRADE_COLUMNS, since)

    def has_trade(self, trade: Mapping[str, Any]) -> bool:
        """Whether a trade with this `trade_id` is logged (files from its exit day on).

        For crash recovery of a paper book only (rare): it scans those files."""
        since = pd.Timestamp(trade["exit_time"]) if trade.get("exit_time") else None
        for path in self.files("trades", since):
            if any(r.get("trade_id") == trade["trade_id"] for r in scan_jsonl(path)[0]):
                return True
        return False

    def _frame(self, kind: str, columns: list[str], since: pd.Timestamp | None) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        for path in self.files(kind, since):
            rows.extend(scan_jsonl(path)[0])
        frame = pd.DataFrame(rows)
        extra = [c for c in frame.columns if c not in columns]
        frame = frame.reindex(columns=[*columns, *extra])
        for column in _TIME_COLUMNS:
            if column in frame.columns:
                frame[column] = pd.to_datetime(
                    frame[column], utc=True, format="ISO8601", errors="coerce"
                )
        if since is not None:
            frame = frame[frame["ts"] >= to_utc(since)]
        return frame.sort_values("ts", kind="stable").reset_index(drop=True)

    def counts(self) -> dict[str, Any]:
        """Rows per variant (predictions) and per model (trades), plus skipped lines.

        ``{"predictions": {"prod": n, "canary": m}, "trades": {"prod": k, ...},
        "corrupt_lines": c}``; a record without the key counts as "unknown". Counting is
        incremental: each call reads only the bytes appended since the previous one (a
        replaced or truncated file is recounted), because the status endpoint polls this
        while the logs grow. A last line without its "\\n" (a crashed writer's torn
        line) is counted once terminated, which the next append does.
        """
        predictions, p_bad = self._count(self.files("predictions"), "variant")
        trades, t_bad = self._count(self.files("trades"), "model")
        return {
            "predictions": dict(sorted(predictions.items())),
            "trades": dict(sorted(trades.items())),
            "corrupt_lines": p_bad + t_bad,
        }

    def _count(self, paths: Iterable[Path], key: str) -> tuple[Counter[str], int]:
        total: Counter[str] = Counter()
        corrupt = 0
        listed = set(paths)
        for path in sorted(listed):
            # One lock for read + update + sum: concurrent callers never double-count a
            # chunk or iterate a counter another thread is updating.
            with self._cache_lock:
                state = self._count_file(path, key)
                if state is not None:
                    total.update(state.counter)
                    corrupt += state.corrupt
        with self._cache_lock:  # forget deleted files: the cache stays bounded
            for cache_key in [k for k in self._count_cache if k[1] == key]:
                # `listed` may predate a file another caller already counted: check it.
                if cache_key[0] not in listed and not cache_key[0].exists():
                    del self._count_cache[cache_key]
        return total, corrupt

    def _count_file(self, path: Path, key: str) -> _FileCount | None:
        """Bring the counts of `path` up to date (caller holds `_cache_lock`)."""
        cache_key = (path, key)
        with open_locked_for_read(path) as fd:
            if fd is None:
                self._count_cache.pop(cache_key, None)
                return None
            stat = os.fstat(fd)
            identity = (stat.st_dev, stat.st_ino)
            state = self._count_cache.get(cache_key)
            if state is None or state.identity != identity or stat.st_size < state.end:
                state = self._count_cache[cache_key] = _FileCount(identity)
            position = state.end
            while chunk := os.pread(fd, _READ_CHUNK, position):
                position += len(chunk)
                self.bytes_read += len(chunk)
                state.feed(chunk, key)
        return state
