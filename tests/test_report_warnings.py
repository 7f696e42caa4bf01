"""Contradictions shown in a box: each check fires on its case and stays quiet otherwise."""

from __future__ import annotations

from levibot.report_warnings import (
    canary_warnings,
    grade_warnings,
    release_warnings,
    replay_canary_warnings,
    warning_box,
)

CAL = {"lgbm ECE raw (test)": 0.012, "lgbm ECE calibrated (test)": 0.021,
       "deep ECE raw (test)": 0.03, "deep ECE calibrated (test)": 0.02}  # fmt: skip


def test_a_policy_that_wins_where_chosen_and_loses_on_test_is_flagged():
    policy = {"selection sharpe (calibration window)": 8.7, "test sharpe": -5.2}
    lines = release_warnings("candidate", CAL, policy)
    assert any("+8.70" in line and "-5.20" in line for line in lines)
    assert any("lgbm" in line and "0.012 -> 0.021" in line for line in lines)
    assert not any("deep" in line for line in lines)  # its calibration helped


def test_a_consistent_release_has_no_warning():
    calibration = {"lgbm ECE raw (test)": 0.03, "lgbm ECE calibrated (test)": 0.02}
    policy = {"selection sharpe (calibration window)": 1.2, "test sharpe": 0.8}
    assert release_warnings("prod", calibration, policy) == []


def test_a_canary_that_served_nothing_is_flagged_with_its_reason():
    reason = "candidate test Sharpe -2.23 < 0.0 (canary_min_sharpe)"
    closed = {"configured_fraction": 0.1, "served_fraction": 0.0, "closed_reasons": {reason: 192}}
    assert "canary_min_sharpe" in canary_warnings(closed)[0]
    assert canary_warnings({"configured_fraction": 0.1, "served_fraction": 0.09}) == []
    summary = {"served_by_variant": {"prod": 2304},
               "timeline": [{"canary_open": False, "canary_reason": "no candidate"}]}  # fmt: skip
    assert "no candidate" in replay_canary_warnings(summary, 0.1)[0]
    served = {"served_by_variant": {"prod": 90, "canary": 10}, "timeline": []}
    assert replay_canary_warnings(served, 0.1) == []


def test_grades_from_too_few_trades_are_flagged():
    lines = grade_warnings({"candidate": {"trade_count": 1}, "prod": {"trade_count": 33}})
    assert len(lines) == 1 and lines[0].startswith("candidate: 1 closed trades")


def test_the_box_escapes_and_is_empty_without_lines():
    assert warning_box([]) == ""
    assert "&lt;0" in warning_box(["Sharpe <0"]) and "Check before trusting" in warning_box(["x"])


def test_no_traffic_is_not_a_closed_canary():
    assert replay_canary_warnings({"served_by_variant": {}, "timeline": []}, 0.1) == []
