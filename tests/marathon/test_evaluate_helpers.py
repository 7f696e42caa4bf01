import numpy as np
import pandas as pd
import pytest

from levibot.marathon.decision import Check, decide, rate
from levibot.marathon.evidence import paired_book_intervals, positions_from_trades
from levibot.online.clock import (
    CLOCK_ENV,
    clock_for,
    mark_replay_workspace,
    set_replay_time,
    system_clock,
)
from levibot.state.paths import Paths

INDEX = pd.date_range("2026-01-01", periods=8, freq="15min", tz="UTC")


def test_positions_rebuilt_from_trades_and_open_positions():
    trades = pd.DataFrame({"entry_time": [INDEX[1]], "exit_time": [INDEX[3]]})
    open_positions = {"BTCUSDT": {"entry_time": INDEX[6].isoformat()}}
    held = positions_from_trades(trades, open_positions, INDEX)
    assert held.tolist() == [0, 1, 1, 0, 0, 0, 1, 1]


def test_book_intervals_flag_a_clear_edge_and_not_a_reshuffle():
    rng = np.random.default_rng(0)
    base = pd.Series(rng.normal(0, 0.001, 400))

    def sharpe(a, b):
        return paired_book_intervals(a, b, periods=35040, dd_ratio=0.9, block=8)[
            "sharpe_difference"
        ]

    edge = sharpe(base + 0.002, base)
    assert edge["ci_low"] <= edge["point"] <= edge["ci_high"] and edge["ci_low"] > 0
    shuffled = base.sample(frac=1, random_state=1).reset_index(drop=True)
    same = sharpe(base, shuffled)
    assert same["ci_low"] < 0 < same["ci_high"]
    assert np.isnan(sharpe(base[:5], base[:5])["ci_low"])  # too few bars: no interval
    assert np.isnan(sharpe(base[:0], base[:0])["point"])  # no bars: nothing, not 0


@pytest.mark.parametrize(
    ("metric", "value", "label"),
    [
        ("sharpe", 2.5, "Excellent"),
        ("sharpe", 1.3, "Target"),
        ("sharpe", 1.2, "Below target"),
        ("sharpe", 1.6, "Good"),
        ("max_drawdown", 0.04, "Excellent"),
        ("max_drawdown", 0.12, "Good"),
        ("max_drawdown", 0.2, "Below target"),
        ("ece", 0.045, "Good"),
        ("ece", 0.055, "Target"),
        ("win_rate", float("nan"), "n/a"),
        ("avg_trade_return", 0.02, "Excellent"),
        ("avg_trade_return", -0.001, "Below target"),
    ],
)
def test_expected_results_ratings(metric, value, label):
    assert rate(metric, value) == label


def test_trade_statistics_on_too_few_trades_are_not_rated():
    assert rate("win_rate", 1.0, trades=1, min_trades=20) == "n/a (1 trades)"
    assert rate("sharpe", 2.5, trades=1, min_trades=20) == "Excellent"  # per-bar, not per trade


def test_replay_clock_needs_both_the_env_and_the_workspace_marker(settings):
    paths = Paths.of(settings)
    assert clock_for(paths, {})[1] == "live"
    with pytest.raises(RuntimeError, match="no replay marker"):
        clock_for(paths, {CLOCK_ENV: "replay"})
    mark_replay_workspace(paths)
    with pytest.raises(RuntimeError, match="clock file"):
        clock_for(paths, {CLOCK_ENV: "replay"})
    set_replay_time(paths, pd.Timestamp("2026-01-02 03:04", tz="UTC"))
    clock, mode = clock_for(paths, {CLOCK_ENV: "replay"})
    assert mode == "replay" and clock() == pd.Timestamp("2026-01-02 03:04", tz="UTC")
    set_replay_time(paths, pd.Timestamp("2026-01-02 03:19", tz="UTC"))
    assert clock() == pd.Timestamp("2026-01-02 03:19", tz="UTC")
    assert clock_for(paths, {})[0] is system_clock  # the marker alone changes nothing


def checks(*failed: str, inconclusive: tuple[str, ...] = ()) -> list[Check]:
    names = ("ece", "staleness", "drift", "shadow_data", "api_healthy")
    return [
        Check(
            n, "inconclusive" if n in inconclusive else "fail" if n in failed else "pass", None, n
        )
        for n in names
    ]


def paired(difference: float, low: float, high: float) -> dict:
    return {
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "p_value": 0.01,
        "better": high < 0,
        "worse": low > 0,
        "bars": 192,
        "min_detectable_effect": 0.004,
        "hours_needed": 30.0,
    }


def evidence(loss=(-0.01, -0.02, -0.005), sharpe=(20.0, 5.0, 35.0), dd=(-0.01, -0.02, -0.002)):
    return {
        "log_loss": paired(*loss),
        "brier": paired(*loss),
        "sharpe_difference": dict(zip(("point", "ci_low", "ci_high"), sharpe, strict=True)),
        "drawdown_excess": dict(zip(("point", "ci_low", "ci_high"), dd, strict=True)),
    }


QUIET = {
    "kill_switch_activations": 0,
    "critical_drift_checks": 0,
    "staleness_events": 0,
    "worst_staleness": 5.0,
    "api_errors": 0,
}
UNSURE = ((-0.001, -0.004, 0.002), (2.0, -20.0, 24.0), (0.0, -0.01, 0.01))


@pytest.mark.parametrize(
    ("check_list", "proof", "incidents", "decision", "rule"),
    [
        (checks(), evidence(), QUIET, "PROMOTE", "the candidate forecasts better"),
        (checks("shadow_data"), evidence(), QUIET, "PROMOTE", "4/5 checks passed"),
        (checks("ece"), evidence(), QUIET, "EXTEND", "critical checks not passed: ece (fail)"),
        (checks(inconclusive=("ece",)), evidence(), QUIET, "EXTEND", "ece (inconclusive)"),
        (checks(), evidence(*UNSURE), QUIET, "EXTEND", "about 30 more hours"),
        (checks(), evidence(sharpe=(3.0, 0.1, 6.0)), QUIET, "EXTEND", "does not clear +0.2"),
        (checks(), evidence(dd=(0.004, -0.01, 0.02)), QUIET, "EXTEND", "is above 0"),
        # the drawdown is a guard on the point: a wide interval does not block
        (checks(), evidence(dd=(-0.01, -0.05, 0.03)), QUIET, "PROMOTE", "at or below 0"),
        (checks(), evidence(dd=(float("nan"),) * 3), QUIET, "EXTEND", "no MaxDD comparison"),
        (
            checks(),
            evidence(),
            {**QUIET, "kill_switch_activations": 1},
            "EXTEND",
            "1 kill-switch activations",
        ),
        (
            checks("ece", "drift", "staleness"),
            evidence(),
            QUIET,
            "ROLLBACK",
            "3 of 5 checks failed",
        ),
        (
            checks(inconclusive=("ece", "drift", "staleness")),
            evidence(*UNSURE),
            QUIET,
            "EXTEND",
            "critical checks not passed",
        ),  # no data is no evidence of a problem
        (
            checks(),
            evidence(),
            {**QUIET, "critical_drift_checks": 3},
            "ROLLBACK",
            "critical drift in 3",
        ),
        (
            checks(),
            evidence(),
            {**QUIET, "staleness_events": 2, "worst_staleness": 4000.0},
            "ROLLBACK",
            "staleness reached 4000 s",
        ),
        (
            checks(),
            evidence(loss=(0.01, 0.004, 0.016)),
            QUIET,
            "ROLLBACK",
            "forecasts significantly worse",
        ),
        (
            checks(),
            evidence(loss=UNSURE[0], sharpe=(-30.0, -50.0, -10.0)),
            QUIET,
            "ROLLBACK",
            "entirely below -0.3",
        ),
    ],
)
def test_decision_rules_and_the_rule_that_fired(check_list, proof, incidents, decision, rule):
    got, fired = decide(checks=check_list, evidence=proof, incidents=incidents)
    assert got == decision, fired
    assert any(rule in line for line in fired), fired
    assert not any("not met" in line for line in fired)  # no double negatives


def test_decision_rules_read_their_limits_from_the_threshold_model():
    from levibot.thresholds import Thresholds

    stricter = Thresholds.model_validate({"gate": {"sharpe_margin": 10.0, "promote_min_checks": 5}})
    assert decide(checks=checks(), evidence=evidence(), incidents=QUIET)[0] == "PROMOTE"
    got, fired = decide(checks=checks(), evidence=evidence(), incidents=QUIET, thresholds=stricter)
    assert got == "EXTEND" and any("does not clear +10.0" in line for line in fired)
    got, fired = decide(
        checks=checks("shadow_data"),
        evidence=evidence(sharpe=(40, 20, 60)),
        incidents=QUIET,
        thresholds=stricter,
    )
    assert got == "EXTEND" and any("4/5 checks passed (need 5)" in line for line in fired)


def _report(status: str, **features: str) -> dict:
    return {"status": status, "features": {f: {"status": v} for f, v in features.items()}}


def test_the_drift_check_fails_on_critical_evidence_not_on_warnings():
    from levibot.marathon.decision import drift_check

    calm = [_report("warning", ret_1="warning", atr_14="warning", ema_20="ok")]
    check = drift_check(calm)
    assert check.status == "pass" and check.value == 0
    assert "above their warning limit: atr_14, ret_1" in check.detail
    # one feature beyond its critical limit (a warning for the kill switch) fails it
    one = drift_check([*calm, _report("warning", ret_1="critical", atr_14="ok")])
    assert one.status == "fail" and one.value == 1 and "critical limit: ret_1" in one.detail
    # a critical check earlier in the marathon fails it even when the last one is calm
    earlier = drift_check([_report("critical", a="critical", b="critical"), *calm])
    assert earlier.status == "fail" and "1 critical" in earlier.detail
    # the last check *with enough rows* is judged; none at all is inconclusive
    late = drift_check([*calm, {"status": "insufficient_data", "features": {}}])
    assert late.status == "pass" and late.detail.startswith("1 drift checks")
    assert drift_check([]).status == "inconclusive"
    assert drift_check([{"status": "insufficient_data"}]).status == "inconclusive"
