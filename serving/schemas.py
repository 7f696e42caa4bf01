"""Response models: the OpenAPI docs at /docs show exactly what each endpoint returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Signal = Literal["ENTRY", "EXIT", "HOLD"]


class Prediction(BaseModel):
    symbol: str
    bar_time: str = Field(description="open time (UTC) of the bar the prediction is for")
    p_up: float
    p_down: float
    confidence: float = Field(description="|p_up - 0.5|, in [0, 0.5]")
    signal: Signal
    reason: str | None = Field(description="why HOLD was forced (kill_switch, stale_features, ...)")
    entry_threshold: float
    exit_threshold: float
    model_id: str
    model_kind: str
    variant: Literal["prod", "canary"]
    staleness_sec: float
    ece: float = Field(description="calibrated ECE of the model on its test window")
    request_id: str


class DeepPrediction(Prediction):
    mu: float = Field(description="expected forward log-return over the label horizon")
    epistemic: float = Field(description="std of p_up over MC-dropout samples")
    aleatoric: float = Field(description="predicted std of the forward return")


class EnsemblePrediction(DeepPrediction):
    weights: dict[str, float]
    components: dict[str, float]


class Staleness(BaseModel):
    worst: float | None = Field(description="None when a symbol has no features at all")
    per_symbol: dict[str, float | None]


class CanaryState(BaseModel):
    enabled: bool
    fraction: float
    open: bool
    reason: str


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong and how to fix it, in one line")


def errors(**described: str) -> dict[int | str, dict]:
    """OpenAPI `responses` for error statuses, e.g. errors(**{"404": "unknown symbol"})."""
    return {
        int(code): {"model": ErrorBody, "description": text} for code, text in described.items()
    }


HealthStatus = Literal["ok", "degraded", "unavailable"]


class KillSwitchInfo(BaseModel):
    enabled: bool
    reason: str | None = Field(description="why it was set, or why it is forced on")
    actor: str | None
    changed_at: str | None
    forced: bool = Field(description="on because its file is unreadable (fail safe)")


class Health(BaseModel):
    status: HealthStatus = Field(
        description="ok; degraded (serving, but a registry change or a state file was refused, "
        "see `problems`); unavailable (cannot predict: no prod model or no features)"
    )
    ok: bool = Field(description="status == 'ok'")
    problems: list[str] = Field(description="why the status is not ok (empty when ok)")
    prod_model_id: str | None
    candidate_model_id: str | None
    feature_staleness_sec: Staleness
    kill_switch: bool
    kill_switch_state: KillSwitchInfo
    canary: CanaryState
    registry_status: str
    uptime_sec: float
    clock: str = Field(description="live, or replay (a marathon replay drives the clock)")
    now: str


class KillSwitchState(BaseModel):
    kill_switch: bool
    changed_at: str


class CanarySettings(BaseModel):
    enabled: bool
    fraction: float


class ReloadResult(BaseModel):
    registry_status: str


class ModelInfo(BaseModel):
    model_id: str
    role: str
    trained_at: str
    policy: dict[str, float]
    calibration: dict[str, dict[str, float | str]]
    metrics: dict[str, dict[str, float]]


class ModelStatus(BaseModel):
    prod: ModelInfo | None
    candidate: ModelInfo | None
    registry_status: str
    ensemble_weights: dict[str, float]


class AutomationStatus(BaseModel):
    marathon_running: bool
    marathon_started_at: str | None
    elapsed_hours: float | None
    canary_fraction: float
    predictions_logged: dict[str, int]
    paper_trades_logged: dict[str, int]
    last_drift_status: str | None
    ensemble_weights: dict[str, float]
