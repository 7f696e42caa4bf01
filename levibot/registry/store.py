"""Reading and writing the registry file, and the artifacts its entries point at.

Every write is atomic (``write_json_atomic``) and done under a ``file_lock`` on
``<file>.lock`` that is held for the whole read-modify-write cycle, so concurrent
writers (threads or processes) never lose each other's updates. Readers need no lock:
``os.replace`` means they always see a whole file.

Events: the registry file keeps only the newest `EVENTS_KEPT` (every server worker
re-reads the file on each change); older ones move, oldest first, to the JSON Lines
archive `events_archive_for(registry file)`. They are appended there (fsynced) before
the registry is rewritten without them, so a crash in between can duplicate an archived
event but never lose one. `registry_events` returns the whole history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from levibot.io import (
    CorruptFileError,
    durable_writes,
    file_lock,
    format_errors,
    read_json,
    sha256_file,
    write_json_atomic,
)
from levibot.online.jsonl import append_jsonl_lines, read_jsonl
from levibot.registry.schema import ArtifactRef, Event, ModelEntry, Registry, RegistryError
from levibot.state.paths import events_archive_for

M = TypeVar("M", bound=BaseModel)

EVENTS_KEPT = 100  # newest events kept in the registry file; older ones are archived


def _validate(model: type[M], data: Any, path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{path}: invalid {model.__name__}: {format_errors(exc)}") from exc


def _read(path: Path, model: type[M], missing_ok: bool) -> M:
    if not path.exists():
        if missing_ok:
            return model()
        raise RegistryError(f"{path}: file not found")
    try:
        data = read_json(path)
    except CorruptFileError as exc:
        raise RegistryError(str(exc)) from exc
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read ({exc})") from exc
    return _validate(model, data, path)


def _write(path: Path, obj: M) -> M:
    """Re-validate (callers mutate in place) and write atomically; the caller holds the lock."""
    checked = _validate(type(obj), obj.model_dump(), path)
    write_json_atomic(path, checked.model_dump(mode="json"))
    return checked


def _rotate_events(path: Path, registry: Registry) -> None:
    """Append all but the newest `EVENTS_KEPT` events to the archive, then drop them here."""
    old = registry.events[:-EVENTS_KEPT]
    if not old:
        return
    archived = _archived_events(path)
    # a rotation whose registry write failed left its events at the archive's tail
    already = next(
        (k for k in range(min(len(archived), len(old)), 0, -1) if archived[-k:] == old[:k]), 0
    )
    records = [event.model_dump(mode="json") for event in old[already:]]
    try:
        if records:
            append_jsonl_lines(events_archive_for(path), records, fsync=durable_writes())
    except OSError as exc:
        raise RegistryError(f"{events_archive_for(path)}: cannot archive events ({exc})") from exc
    registry.events = registry.events[-EVENTS_KEPT:]


def _write_registry(path: Path, registry: Registry) -> Registry:
    """Validate (before archiving anything), rotate old events out, then write."""
    _validate(Registry, registry.model_dump(), path)
    _rotate_events(path, registry)
    return _write(path, registry)


def load_registry(path: Path | str, *, missing_ok: bool = False) -> Registry:
    """Parse the registry; a missing file is an empty Registry only with `missing_ok`."""
    return _read(Path(path), Registry, missing_ok)


def save_registry(path: Path | str, registry: Registry) -> Registry:
    """Overwrite the whole registry (under the lock); prefer the operations below."""
    with file_lock(path):
        return _write_registry(Path(path), registry)


@contextmanager
def registry_transaction(path: Path | str, *, missing_ok: bool = False) -> Iterator[Registry]:
    """Lock, reload, let the body mutate the Registry, then save it if the body succeeded."""
    path = Path(path)
    with file_lock(path):
        registry = load_registry(path, missing_ok=missing_ok)
        yield registry
        _write_registry(path, registry)


# -------------------------------------------------------------------------- events


def _archived_events(path: Path) -> list[Event]:
    """The archive's events in file order; a torn last line (crashed append) is skipped:
    its events were still in the registry file, and are archived again."""
    archive = events_archive_for(path)
    try:
        records = read_jsonl(archive)
    except OSError as exc:
        raise RegistryError(f"{archive}: cannot read ({exc})") from exc
    return [_validate(Event, record, archive) for record in records]


def _without_overlap(archived: list[Event], current: list[Event]) -> list[Event]:
    """`archived` minus a tail that `current` starts with: what a rotation that ran
    while we read (or crashed before rewriting the registry) leaves in both files."""
    for size in range(min(len(archived), len(current)), 0, -1):
        if archived[-size:] == current[:size]:
            return archived[:-size]
    return archived


def registry_events(path: Path | str, *, missing_ok: bool = False) -> list[Event]:
    """Every event of the registry at `path`, oldest first: archived ones, then the file's.

    Needs no lock: the registry is read before the archive, so an event rotated
    meanwhile is seen in both (and counted once), never in neither.
    """
    path = Path(path)
    current = load_registry(path, missing_ok=missing_ok).events
    return _without_overlap(_archived_events(path), current) + current


# ----------------------------------------------------------------------- artifacts


def artifact_ref(path: Path | str, base_dir: Path | str) -> ArtifactRef:
    """Hash a file and store its path relative to `base_dir` when it lies inside it."""
    path, base = Path(path).resolve(), Path(base_dir).resolve()
    stored = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
    return ArtifactRef(path=stored, sha256=sha256_file(path))


def verify_artifacts(entry: ModelEntry, base_dir: Path | str) -> None:
    """Raise RegistryError listing every artifact that is missing or has another sha256."""
    problems = []
    for name, ref in entry.artifact_refs():
        file = Path(ref.path) if Path(ref.path).is_absolute() else Path(base_dir) / ref.path
        if not file.is_file():
            problems.append(f"artifact {name} ({file}): missing file")
            continue
        actual = sha256_file(file)
        if actual != ref.sha256:
            problems.append(
                f"artifact {name} ({file}): sha256 mismatch, expected {ref.sha256}, actual {actual}"
            )
    if problems:
        raise RegistryError(f"model {entry.id}: " + "; ".join(problems))
