"""Registry operations: bootstrap, register, promote, roll back, tighten the policy.

Each one is a locked read-modify-write of the registry file that appends an ``Event``,
so the file is its own audit trail. Canary and audit-log side effects belong to the
operator commands (`levibot.operations`), which call these.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from levibot.registry.schema import (
    ArchivedEntry,
    Event,
    ModelEntry,
    Registry,
    RegistryError,
    Role,
    Target,
)
from levibot.registry.store import registry_transaction, verify_artifacts
from levibot.timeframe import utc_now


def _now():
    return utc_now().to_pydatetime()


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise RegistryError("a non-empty reason is required")
    return reason.strip()


def _log(reg: Registry, action: str, reason: str, ids: list[str | None], **details: Any) -> None:
    reg.events.append(
        Event(
            at=_now(),
            action=action,
            reason=reason,
            model_ids=[i for i in ids if i],
            details=details,
        )
    )


def _archive(reg: Registry, entry: ModelEntry, role: Role, reason: str, **kw: Any) -> None:
    reg.archive.append(
        ArchivedEntry(entry=entry, role=role, archived_at=_now(), reason=reason, **kw)
    )


def _checked(path: Path | str, entry: ModelEntry, reason: str, verify: bool) -> tuple[Path, str]:
    """Shared preamble of the two ways in: a reason, and artifacts that match their hashes."""
    path, reason = Path(path), _reason(reason)
    if verify:
        verify_artifacts(entry, path.parent)
    return path, reason


def register_candidate(
    path: Path | str, entry: ModelEntry, *, reason: str, verify: bool = True
) -> Registry:
    """Make `entry` the candidate; a previous candidate is archived as 'replaced'."""
    path, reason = _checked(path, entry, reason, verify)
    with registry_transaction(path, missing_ok=True) as reg:
        taken = {e.id for e in (reg.prod, reg.candidate) if e is not None}
        if entry.id in taken:
            raise RegistryError(f"{path}: model id {entry.id!r} is already prod or candidate")
        old = reg.candidate
        if old is not None:
            _archive(reg, old, "candidate", "replaced")
        reg.candidate = entry
        _log(reg, "register_candidate", reason, [entry.id], replaced=old.id if old else None)
    return reg


def bootstrap_prod(
    path: Path | str, entry: ModelEntry, *, reason: str, verify: bool = True
) -> Registry:
    """Install the very first prod release; refused once a prod exists (use promote)."""
    path, reason = _checked(path, entry, reason, verify)
    with registry_transaction(path, missing_ok=True) as reg:
        if reg.prod is not None:
            raise RegistryError(f"{path}: prod already set ({reg.prod.id}); promote a candidate")
        if reg.candidate is not None and reg.candidate.id == entry.id:
            raise RegistryError(f"{path}: model id {entry.id!r} is already the candidate")
        reg.prod = entry
        _log(reg, "bootstrap_prod", reason, [entry.id])
    return reg


def promote(path: Path | str, *, reason: str) -> Registry:
    """Candidate becomes prod after its artifacts verify; the old prod is archived."""
    path, reason = Path(path), _reason(reason)
    with registry_transaction(path) as reg:
        new = reg.candidate
        if new is None:
            raise RegistryError(f"{path}: no candidate to promote")
        verify_artifacts(new, path.parent)
        old = reg.prod
        if old is not None:
            _archive(reg, old, "prod", reason)
        reg.prod, reg.candidate = new, None
        _log(
            reg,
            "promote",
            reason,
            [new.id, old.id if old else None],
            previous_prod=old.id if old else None,
        )
    return reg


def rollback(path: Path | str, *, reason: str) -> Registry:
    """Restore the most recent archived prod; the current prod is archived as rolled back.

    A rolled-back release is never restored by a later rollback, so two rollbacks go
    back two releases instead of toggling between the last two.
    """
    path, reason = Path(path), _reason(reason)
    with registry_transaction(path) as reg:
        index = next(
            (
                i
                for i in range(len(reg.archive) - 1, -1, -1)
                if reg.archive[i].role == "prod" and not reg.archive[i].rolled_back
            ),
            None,
        )
        if index is None:
            raise RegistryError(f"{path}: archive has no previous prod to roll back to")
        restored = reg.archive[index].entry
        verify_artifacts(restored, path.parent)
        if reg.candidate is not None and reg.candidate.id == restored.id:
            raise RegistryError(f"{path}: model {restored.id!r} to restore is the candidate")
        del reg.archive[index]
        old = reg.prod
        if old is not None:
            _archive(reg, old, "prod", reason, rolled_back=True)
        reg.prod = restored
        old_id = old.id if old else None
        _log(reg, "rollback", reason, [restored.id, old_id], previous_prod=old_id)
    return reg


def tighten_policy(
    path: Path | str, *, delta: float = 0.01, reason: str, target: Target = "candidate"
) -> Registry:
    """Raise entry and lower exit by `delta` (within [0, 1]): the response to a high ECE."""
    path, reason = Path(path), _reason(reason)
    if not (math.isfinite(delta) and 0 < delta <= 1):
        raise RegistryError(f"delta must be in (0, 1], got {delta}")
    if target not in ("candidate", "prod"):
        raise RegistryError(f"target must be 'candidate' or 'prod', got {target!r}")
    with registry_transaction(path) as reg:
        entry = getattr(reg, target)
        if entry is None:
            raise RegistryError(f"{path}: no {target} whose policy could be tightened")
        old = entry.policy
        new = old.model_copy(
            update={
                "entry_threshold": round(min(1.0, old.entry_threshold + delta), 10),
                "exit_threshold": round(max(0.0, old.exit_threshold - delta), 10),
            }
        )
        setattr(reg, target, entry.model_copy(update={"policy": new}))
        _log(
            reg,
            "tighten_policy",
            reason,
            [entry.id],
            target=target,
            delta=delta,
            entry_threshold=[old.entry_threshold, new.entry_threshold],
            exit_threshold=[old.exit_threshold, new.exit_threshold],
        )
    return reg
