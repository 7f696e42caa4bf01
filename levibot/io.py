"""The one I/O layer: atomic writes, JSON/Parquet helpers.

Anything another process reads is written to a temp file in the same directory,
fsynced, then moved over the target with ``os.replace``: a reader sees the old file
or the new one, never half of one, and a failed write leaves the old file intact.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from pydantic import AfterValidator, ValidationError

FILE_MODE = 0o644  # readable by the server/notebooks of other users, like a plain open()
LOCK_TIMEOUT_SEC = 60.0


class CorruptFileError(ValueError):
    """A file exists but cannot be parsed; the message names the file and the problem."""


class FileBusyError(OSError):
    """Another writer held a state file's lock for longer than the timeout."""


def to_utc_datetime(value: datetime) -> datetime:
    """Naive times are taken as UTC; aware ones are converted, so state files are all UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(to_utc_datetime)]


def format_errors(exc: ValidationError, limit: int = 5) -> str:
    """One line per field ('prod.policy: exit_threshold ...'), not pydantic's traceback."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@contextmanager
def file_lock(path: Path | str, timeout: float = LOCK_TIMEOUT_SEC) -> Iterator[None]:
    """Exclusive lock on `<path>.lock` across threads and processes (read-modify-write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise FileBusyError(f"{path}: still locked by another writer after {timeout}s") from exc
    try:
        yield
    finally:
        lock.release()


_DURABLE = [True]  # fsync every atomic write (off only inside `without_fsync`)


@contextmanager
def without_fsync() -> Iterator[None]:
    """Atomic writes in this process skip fsync while inside (still atomic: temp file +
    rename). Only for throwaway workspaces such as `levibot marathon simulate`'s runs,
    where a power cut loses nothing of value and fsync would dominate the run time."""
    _DURABLE[0] = False
    try:
        yield
    finally:
        _DURABLE[0] = True


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success it replaces `target` atomically.

    On any exception the temp file is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 would hide the file from other readers
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if _DURABLE[0]:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
        if _DURABLE[0]:
            _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(target: Path | str, writer: Callable[[Path], None]) -> Path:
    """Run `writer(tmp_path)` and move the result over `target` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_text_atomic(target: Path | str, text: str) -> Path:
    return atomic_write(target, lambda tmp: tmp.write_text(text))


def finite_or_null(payload: Any) -> Any:
    """The payload with every NaN / inf float replaced by None (JSON has no NaN)."""
    if isinstance(payload, float):
        return payload if math.isfinite(payload) else None
    if isinstance(payload, dict):
        return {k: finite_or_null(v) for k, v in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [finite_or_null(v) for v in payload]
    if isinstance(payload, np.floating):
        return finite_or_null(float(payload))
    return payload


def write_json_atomic(target: Path | str, payload: Any) -> Path:
    """Pretty, key-sorted JSON (datetimes and paths as strings), written atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_text_atomic(target, text)


def read_json(path: Path | str) -> Any:
    """Parse a JSON file; a corrupt one raises CorruptFileError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc})") from exc


def write_parquet_atomic(target: Path | str, frame: pd.DataFrame, **kwargs: Any) -> Path:
    """Write `frame` to Parquet atomically (kwargs go to ``DataFrame.to_parquet``)."""
    return atomic_write(target, lambda tmp: frame.to_parquet(tmp, **kwargs))


def write_csv_atomic(target: Path | str, frame: pd.DataFrame) -> Path:
    return atomic_write(target, lambda tmp: frame.to_csv(tmp))


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in blocks (artifacts can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
