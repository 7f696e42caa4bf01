"""Reading and writing the registry file, and the artifacts its entries point at.

Every write is atomic (``write_json_atomic``) and done under a ``file_lock`` on
``<file>.lock`` that is held for the whole read-modify-write cycle, so concurrent
writers (threads or processes) never lose each other's updates. Readers need no lock:
``os.replace`` means they always see a whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from levibot.io import (
    CorruptFileError,
    file_lock,
    format_errors,
    read_json,
    sha256_file,
    write_json_atomic,
)
from levibot.registry.schema import ArtifactRef, ModelEntry, Registry, RegistryError

M = TypeVar("M", bound=BaseModel)


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


def load_registry(path: Path | str, *, missing_ok: bool = False) -> Registry:
    """Parse the registry; a missing file is an empty Registry only with `missing_ok`."""
    return _read(Path(path), Registry, missing_ok)


def save_registry(path: Path | str, registry: Registry) -> Registry:
    """Overwrite the whole registry (under the lock); prefer the operations below."""
    with file_lock(path):
        return _write(Path(path), registry)


@contextmanager
def registry_transaction(path: Path | str, *, missing_ok: bool = False) -> Iterator[Registry]:
    """Lock, reload, let the body mutate the Registry, then save it if the body succeeded."""
    path = Path(path)
    with file_lock(path):
        registry = load_registry(path, missing_ok=missing_ok)
        yield registry
        _write(path, registry)


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
