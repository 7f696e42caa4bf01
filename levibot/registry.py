"""The model registry: which release is prod, which is the candidate, and why.

This module alone owns ``model_registry.json`` and ``canary_policy.json`` beside it.
Every write is atomic (``write_json_atomic``) and done under a ``FileLock`` on
``<file>.lock`` that is held for the whole read-modify-write cycle, so concurrent
writers (threads or processes) never lose each other's updates. Readers need no lock:
``os.replace`` means they always see a whole file. Every operation appends an
``Event`` so the file is its own audit trail.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from filelock import FileLock, Timeout
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from levibot.io import CorruptFileError, read_json, sha256_file, write_json_atomic
from levibot.timeframe import timeframe_seconds

if TYPE_CHECKING:
    from levibot.settings import Settings

REGISTRY_FILE = "model_registry.json"
CANARY_POLICY_FILE = "canary_policy.json"
SCHEMA_VERSION = 1
LOCK_TIMEOUT_SEC = 60.0

ModelKind = Literal["lgbm", "deep"]
Role = Literal["prod", "candidate"]
Target = Literal["candidate", "prod"]


class RegistryError(ValueError):
    """The registry or canary policy cannot be read, written or changed as asked."""


def _to_utc(value: datetime) -> datetime:
    """Naive times are taken as UTC; aware ones are converted, so the file is all UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    """Unknown keys and NaN/inf are errors: a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --------------------------------------------------------------------------- schema


class ArtifactRef(_Strict):
    """A file plus its hash; `path` is relative to the registry file's folder or absolute."""

    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class CalibrationInfo(_Strict):
    method: Literal["isotonic", "platt", "none"]
    ece_raw: Probability
    ece_calibrated: Probability
    artifact: ArtifactRef | None = None


class PolicyInfo(_Strict):
    """Trading thresholds on p(up); a position opens above entry and closes below exit."""

    entry_threshold: Probability
    exit_threshold: Probability
    fee_bps: float = Field(ge=0)
    slippage_bps: float = Field(ge=0)

    @model_validator(mode="after")
    def _exit_below_entry(self) -> PolicyInfo:
        if not self.exit_threshold < self.entry_threshold:
            raise ValueError(
                f"exit_threshold ({self.exit_threshold}) must be below "
                f"entry_threshold ({self.entry_threshold})"
            )
        return self


class DataWindow(_Strict):
    """ISO timestamps of the train / calibration / test splits, in time order."""

    train_start: str
    train_end: str
    calib_start: str
    calib_end: str
    test_start: str
    test_end: str

    @model_validator(mode="after")
    def _ordered(self) -> DataWindow:
        times = {}
        for name in type(self).model_fields:
            text = getattr(self, name)
            try:
                times[name] = _to_utc(datetime.fromisoformat(text))
            except ValueError as exc:
                raise ValueError(f"{name} is not an ISO timestamp: {text!r}") from exc
        for earlier, later in pairwise(times):
            if times[later] < times[earlier]:
                raise ValueError(f"{later} ({getattr(self, later)}) is before {earlier}")
        return self


class Lineage(_Strict):
    pipeline_run: str
    reports: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(_Strict):
    """One trained model of a release: its files, inputs, calibration and test metrics."""

    kind: ModelKind
    artifacts: dict[str, ArtifactRef] = Field(min_length=1)
    features: list[str] = Field(min_length=1, description="model input columns, in order")
    calibration: CalibrationInfo
    metrics: dict[str, float] = Field(default_factory=dict)
    metrics_window: str = "test"

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[str]) -> list[str]:
        dupes = sorted({f for f in value if value.count(f) > 1})
        if dupes:
            raise ValueError(f"duplicate features: {dupes}")
        return value


class ModelEntry(_Strict):
    """A release: one or more models (keyed by kind) traded with one policy."""

    id: str = Field(pattern=r"^\S+$")
    models: dict[str, ModelSpec] = Field(min_length=1)
    horizon: int = Field(ge=1)
    timeframe: str
    symbols: list[str] = Field(min_length=1)
    policy: PolicyInfo
    data_window: DataWindow
    trained_at: UtcDatetime
    code_version: str
    lineage: Lineage

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        timeframe_seconds(value)
        return value

    @model_validator(mode="after")
    def _keys_match_kinds(self) -> ModelEntry:
        wrong = [key for key, spec in self.models.items() if key != spec.kind]
        if wrong:
            raise ValueError(f"models must be keyed by their kind; mismatched keys: {wrong}")
        return self

    def artifact_refs(self) -> Iterator[tuple[str, ArtifactRef]]:
        """Every file the release needs, named '<kind>/<artifact>' (calibrators included)."""
        for kind, spec in self.models.items():
            for name, ref in spec.artifacts.items():
                yield f"{kind}/{name}", ref
            if spec.calibration.artifact is not None:
                yield f"{kind}/calibration", spec.calibration.artifact


class ArchivedEntry(_Strict):
    """A release that left prod or candidate; `rolled_back` ones are never auto-restored."""

    entry: ModelEntry
    role: Role
    archived_at: UtcDatetime
    reason: str
    rolled_back: bool = False


class Event(_Strict):
    at: UtcDatetime
    action: str = Field(min_length=1)
    reason: str
    model_ids: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class Registry(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    prod: ModelEntry | None = None
    candidate: ModelEntry | None = None
    archive: list[ArchivedEntry] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_ids(self) -> Registry:
        if self.prod and self.candidate and self.prod.id == self.candidate.id:
            raise ValueError(f"prod and candidate have the same id {self.prod.id!r}")
        return self


# ------------------------------------------------------------------ paths and files


def registry_path(settings: Settings) -> Path:
    return Path(settings.registry_dir) / REGISTRY_FILE


def canary_policy_path(settings: Settings) -> Path:
    return Path(settings.registry_dir) / CANARY_POLICY_FILE


def format_errors(exc: ValidationError, limit: int = 5) -> str:
    """One line per field ('prod.policy: exit_threshold ...'), not pydantic's traceback."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


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


@contextmanager
def file_lock(path: Path | str, timeout: float = LOCK_TIMEOUT_SEC) -> Iterator[None]:
    """Exclusive lock on `<path>.lock` across threads and processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise RegistryError(f"{path}: still locked by another writer after {timeout}s") from exc
    try:
        yield
    finally:
        lock.release()


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


# ---------------------------------------------------------------------- operations


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


# ------------------------------------------------------------------- canary policy


def signal_confidence(p_up: float) -> float:
    """|p_up − 0.5|, in [0, 0.5]: the scale of `CanaryPolicy.min_confidence`."""
    return abs(float(p_up) - 0.5)


class CanaryGuards(_Strict):
    """Stop the canary when data is stale, calibration is poor or it loses money."""

    max_staleness_sec: float = Field(default=1800.0, gt=0)
    max_ece: Probability = 0.07
    min_sharpe: float = 0.0


class PromoteCriteria(_Strict):
    """What the canary must show against prod before its candidate may be promoted."""

    min_sharpe_delta: float = 0.2
    max_dd_ratio: float = Field(default=0.9, gt=0)
    min_trades: int = Field(default=20, ge=0)
    max_ece: Probability = 0.05


class CanaryPolicy(_Strict):
    """How much paper flow the candidate gets; confidence is `signal_confidence(p_up)`."""

    enabled: bool = False
    fraction: Probability = 0.10
    min_confidence: float = Field(default=0.0, ge=0.0, le=0.5)
    max_risk_per_trade: float = Field(default=0.02, gt=0.0, le=1.0)
    guards: CanaryGuards = Field(default_factory=CanaryGuards)
    promote_criteria: PromoteCriteria = Field(default_factory=PromoteCriteria)


def load_canary_policy(path: Path | str, *, missing_ok: bool = True) -> CanaryPolicy:
    """The stored policy, or the defaults when the file does not exist yet."""
    return _read(Path(path), CanaryPolicy, missing_ok)


def save_canary_policy(path: Path | str, policy: CanaryPolicy) -> CanaryPolicy:
    with file_lock(path):
        return _write(Path(path), policy)


def update_canary_policy(path: Path | str, **changes: Any) -> CanaryPolicy:
    """Change some fields under the lock; `guards={...}` merges into the current guards."""
    path = Path(path)
    with file_lock(path):
        data = load_canary_policy(path).model_dump()
        for key, value in changes.items():
            if isinstance(value, BaseModel):
                value = value.model_dump()
            if isinstance(data.get(key), dict) and isinstance(value, dict):
                value = {**data[key], **value}
            data[key] = value
        policy = _validate(CanaryPolicy, data, path)
        return _write(path, policy)


# ------------------------------------------------------------------------ summary


def _describe_entry(label: str, entry: ModelEntry | None) -> list[str]:
    if entry is None:
        return [f"{label:<10} (none)"]
    pol = entry.policy
    lines = [
        f"{label:<10} {entry.id}  {entry.timeframe} h={entry.horizon} "
        f"{','.join(entry.symbols)}  trained {entry.trained_at:%Y-%m-%d %H:%M}Z "
        f"code {entry.code_version}",
        f"{'':<10} policy entry={pol.entry_threshold:g} exit={pol.exit_threshold:g} "
        f"fee={pol.fee_bps:g}bps slippage={pol.slippage_bps:g}bps",
    ]
    for kind, spec in entry.models.items():
        cal = spec.calibration
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(spec.metrics.items()))
        lines.append(
            f"{'':<10} {kind}: {len(spec.features)} features, {cal.method} "
            f"ECE {cal.ece_raw:.3f}->{cal.ece_calibrated:.3f}; {spec.metrics_window}: {metrics}"
        )
    return lines


def describe(registry: Registry, *, last_events: int = 5) -> str:
    """A few human lines for `levibot registry show`."""
    lines = [f"registry schema v{registry.schema_version}"]
    lines += _describe_entry("prod:", registry.prod)
    lines += _describe_entry("candidate:", registry.candidate)
    lines.append(f"{'archive:':<10} {len(registry.archive)} entries")
    for item in registry.archive[-3:]:
        flag = " (rolled back)" if item.rolled_back else ""
        lines.append(
            f"{'':<10} {item.entry.id} was {item.role}{flag}, "
            f"{item.archived_at:%Y-%m-%d %H:%M}Z: {item.reason}"
        )
    lines.append(f"{'events:':<10} {len(registry.events)} total")
    for event in registry.events[-last_events:]:
        ids = ",".join(event.model_ids)
        lines.append(
            f"{'':<10} {event.at:%Y-%m-%d %H:%M:%S}Z {event.action} [{ids}] {event.reason}"
        )
    return "\n".join(lines)
