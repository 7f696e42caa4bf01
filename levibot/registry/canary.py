"""The canary policy file: how much traffic the candidate gets, and every threshold.

The canary policy file (`Paths.canary_policy`) sits beside the registry and is
hot-reloaded by the server. It holds the candidate's traffic `fraction`, the
`min_confidence` below which a signal is forced to HOLD, and the whole
`levibot.thresholds.Thresholds` model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from levibot.io import file_lock
from levibot.registry.schema import _Strict
from levibot.registry.store import _read, _validate, _write
from levibot.thresholds import Probability, Thresholds


def signal_confidence(p_up: float) -> float:
    """|p_up − 0.5|, in [0, 0.5]: the scale of `CanaryPolicy.min_confidence`."""
    return abs(float(p_up) - 0.5)


MARATHON_FRACTION = 0.10  # the go-live guide: the candidate gets 10% of the traffic


class CanaryPolicy(_Strict):
    """How much paper flow the candidate gets; confidence is `signal_confidence(p_up)`."""

    enabled: bool = False
    fraction: Probability = MARATHON_FRACTION
    min_confidence: float = Field(default=0.0, ge=0.0, le=0.5)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="before")
    @classmethod
    def _migrate_v0(cls, data: Any) -> Any:
        """Files written before the threshold model: `guards` moves into `thresholds`;
        `promote_criteria` and `max_risk_per_trade` were never read and are dropped."""
        if not isinstance(data, dict) or not {
            "guards",
            "promote_criteria",
            "max_risk_per_trade",
        } & set(data):
            return data
        data = dict(data)
        data.pop("promote_criteria", None)
        data.pop("max_risk_per_trade", None)
        guards = data.pop("guards", None) or {}
        limits = dict(data.get("thresholds") or {})
        if "max_staleness_sec" in guards:
            limits["max_staleness_sec"] = guards["max_staleness_sec"]
        if "min_sharpe" in guards:
            limits["canary_min_sharpe"] = guards["min_sharpe"]
        if "max_ece" in guards:  # the old single limit: the new ones may not exceed it
            cap = guards["max_ece"]
            ece = {"target": 0.05, "acceptable": 0.06, **(limits.get("ece") or {})}
            limits["ece"] = {
                "target": min(ece["target"], cap), "acceptable": min(ece["acceptable"], cap),
                "tighten": cap,
            }  # fmt: skip
        data["thresholds"] = limits
        return data


def _merge(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `current`, merging nested dicts (so one threshold can change)."""
    out = dict(current)
    for key, value in changes.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            value = _merge(out[key], value)
        out[key] = value
    return out


def load_canary_policy(path: Path | str, *, missing_ok: bool = True) -> CanaryPolicy:
    """The stored policy, or the defaults when the file does not exist yet."""
    return _read(Path(path), CanaryPolicy, missing_ok)


def save_canary_policy(path: Path | str, policy: CanaryPolicy) -> CanaryPolicy:
    with file_lock(path):
        return _write(Path(path), policy)


def update_canary_policy(path: Path | str, **changes: Any) -> CanaryPolicy:
    """Change some fields under the lock; nested dicts (`thresholds={...}`) are merged."""
    path = Path(path)
    with file_lock(path):
        data = _merge(load_canary_policy(path).model_dump(), changes)
        policy = _validate(CanaryPolicy, data, path)
        return _write(path, policy)
