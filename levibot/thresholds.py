"""Every decision threshold of the system, as one typed model (data, not code).

The canary guards of the server, the limits of the T+48h checks, the promote / extend /
rollback margins and the drift limits all live here. The model is stored in
the canary policy file (field ``thresholds``), so the server's guards, ``marathon start``,
``marathon check``, the evaluation, the drift check and the reports read the same numbers,
and an operator changes them in one place (hot-reloaded by the server).

Defaults follow the go-live guide: ECE <= 0.05 target and <= 0.06 acceptable, tighten the
policy above 0.07; staleness <= 1800 s (2 bars of 15m); >= 20 shadow trades; promote on
Sharpe_canary >= Sharpe_prod + 0.2 and MaxDD_canary <= 0.9 x MaxDD_prod; roll back on
Sharpe_canary < Sharpe_prod - 0.3; PSI 0.2 warning / 0.3 critical as floors under
each feature's own noise-calibrated drift limits (`DriftThresholds`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple

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


class DriftLimits(NamedTuple):
    """One feature's effective thresholds in one check (a value strictly above trips).
    The scale ratios are one-sided: a volatility burst; a feed that goes quiet is the
    dead-feed check's."""

    psi_warning: float
    psi_critical: float
    ks_warning: float
    ks_critical: float
    scale_high: float | None = None  # the newest bars' scale over the window's
    level_scale_high: float | None = None  # the window's scale over the reference's


LEGACY_DRIFT_KEYS = ("critical_over_baseline",)  # older policy files; no longer meaningful
Quantile = Callable[[float], float]  # tail probability -> the noise's (1 - tail) quantile


class DriftThresholds(_Strict):
    """Drift limits, calibrated to a false-alarm rate rather than fixed numbers.

    Each feature's statistics are compared with their own noise: the distribution of
    the same statistic over ordinary windows of the reference (see `levibot.drift`).
    A limit is that noise's quantile at a tail probability: critical uses a Bonferroni
    share of `false_alarm_rate` (the target share of no-drift marathons with any
    critical check) split over the features, the independent windows of a marathon and
    the statistics; warning uses `warning_rate` per check and feature. The guide's
    fixed levels are floors (never *more* sensitive than PSI 0.2 / 0.3), the caps keep
    a noisy feature from going blind. The check as a whole is critical on distribution
    evidence only when `min_critical_features` features are beyond their critical limits
    at once (one alone is a warning: a bursty feed such as news has days no ordinary
    window foresaw); a dead, stalled or missing feed is critical by itself.
    """

    psi_warning: float = Field(default=0.2, ge=0)  # floors: the go-live guide's levels
    psi_critical: float = Field(default=0.3, ge=0)
    ks_warning: float = Field(default=0.15, ge=0, le=1)
    ks_critical: float = Field(default=0.25, ge=0, le=1)
    psi_cap: float = Field(default=4.0, gt=0)  # never blinder than this
    ks_cap: float = Field(default=0.7, gt=0, le=1)
    scale_floor: float = Field(default=1.5, gt=1)  # a scale change smaller is never critical
    scale_cap: float = Field(default=10.0, gt=1)
    false_alarm_rate: Probability = 0.04  # no-drift marathons with a critical feature check
    marathon_hours: float = Field(default=48.0, gt=0)  # what the rate refers to
    short_window_bars: int = Field(default=8, ge=4)  # the fast scale check's window
    warning_rate: Probability = 0.05  # per check and feature
    # tails of the ordinary windows' log statistics (Student t df; large = normal): 12
    # measured 0% (0-4%) of no-drift marathons critical, vol_shock 87% caught; a normal
    # tail 16% (10-24%) and 99% (N = 100 each, seeds not used to choose it)
    noise_tail_df: float = Field(default=12.0, gt=2)
    min_critical_features: int = Field(default=2, ge=1)  # distribution evidence needed at once
    min_rows: int = Field(default=48, ge=1)  # current rows (pooled over symbols) to judge
    dead_feed_bars: int = Field(default=4, ge=2)  # a feed unchanged / missing this long
    performance_false_alarm_rate: Probability = 0.01  # the loss monitor, per marathon
    performance_shift: float = Field(default=0.5, gt=0)  # loss shift it is tuned to, in sd
    # what a loss-monitor alarm does: "warning" until its rate on no-drift marathons is
    # acceptable (measured 40% of equal-release marathons with critical: the test-window
    # level understates the loss a release has on a new market), "critical" kills
    performance_severity: Literal["warning", "critical"] = "warning"

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy(cls, data: object) -> object:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in LEGACY_DRIFT_KEYS}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        if not self.psi_warning <= self.psi_critical <= self.psi_cap:
            raise ValueError("need 0 <= psi_warning <= psi_critical <= psi_cap")
        if not self.ks_warning <= self.ks_critical <= self.ks_cap:
            raise ValueError("need 0 <= ks_warning <= ks_critical <= ks_cap <= 1")
        if not self.scale_floor <= self.scale_cap:
            raise ValueError("need 1 < scale_floor <= scale_cap")
        return self

    def critical_tail(self, features: int, window_hours: float, statistics: int) -> float:
        """The tail probability of one critical statistic: half the marathon budget for
        the current-window statistics and half for the short scale check, each split
        over the features, the marathon's independent windows and the statistics."""
        windows = self.marathon_hours / window_hours + 1
        return self.false_alarm_rate / 2 / (max(features, 1) * windows * statistics)

    def limits(
        self,
        *,
        psi_at: Quantile,
        ks_at: Quantile,
        features: int,
        window_hours: float,
        scale_at: Quantile | None = None,
        level_scale_at: Quantile | None = None,
        short_hours: float = 2.0,
    ) -> DriftLimits:
        """Effective thresholds of a feature from its noise quantiles (each maps a tail
        probability to the statistic's (1 - tail) quantile under no drift)."""
        crit = self.critical_tail(features, window_hours, 3)
        warn = self.warning_rate / 2
        psi_crit = min(self.psi_cap, max(self.psi_critical, psi_at(crit)))
        ks_crit = min(self.ks_cap, max(self.ks_critical, ks_at(crit)))

        def scale_limit(at: Quantile | None, tail: float) -> float | None:
            return None if at is None else self.clamp_scale(at(tail))

        return DriftLimits(
            psi_warning=min(psi_crit, max(self.psi_warning, psi_at(warn))),
            psi_critical=psi_crit,
            ks_warning=min(ks_crit, max(self.ks_warning, ks_at(warn))),
            ks_critical=ks_crit,
            # the short family: each feature's scale and their joint mean (one more)
            scale_high=scale_limit(scale_at, self.critical_tail(features + 1, short_hours, 1)),
            level_scale_high=scale_limit(level_scale_at, crit),
        )

    def clamp_scale(self, limit: float) -> float:
        """A scale-ratio limit between the floor and the cap."""
        return min(self.scale_cap, max(self.scale_floor, limit))

    @staticmethod
    def level(
        psi_value: float,
        ks_value: float,
        limits: DriftLimits,
        scale: float | None = None,
        level_scale: float | None = None,
    ) -> str:
        """Status of one feature against its effective limits."""
        if psi_value > limits.psi_critical or ks_value > limits.ks_critical:
            return CRITICAL
        for value, limit in ((scale, limits.scale_high), (level_scale, limits.level_scale_high)):
            if value is not None and limit is not None and value > limit:
                return CRITICAL
        if psi_value > limits.psi_warning or ks_value > limits.ks_warning:
            return WARNING
        return OK


class Thresholds(_Strict):
    """All of them; see the module docstring for where each is read."""

    max_staleness_sec: float = Field(default=1800.0, gt=0)  # guard, pre-flight, check
    canary_min_sharpe: float = 0.0  # the canary closes below this candidate test Sharpe
    ece: EceLimits = Field(default_factory=EceLimits)
    gate: GateRules = Field(default_factory=GateRules)
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
