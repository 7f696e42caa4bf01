"""The decision benchmark's bookkeeping (the runs themselves are `make bench`)."""

from __future__ import annotations

import pytest

from levibot.marathon import simulate as simulation
from levibot.marathon.simulate import SCENARIOS, format_table, simulate, summarise


def test_every_scenario_has_a_stated_target_and_known_releases():
    assert set(SCENARIOS) == {"equal", "better", "worse", "subtle", "vol_shock", "trend_flip",
                              "feature_freeze", "dead_feed"}  # fmt: skip
    for scenario in SCENARIOS.values():
        assert scenario.expected
        assert scenario.prod != scenario.candidate  # never a release against itself


def test_summary_counts_decisions_and_takes_medians_of_known_values():
    runs = [
        {"decision": "ROLLBACK", "kill_switch": True, "critical_drift": True,
         "min_detectable_effect": 0.01, "hours_needed": None, "log_loss_difference": 0.002,
         "sharpe_difference": -3.0, "detection_hours": 0.5,
         "rules": ["critical drift in 3 drift checks"], "loss_alarm": True,
         "loss_alarm_hours": 2.0},
        {"decision": "EXTEND", "kill_switch": False, "critical_drift": False,
         "min_detectable_effect": 0.03, "hours_needed": 40.0, "log_loss_difference": -0.001,
         "sharpe_difference": 1.0, "detection_hours": None,
         "rules": ["MaxDD canary - 0.9 x prod -0.01 [-0.02, +0.00] is above 0"]},
    ]  # fmt: skip
    row = summarise(runs, SCENARIOS["equal"])
    assert (row["runs"], row["PROMOTE"], row["EXTEND"], row["ROLLBACK"]) == (2, 0, 1, 1)
    assert row["kill_switch"] == 1 and row["median_min_detectable_effect"] == pytest.approx(0.02)
    assert row["median_hours_needed"] == 40.0 and row["median_detection_hours"] == 0.5
    assert row["rules"] == {"critical drift in # drift checks": 1,
                            "MaxDD canary - # x prod # [..] is above #": 1}  # fmt: skip
    report = {"scenarios": {"equal": row}, "edges": {}, "wall_seconds": 1.0, "workers": 2}
    table = format_table(report)
    assert "| equal | 2 | 0 | 1 | 1 | 1 | 1 | 1 | 0.0200 | 40 | 0.5 |" in table
    assert row["median_loss_alarm_hours"] == 2.0
    assert table.endswith("wall time 1 s on 2 worker(s)")


def test_bad_arguments_are_named(settings):
    with pytest.raises(ValueError, match=r"unknown scenarios \['calm'\]"):
        simulate(settings, runs=1, scenarios=["calm"])
    with pytest.raises(ValueError, match="--runs must be at least 1"):
        simulate(settings, runs=0)
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        simulate(settings, runs=1, workers=0)


def test_a_market_folder_is_named_by_its_edge(tmp_path, monkeypatch):
    """Releases trained at one edge are never reused for another."""
    default = simulation.market_dir(tmp_path, "strong")
    assert default.name == f"strong-edge{simulation.STRONG_EDGE:g}"
    monkeypatch.setitem(simulation.MARKET_EDGES, "strong", 12.5)
    assert simulation.market_dir(tmp_path, "strong").name == "strong-edge12.5" != default.name
    assert simulation.market_dir(tmp_path, "none").name == "none-edge0"
