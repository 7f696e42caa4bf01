import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve

from levibot.models.calibration import (
    Calibrator,
    choose_calibrator,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
    reliability_table,
)


def test_ece_hand_computed_case():
    # bins of width 1/15: 0.1 -> bin 1, 0.9 -> bin 13
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    # bin 1: |0.5 - 0.1| = 0.4 on 2 rows; bin 13: |1.0 - 0.9| = 0.1 on 2 rows
    assert expected_calibration_error(y, p) == pytest.approx((0.4 * 2 + 0.1 * 2) / 4)


def test_ece_matches_sklearn_calibration_curve_bins():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, 5000) < p**1.3).astype(int)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="uniform")
    table = reliability_table(y, p)
    filled = table[table["count"] > 0]
    np.testing.assert_allclose(filled["observed"], prob_true)
    np.testing.assert_allclose(filled["mean_predicted"], prob_pred)
    expected = np.sum(filled["count"] / len(p) * np.abs(prob_true - prob_pred))
    assert expected_calibration_error(y, p) == pytest.approx(expected)


def test_ece_edge_cases():
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))
    assert expected_calibration_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert expected_calibration_error(np.array([1, np.nan]), np.array([1.0, 0.3])) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(np.array([1]), np.array([1.2]))
    with pytest.raises(ValueError, match="length"):
        expected_calibration_error(np.array([1, 0]), np.array([0.2]))


def test_calibration_fixes_a_miscalibrated_model_out_of_sample():
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.2, 0.8, 20000)
    y = (rng.uniform(size=true_p.size) < true_p).astype(int)
    raw = 1 / (1 + np.exp(-3 * np.log(true_p / (1 - true_p))))  # overconfident
    fit_part, test_part = slice(0, 10000), slice(10000, None)
    for fit in (fit_isotonic, fit_platt):
        calibrator = fit(y[fit_part], raw[fit_part])
        before = expected_calibration_error(y[test_part], raw[test_part])
        after = expected_calibration_error(y[test_part], calibrator.transform(raw[test_part]))
        assert after < before / 3


def test_choice_prefers_platt_when_the_distortion_is_a_pure_sigmoid():
    rng = np.random.default_rng(2)
    true_p = rng.uniform(0.3, 0.7, 1500)
    y = (rng.uniform(size=true_p.size) < true_p).astype(int)
    raw = 1 / (1 + np.exp(-2 * np.log(true_p / (1 - true_p))))
    calibrator, table = choose_calibrator(y, raw)
    assert set(table.index) == {"isotonic", "platt", "none"}
    assert calibrator.method == table["ece_out_of_fold"].idxmin()
    assert calibrator.method == "platt"  # the right family wins out-of-fold with little data


def test_choice_needs_enough_rows_of_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        choose_calibrator(np.ones(100), np.full(100, 0.7))


def test_round_trip_through_json_payload():
    calibrator = fit_isotonic(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.3, 0.5, 0.7, 0.9]))
    again = Calibrator.from_dict(calibrator.to_dict())
    grid = np.linspace(0, 1, 11)
    np.testing.assert_allclose(again.transform(grid), calibrator.transform(grid))
    with pytest.raises(ValueError, match="invalid calibrator"):
        Calibrator.from_dict({"method": "magic"})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_calibrated_probabilities_stay_in_unit_interval(values):
    p = np.array(values)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    raw = rng.uniform(0, 1, 200)
    for calibrator in (fit_isotonic(y, raw), fit_platt(y, raw)):
        out = calibrator.transform(p)
        assert np.all((out >= 0) & (out <= 1))


def test_an_already_calibrated_model_keeps_its_raw_probabilities():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.4, 0.6, 600)
    y = (rng.uniform(size=p.size) < p).astype(int)  # p is the true probability
    calibrator, table = choose_calibrator(y, p)
    assert table["ece_out_of_fold"].idxmin() == "none"
    assert calibrator.method == "none"
    np.testing.assert_array_equal(calibrator.transform(p), p)


def test_a_platt_map_that_would_reverse_the_scores_is_never_chosen():
    """On weak signals the calibration window's labels can point the wrong way; a
    decreasing map would make the policy buy on low scores."""
    from levibot.models.calibration import RANK_PRESERVING, choose_calibrator

    rng = np.random.default_rng(0)
    p = rng.uniform(0.3, 0.7, 4000)
    y = (rng.uniform(size=4000) < 1 - p).astype(float)  # anti-informative on this window
    calibrator, table = choose_calibrator(y, p, methods=RANK_PRESERVING)
    assert calibrator.method == "none" and np.isinf(table.loc["platt", "ece_out_of_fold"])
