"""The one I/O layer: atomic writes, JSON/Parquet helpers.

Anything another process reads is written to a temp file in the same directory,
fsynced, then moved over the target with ``os.replace``: a reader sees the old file
or the new one, never half of one, and a failed write leaves the old file intact.

A writer killed mid-write (``kill -9``) leaves its temp file ``.<name>.<pid>.<hex>.tmp``
behind; each successful write of the same target removes such files when they are
stale (see `_is_stale_temp`), so they do not pile up.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import time
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
# A temp file is left alone until untouched this long, even if its writer's pid looks dead:
# a writer in another pid namespace (container) or on another host looks dead from here.
STALE_TEMP_GRACE_SEC = 600.0
# ... and removed after this long whatever its pid says (pid reuse, pre-pid temp names).
STALE_TEMP_MAX_AGE_SEC = 24 * 3600.0


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


def durable_writes() -> bool:
    """False inside `without_fsync`: for writers (like JSONL appends) that fsync themselves."""
    return _DURABLE[0]


def _create_temp(target: Path) -> Path:
    """A new empty temp file beside `target`, named with this writer's pid (for cleanup)."""
    while True:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:  # 32 random bits taken: draw again
            continue
        os.fchmod(fd, FILE_MODE)  # regardless of the umask, readable by other users' readers
        os.close(fd)
        return tmp


def _temp_name_pattern(target: Path) -> re.Pattern[str]:
    """`target`'s own temp names: this version's ``.<name>.<pid>.<hex>.tmp`` (pid captured)
    and older versions' ``.<name>.<random>.tmp``; never another target's temp files."""
    return re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)\.[0-9a-f]+|[a-z0-9_]+)\.tmp")


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (another user's counts; unsure = alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (could ever be)
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _is_stale_temp(pid: int | None, age: float) -> bool:
    """A temp file no live writer can still move into place: untouched for the grace
    period and its writer's pid is gone, or untouched for a day whatever the pid."""
    if age >= STALE_TEMP_MAX_AGE_SEC:
        return True
    return age >= STALE_TEMP_GRACE_SEC and pid is not None and not _pid_alive(pid)


def remove_stale_temp_files(target: Path | str) -> list[Path]:
    """Delete `target`'s temp files left by dead writers; returns what was removed.

    Best effort and safe beside concurrent writers: a live writer's file is never stale
    (its pid is alive, or it was touched within the grace period), and errors are ignored.
    """
    target = Path(target)
    pattern, now = _temp_name_pattern(target), time.time()
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            pid = int(match[1]) if match[1] else None
            if _is_stale_temp(pid, age):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # removed by a concurrent cleaner, or not ours to remove
            continue
    return removed


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `target`; on success it replaces `target` atomically.

    On any exception the temp file is removed and `target` is untouched. After a
    successful write, stale temp files of `target` left by killed writers are removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
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
    remove_stale_temp_files(target)


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
