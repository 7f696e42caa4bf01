"""Every decision threshold of the system, as one typed model (data, not code).

The canary guards of the server, the limits of the T+48h checks, the promote / extend /
rollback margins and the drift limits all live here. The model is stored in
the canary policy file (field ``thresholds``), so the server's guards, ``marathon start``,
``marathon check``, the evaluation, the drift check and the reports read the same numbers,
and an operator changes them in one place (hot-reloaded by the server).

Defaults follow the go-live guide: ECE <= 0.05 target and <= 0.06 acceptable, tighten the
policy above 0.07; staleness <= 1800 s (2 bars of 15m); >= 20 shadow trades; promote on
Sharpe_canary >= Sharpe_prod + 0.2 and MaxDD_canary <= 0.9 x MaxDD_prod; roll back on
Sharpe_canary < Sharpe_prod - 0.3; PSI 0.2 warning / 0.3 critical.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
OK, WARNING, CRITICAL = "ok", "warning", "critical"


class _Strict(BaseModel):
    """Unknown keys and NaN/inf are errors: a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class EceLimits(_Strict):
    """Expected calibration error: the go-live guide's three levels."""

    target: Probability = 0.05  # the T+48h check passes outright
    acceptable: Probability = 0.06  # still passes (named marginal); pre-flight / check alert
    tighten: Probability = 0.07  # the canary closes: tighten the policy or recalibrate

    @model_validator(mode="after")
    def _ordered(self) -> EceLimits:
        if not self.target <= self.acceptable <= self.tighten:
            raise ValueError(
                f"need target <= acceptable <= tighten, got {self.target}, "
                f"{self.acceptable}, {self.tighten}"
            )
        return self


class GateRules(_Strict):
    """The T+48h decision: how many checks, trades and how much Sharpe / MaxDD it takes."""

    min_trades: int = Field(default=20, ge=0)  # shadow trades for the trades check
    marathon_hours: float = Field(default=48.0, gt=0)  # the length min_trades refers to
    promote_min_checks: int = Field(default=4, ge=0, le=5)  # the guide: 4/5
    rollback_max_checks: int = Field(default=2, ge=0, le=5)
    sharpe_margin: float = Field(default=0.2, ge=0)  # promote: canary >= prod + margin
    max_dd_ratio: float = Field(default=0.9, gt=0)  # promote: canary MaxDD <= ratio x prod
    sharpe_rollback: float = Field(default=0.3, ge=0)  # rollback: canary < prod - this

    @model_validator(mode="after")
    def _consistent(self) -> GateRules:
        if self.rollback_max_checks >= self.promote_min_checks:
            raise ValueError(
                f"rollback_max_checks ({self.rollback_max_checks}) must be below "
                f"promote_min_checks ({self.promote_min_checks})"
            )
        return self


class DriftThresholds(_Strict):
    """Per-feature drift limits; a value strictly above a threshold trips it."""

    psi_warning: float = Field(default=0.2, ge=0)
    psi_critical: float = Field(default=0.3, ge=0)
    ks_warning: float = Field(default=0.15, ge=0, le=1)
    ks_critical: float = Field(default=0.25, ge=0, le=1)
    min_rows: int = Field(default=48, ge=1)  # current rows (pooled over symbols) to judge
    critical_over_baseline: float = Field(default=1.5, ge=1)  # x the ordinary-window baseline

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        if not self.psi_warning <= self.psi_critical:
            raise ValueError("need 0 <= psi_warning <= psi_critical")
        if not self.ks_warning <= self.ks_critical:
            raise ValueError("need 0 <= ks_warning <= ks_critical <= 1")
        return self

    def level(
        self, psi_value: float, ks_value: float, *, psi_base: float = 0.0, ks_base: float = 0.0
    ) -> Literal["ok", "warning", "critical"]:
        """Status of one feature. `psi_base` / `ks_base` are the feature's baseline (the
        worst ordinary reference window): warning above max(fixed warning, baseline),
        critical above max(fixed critical, critical_over_baseline x baseline)."""
        psi_crit = max(self.psi_critical, self.critical_over_baseline * psi_base)
        ks_crit = min(1.0, max(self.ks_critical, self.critical_over_baseline * ks_base))
        if psi_value > psi_crit or ks_value > ks_crit:
            return CRITICAL
        if psi_value > max(self.psi_warning, psi_base) or ks_value > max(self.ks_warning, ks_base):
            return WARNING
        return OK


class Thresholds(_Strict):
    """All of them; see the module docstring for where each is read."""

    max_staleness_sec: float = Field(default=1800.0, gt=0)  # guard, pre-flight, check
    canary_min_sharpe: float = 0.0  # the canary closes below this candidate test Sharpe
    ece: EceLimits = Field(default_factory=EceLimits)
    gate: GateRules = Field(default_factory=GateRules)
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
