"""The realised-ECE check's two error rates, measured over seeded marathons.

Outcomes are drawn so that P(y = 1) is exactly the stated probability (calibrated) or
that minus 0.07 (an ECE of 0.07), for 3 symbols x 192 bars with P(up) in [0.44, 0.56].
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from levibot.marathon.calibration_check import calibration_check, equal_mass_ece

RUNS = 120


def marathon(rng, *, shift=0.0, rho=0.0, horizon=1, bars=192, symbols=3):
    common = rng.standard_normal(bars + horizon)
    shocks = rho * common[:, None] + np.sqrt(1 - rho**2) * rng.standard_normal(
        (bars + horizon, symbols)
    )
    latent = sum(shocks[k : k + bars] for k in range(1, horizon + 1)) / np.sqrt(horizon)
    p = np.clip(0.5 + 0.02 * rng.standard_normal((bars, symbols)), 0.44, 0.56)
    y = (latent > norm.ppf(1 - np.clip(p - shift, 0.01, 0.99))).astype(float)
    return y.ravel(), p.ravel(), np.repeat(np.arange(bars), symbols)


def fail_rate(**kw) -> float:
    rng = np.random.default_rng(7)
    results = [
        calibration_check(*marathon(rng, **kw), target=0.05, acceptable=0.06, seed=i).status
        for i in range(RUNS)
    ]
    return results.count("fail") / RUNS


def test_independent_outcomes_calibrated_passes_and_miscalibrated_fails():
    assert fail_rate() <= 0.05  # measured 2-3.5 %
    assert fail_rate(shift=0.07) >= 0.75  # measured 80 % (N = 200)


def test_overlapping_correlated_outcomes_keep_false_failures_low():
    # 3-bar label overlap and 0.65 cross-symbol correlation, as in the synthetic market:
    # the effective sample is ~130 rows, so power at ECE 0.07 is lower (measured ~45 %)
    assert fail_rate(rho=0.65, horizon=3) <= 0.10


def test_too_few_rows_are_inconclusive_not_failed():
    rng = np.random.default_rng(0)
    y, p, t = marathon(rng, bars=20)
    check = calibration_check(y, p, t, target=0.05, acceptable=0.06)
    assert check.status == "inconclusive" and check.passed is None and "n/a" in check.detail


def test_equal_mass_ece_of_a_constant_shift_is_the_shift():
    p = np.linspace(0.45, 0.55, 1000)
    assert abs(equal_mass_ece(p - 0.07, p) - 0.07) < 1e-12
