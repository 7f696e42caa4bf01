"""The registry's schema: releases (prod, candidate), their models, policy and lineage.

Unknown keys and NaN/inf are validation errors everywhere: a typo in a hand-edited file
must not silently become a default.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from levibot.io import UtcDatetime, to_utc_datetime
from levibot.thresholds import Probability
from levibot.timeframe import timeframe_seconds

SCHEMA_VERSION = 1

ModelKind = Literal["lgbm", "deep"]
Role = Literal["prod", "candidate"]
Target = Literal["candidate", "prod"]


class RegistryError(ValueError):
    """The registry or canary policy cannot be read, written or changed as asked."""


class _Strict(BaseModel):
    """Unknown keys and NaN/inf are errors: a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
                times[name] = to_utc_datetime(datetime.fromisoformat(text))
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
    trades_per_48h: float | None = Field(
        default=None, ge=0, description="expected closed trades in a 48 h marathon (test window)"
    )
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
