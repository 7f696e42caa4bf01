"""The drift benchmark's bookkeeping: intervals, the real-data shock, the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from levibot.drift.benchmark import shocked, summarise, wilson


def test_wilson_interval_hand_values() -> None:
    # 1 of 20: centre (0.05 + 1.96^2/40) / (1 + 1.96^2/20) = 0.12251, half-width 0.11363
    assert wilson(1, 20) == pytest.approx((0.008882, 0.236136), abs=2e-6)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    low, high = wilson(50, 100)
    assert low == pytest.approx(1 - high) and high == pytest.approx(0.59617, abs=1e-5)


def test_shock_scales_every_move_from_the_onset_only() -> None:
    index = pd.date_range("2026-01-01", periods=6, freq="h", tz="UTC")
    close = np.array([100.0, 101.0, 100.0, 102.0, 101.0, 103.0])
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close}, index=index
    )
    out = shocked(bars, index[3], 5.0)
    pd.testing.assert_series_equal(out["close"].iloc[:3], bars["close"].iloc[:3])
    moves = np.diff(np.log(out["close"].to_numpy()))
    np.testing.assert_allclose(moves[2:], 5 * np.diff(np.log(close))[2:])
    assert (out["high"] >= out[["open", "close"]].max(axis=1)).all()
    assert (out["low"] <= out[["open", "close"]].min(axis=1)).all()


def test_summary_counts_marathons_and_detection_after_the_onset() -> None:
    outcomes = [
        {"critical_checks": 3, "checks": 48, "detection_hours": 1.0, "first_critical": ["a"]},
        {"critical_checks": 1, "checks": 48, "detection_hours": 5.0, "first_critical": ["b"]},
        {"critical_checks": 0, "checks": 48, "detection_hours": None, "first_critical": []},
    ]
    row = summarise("vol_shock", outcomes)
    assert row["critical_share"] == pytest.approx(2 / 3)
    assert row["detected_within_2h_share"] == pytest.approx(1 / 3)
    assert row["median_detection_hours"] == 3.0 and row["first_features"] == ["a", "b"]
    assert row["critical_checks_share"] == pytest.approx(4 / 144)
    assert summarise("none", outcomes)["detected_within_2h_share"] is None


def test_real_eurusd_is_rarely_critical_and_a_shock_on_it_is_caught() -> None:
    """On 2,000 real hourly EURUSD bars (the last 800 held out): ordinary hours are not
    called critical, and volatility x5 from a held-out hour on is caught within 48 h."""
    from pathlib import Path

    from levibot.calendar import calendar_named
    from levibot.drift.benchmark import real_market_rate, real_shock_detection

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "EURUSD_1h.csv"
    bars = pd.read_csv(fixture, index_col="timestamp").iloc[:2000]
    bars.index = pd.to_datetime(bars.index, utc=True)
    hour, fx = pd.Timedelta(hours=1), calendar_named("fx")
    rate = real_market_rate(bars, bar=hour, calendar=fx)
    assert rate["checks"] == 800 - 48
    assert rate["critical_share"] <= 0.05
    assert rate["methods"]["ret_1"] == "level" and rate["methods"]["ema_200"] != "level"
    shock = real_shock_detection(bars, bar=hour, calendar=fx, onsets=3)
    assert shock["onsets"] == 3 and shock["detected_share"] == 1.0
