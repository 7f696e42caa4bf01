"""Append-only JSON Lines files shared by several writer processes.

`append_jsonl` writes one record as one line under an exclusive ``fcntl.flock`` on the
file descriptor, with ``O_APPEND`` and a write loop that only returns once every byte is
written, so concurrent writers (threads or processes) never interleave or split lines.
If a previous writer crashed mid-line, the next append first terminates that torn line
so only the torn record is lost, never the new one. `read_jsonl` takes a shared lock, so
it never sees a line that is still being written.

Durability: by default lines are not fsynced (an fsync per line costs milliseconds and
the logs are written on the request path); a machine crash can lose the last lines,
but never corrupt earlier ones. Pass ``fsync=True`` for records that must survive that.

POSIX only (``fcntl``), like the server.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from levibot.io import FILE_MODE, CorruptFileError

_PLAIN = frozenset({str, int, float, bool, type(None)})


def _clean(value: Any) -> Any:
    """JSON-ready copy: NaN/inf/NaT/NA become null, numpy scalars plain Python, times ISO."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item) for item in value]
    if isinstance(value, (datetime, date)):  # pd.Timestamp included; pd.NaT is one too
        text = value.isoformat()
        return None if text == "NaT" else text
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None
    ndim = getattr(value, "ndim", None)  # numpy scalars (float32, int64, bool_) and arrays
    convert = getattr(value, "item" if ndim == 0 else "tolist", None)
    if ndim is not None and callable(convert):
        try:
            return _clean(convert())
        except (TypeError, ValueError):
            pass
    return value  # anything else: json's default=str


def dumps_line(record: Mapping[str, Any]) -> str:
    """`record` as one JSON line (keys sorted, NaN/inf as null, unknown types as str).

    Plain records (str/int/float/bool/None values, the hot path's) are dumped directly;
    anything else (NaN, numpy, timestamps, nesting) goes through `_clean` first.
    """
    if all(type(v) in _PLAIN for v in record.values()):
        try:
            return json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        except ValueError:  # NaN/inf: fall through to the cleaning path
            pass
    return json.dumps(_clean(record), sort_keys=True, default=str, allow_nan=False) + "\n"


def append_jsonl(path: Path | str, record: Mapping[str, Any], *, fsync: bool = False) -> None:
    """Append `record` as one whole line to `path` (created with its folder if missing)."""
    append_jsonl_lines(path, [record], fsync=fsync)


def _open_for_append(path: Path) -> int:
    # O_RDWR rather than O_WRONLY only to read the last byte (the torn-line check).
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, flags, FILE_MODE)
    except FileNotFoundError:  # first line of the day in a new folder
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, FILE_MODE)


def append_jsonl_lines(
    path: Path | str, records: Sequence[Mapping[str, Any]], *, fsync: bool = False
) -> None:
    """Append several records as whole lines with one lock and one write (hot path)."""
    data = "".join(dumps_line(record) for record in records).encode("utf-8")
    if not data:
        return
    fd = _open_for_append(Path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crashed writer left a torn line: end it first
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def open_locked_for_read(path: Path | str) -> Iterator[int | None]:
    """A read-only fd of `path` under a shared lock (None when it does not exist).

    Writers hold the exclusive lock for a whole append, so while this is held the file
    only ever ends in whole lines (or a line torn by a writer that crashed).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_locked(path: Path) -> bytes | None:
    """The whole file under a shared lock; None when it does not exist."""
    with open_locked_for_read(path) as fd:
        if fd is None:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)


def parse_jsonl_lines(
    data: bytes, first_line: int = 1
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(records, corrupt lines) of `data`, lines numbered from `first_line`.

    The one definition of a corrupt line (not UTF-8 JSON, or not an object), shared by
    `scan_jsonl` and incremental readers that feed it chunks of complete lines. Blank
    lines are ignored but numbered; a final fragment without "\\n" is parsed like a line.
    """
    records: list[dict[str, Any]] = []
    corrupt: list[tuple[int, str]] = []
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            corrupt.append((number, f"not valid JSON ({exc})"))
            continue
        if not isinstance(record, dict):
            corrupt.append((number, f"not a JSON object but {type(record).__name__}"))
            continue
        records.append(record)
    return records, corrupt


def scan_jsonl(path: Path | str) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(records, corrupt lines as (1-based line number, problem)); blank lines are ignored."""
    data = _read_locked(Path(path))
    if not data:
        return [], []
    return parse_jsonl_lines(data)


def read_jsonl(path: Path | str, *, strict: bool = False) -> list[dict[str, Any]]:
    """Every record of `path` in file order; a missing file is [].

    A torn or corrupt line is skipped (see `count_corrupt_lines`), or with ``strict``
    raises CorruptFileError naming the file and the line number.
    """
    records, corrupt = scan_jsonl(path)
    if strict and corrupt:
        number, problem = corrupt[0]
        more = f" (and {len(corrupt) - 1} more corrupt lines)" if len(corrupt) > 1 else ""
        raise CorruptFileError(f"{path}: line {number}: {problem}{more}")
    return records


def count_corrupt_lines(path: Path | str) -> int:
    """How many lines of `path` `read_jsonl` skips (0 for a missing file)."""
    return len(scan_jsonl(path)[1])
