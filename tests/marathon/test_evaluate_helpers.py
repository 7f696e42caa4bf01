import numpy as np
import pandas as pd
import pytest

from levibot.marathon.decision import decide, rate
from levibot.marathon.evidence import block_bootstrap_sharpe_diff, positions_from_trades
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


def test_bootstrap_interval_contains_the_point_and_flags_a_clear_edge():
    rng = np.random.default_rng(0)
    base = pd.Series(rng.normal(0, 0.001, 400))
    point, low, high = block_bootstrap_sharpe_diff(base + 0.002, base, periods=35040)
    assert low <= point <= high and low > 0  # a constant extra return is a real edge
    shuffled = base.sample(frac=1, random_state=1).reset_index(drop=True)
    point, low, high = block_bootstrap_sharpe_diff(base, shuffled, periods=35040)
    assert low < 0 < high  # a reshuffle of the same returns is no edge
    assert np.isnan(block_bootstrap_sharpe_diff(base[:5], base[:5], periods=1)[1])
    assert block_bootstrap_sharpe_diff(base[:0], base[:0], periods=1)[0] == 0.0  # no bars


@pytest.mark.parametrize(
    ("metric", "value", "label"),
    [("sharpe", 2.5, "Excellent"), ("sharpe", 1.2, "Target"), ("sharpe", 0.4, "Below target"),
     ("max_drawdown", 0.04, "Excellent"), ("max_drawdown", 0.2, "Below target"),
     ("ece", 0.045, "Good"), ("win_rate", float("nan"), "n/a")],
)  # fmt: skip
def test_expected_results_ratings(metric, value, label):
    assert rate(metric, value) == label


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


def books(sharpe_c, sharpe_p, trades_c, dd_c=0.02, dd_p=0.03):
    return {
        "candidate": {"sharpe": sharpe_c, "max_drawdown": dd_c, "trade_count": trades_c},
        "prod": {"sharpe": sharpe_p, "max_drawdown": dd_p, "trade_count": 30},
    }


QUIET = {"kill_switch_activations": 0, "critical_drift_checks": 0, "api_errors": 0}


@pytest.mark.parametrize(
    ("passed", "metrics", "incidents", "staleness", "decision", "rule"),
    [
        (5, books(1.6, 1.2, 25), QUIET, 10, "PROMOTE", "all five checks passed"),
        (5, books(1.3, 1.2, 25), QUIET, 10, "EXTEND", "not met: Sharpe canary"),
        (4, books(1.6, 1.2, 25), QUIET, 10, "EXTEND", "4/5 checks passed"),
        (4, books(0.1, 1.2, 5), QUIET, 10, "EXTEND", "thin data"),  # noise may not roll back
        (4, books(0.1, 1.2, 25), QUIET, 10, "ROLLBACK", "Sharpe canary 0.10 < prod 1.20 - 0.3"),
        (2, books(1.6, 1.2, 25), QUIET, 10, "ROLLBACK", "only 2/5 checks passed"),
        (5, books(1.6, 1.2, 25), {**QUIET, "critical_drift_checks": 3}, 10, "ROLLBACK",
         "critical drift in 3"),
        (5, books(1.6, 1.2, 25), QUIET, 4000, "ROLLBACK", "staleness event"),
        (5, books(1.6, 1.2, 25, dd_c=0.05), QUIET, 10, "EXTEND", "not met: MaxDD"),
        (5, books(1.6, 1.2, 25), {**QUIET, "kill_switch_activations": 1}, 10, "EXTEND",
         "not met: no critical incidents"),
    ],
)  # fmt: skip
def test_decision_rules_and_the_rule_that_fired(
    passed, metrics, incidents, staleness, decision, rule
):
    got, fired = decide(
        passed=passed, metrics=metrics, incidents=incidents, max_staleness=staleness
    )
    assert got == decision
    assert any(rule in line for line in fired), fired


def test_decision_rules_read_their_limits_from_the_threshold_model():
    from levibot.thresholds import Thresholds

    stricter = Thresholds.model_validate(
        {"gate": {"sharpe_margin": 1.0, "min_trades": 40}, "max_staleness_sec": 5}
    )
    # the default margin (0.2) promotes this canary; a margin of 1.0 does not
    assert decide(passed=5, metrics=books(1.6, 1.2, 45), incidents=QUIET, max_staleness=1)[0] == (
        "PROMOTE"
    )
    got, fired = decide(
        passed=5, metrics=books(1.6, 1.2, 45), incidents=QUIET, max_staleness=1,
        thresholds=stricter,
    )  # fmt: skip
    assert got == "EXTEND" and any("prod 1.20 + 1.0" in line for line in fired)
    # 25 trades are thin under min_trades 40: the Sharpe rollback rule may not fire
    got, fired = decide(
        passed=4, metrics=books(0.1, 1.2, 25), incidents=QUIET, max_staleness=1,
        thresholds=stricter,
    )  # fmt: skip
    assert got == "EXTEND" and any("25 canary trades < 40" in line for line in fired)
    got, fired = decide(
        passed=5, metrics=books(1.6, 1.2, 45), incidents=QUIET, max_staleness=10,
        thresholds=stricter,
    )  # fmt: skip
    assert got == "ROLLBACK" and any("10 s > 5 s" in line for line in fired)
