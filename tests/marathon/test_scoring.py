"""The paired Diebold-Mariano test: its size on autocorrelated nulls, its power, and how
the paired frame treats bad shadow logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from levibot.marathon.scoring import diebold_mariano, paired_frame, paired_scores

BARS = 192  # a 48 h marathon of 15 m bars


def ma2(rng, n):  # what a 3-bar label overlap does to a per-bar loss difference
    return np.convolve(rng.standard_normal(n + 2), [1, 1, 1], "valid")


def ar1(rng, n, phi=0.3):
    return lfilter([1], [1, -phi], ma2(rng, n + 50))[50:]


@pytest.mark.parametrize("noise", [ma2, ar1])
def test_size_on_autocorrelated_nulls_is_near_five_percent(noise):
    rng = np.random.default_rng(0)
    rejected = [diebold_mariano(noise(rng, BARS), horizon=3).p_value < 0.05 for _ in range(800)]
    # measured: 5.9% (MA(2)) and 5.6% (AR(0.3) x MA(2)); a plain normal reference gives 9-10%
    assert 0.03 <= np.mean(rejected) <= 0.08


def test_interval_covers_the_true_mean_and_power_grows_with_the_effect():
    rng = np.random.default_rng(1)
    covered, detected = [], []
    for _ in range(400):
        test = diebold_mariano(ma2(rng, BARS) + 0.6, horizon=3)
        covered.append(test.ci_low <= 0.6 <= test.ci_high)
        detected.append(test.p_value < 0.05)
    assert np.mean(covered) >= 0.92
    assert np.mean(detected) >= 0.6


def test_minimum_detectable_effect_and_hours_needed():
    rng = np.random.default_rng(2)
    test = diebold_mariano(ma2(rng, BARS) + 0.05, horizon=3, bar_hours=0.25)
    assert test.p_value > 0.05 and test.hours_needed is not None
    # the MDE shrinks as 1/sqrt(T): the observed effect reaches it after T (MDE/effect)^2 bars
    needed_bars = BARS * (test.min_detectable_effect / abs(test.difference)) ** 2
    assert test.hours_needed == pytest.approx((needed_bars - BARS) * 0.25)
    clear = diebold_mariano(ma2(rng, BARS) + 3.0, horizon=3)
    assert clear.worse and clear.hours_needed is None


def test_too_few_paired_bars_give_no_interval_not_a_fake_one():
    test = diebold_mariano(np.array([0.1, -0.2, 0.3]), horizon=3)
    assert np.isnan(test.ci_low) and not test.better and not test.worse
    constant = diebold_mariano(np.zeros(100), horizon=3)
    assert constant.p_value == 1.0 and not constant.better


def _log(rows):
    return pd.DataFrame(
        rows, columns=["endpoint", "symbol", "bar_time", "role", "model_id", "p_up"]
    )


def test_paired_frame_scores_both_releases_and_names_bad_input():
    index = pd.date_range("2026-01-01", periods=60, freq="15min", tz="UTC")
    close = pd.Series(
        100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, 60))), index=index
    )
    rows = []
    for t in index:
        rows.append(("/ml/predict", "BTCUSDT", t, "prod", "p1", 0.5))
        rows.append(("/ml/predict", "BTCUSDT", t, "candidate", "c1", 0.55))
    rows.append(("/ml/predict", "BTCUSDT", index[5], "candidate", "c2", float("nan")))
    frame, problems = paired_frame(_log(rows), {"BTCUSDT": close}, horizon=3)
    assert len(frame) == 57  # the last 3 bars have no outcome yet
    assert any("changed mid-marathon" in p for p in problems)
    assert any("no finite p_up" in p for p in problems)
    assert any("no realised outcome yet" in p for p in problems)
    up = (close.shift(-3) > close).reindex(frame["bar_time"]).to_numpy()
    assert (frame["y"].to_numpy() == up).all()
    scores = paired_scores(frame, horizon=3, bar_hours=0.25)
    assert scores["brier"].candidate == pytest.approx(np.mean((0.55 - up) ** 2))


def test_paired_frame_with_nothing_logged_says_so():
    frame, problems = paired_frame(_log([]), {}, horizon=3)
    assert frame.empty and problems == ["no predictions were logged in the marathon window"]
    only_prod = _log(
        [("/ml/predict", "BTCUSDT", pd.Timestamp("2026-01-01", tz="UTC"), "prod", "p1", 0.5)]
    )
    frame, problems = paired_frame(only_prod, {}, horizon=3)
    assert frame.empty and any("both releases" in p for p in problems)
    assert np.isnan(paired_scores(frame, horizon=3, bar_hours=0.25)["log_loss"].ci_low)
