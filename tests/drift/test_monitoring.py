"""Which value each feature is monitored by, and the dead-feed runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from levibot.drift import check_drift, fit_reference, load_reference, save_reference
from levibot.drift.monitoring import (
    CHANGE,
    CHANGE_OF_CHANGE,
    LEVEL,
    choose_method,
    longest_run,
    monitored_columns,
    trailing_run,
)


def _frame(columns: dict[str, np.ndarray], start: str = "2026-01-01") -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    index = pd.date_range(start, periods=n, freq="15min", tz="UTC", name="timestamp")
    return pd.DataFrame(columns, index=index)


def test_method_follows_the_persistence_of_the_series() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=5000)
    walk = np.cumsum(noise)  # a level that persists: its changes are short-memoried
    smooth = np.cumsum(np.cumsum(noise))  # an integrated walk: its changes still persist
    assert choose_method([noise]) == LEVEL
    assert choose_method([walk]) == CHANGE
    assert choose_method([smooth]) == CHANGE_OF_CHANGE
    # pooled over symbols, and a constant series has nothing to decide on
    assert choose_method([walk[:2500], walk[2500:]]) == CHANGE
    assert choose_method([np.zeros(100)]) == LEVEL


def test_changes_are_taken_within_a_symbol() -> None:
    raw = np.array([[1.0, 2.0, 4.0, 7.0], [1.0, 2.0, 4.0, 7.0]])
    out = monitored_columns(raw, [CHANGE, CHANGE_OF_CHANGE])
    np.testing.assert_array_equal(out[0], [np.nan, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out[1], [np.nan, np.nan, 1.0, 1.0])
    # two symbols: the first change of the second symbol is NaN, not a jump across them
    index = pd.date_range("2026-01-01", periods=400, freq="15min", tz="UTC")
    rng = np.random.default_rng(1)
    frames = {
        "A": pd.DataFrame({"x": np.cumsum(rng.normal(size=400))}, index=index),
        "B": pd.DataFrame({"x": 1000 + np.cumsum(rng.normal(size=400))}, index=index),
    }
    stats = fit_reference(frames, ["x"])
    assert stats.methods == {"x": CHANGE} and stats.n["x"] == 2 * 399
    assert abs(stats.sorted_values["x"]).max() < 10  # no 1000-sized cross-symbol step


def test_runs() -> None:
    values = np.array([1.0, 1.0, 1.0, 2.0, np.nan, np.nan, 3.0, 3.0])
    assert longest_run(values) == (3, 2)
    assert trailing_run(values) == (2, 0)
    assert trailing_run(np.array([1.0, np.nan, np.nan])) == (0, 2)
    assert trailing_run(np.array([5.0, 5.0, 5.0])) == (3, 0)
    assert longest_run(np.array([])) == (0, 0) and trailing_run(np.array([])) == (0, 0)
    assert longest_run(np.array([np.nan, np.nan])) == (0, 2)


def test_a_frozen_feed_is_critical_within_dead_feed_bars(tmp_path) -> None:
    rng = np.random.default_rng(2)
    reference = fit_reference(_frame({"x": rng.normal(size=3000)}), window_bars=96)
    current = rng.normal(size=96)
    for stuck in (3, 4):
        frozen = current.copy()
        frozen[-stuck:] = frozen[-stuck - 1]  # the last stuck + 1 values are equal
        result = check_drift(reference, _frame({"x": frozen}, "2026-03-01"))
        assert result.status == "critical" and result.dead_features == ["x"]
    fine = check_drift(reference, _frame({"x": current}, "2026-03-01"))
    assert fine.dead_features == [] and fine.status == "ok"
    # the runs survive the file round trip
    loaded = load_reference(save_reference(tmp_path / "r.npz", reference))
    assert loaded.longest_repeat == reference.longest_repeat == {"x": 1}


def test_a_feed_that_often_repeats_needs_a_longer_run() -> None:
    rng = np.random.default_rng(3)
    stepwise = np.repeat(rng.normal(size=300), 8)  # a value held for 8 bars (e.g. funding)
    reference = fit_reference(_frame({"x": stepwise}))
    assert reference.longest_repeat["x"] == 8
    ordinary = _frame({"x": np.repeat(rng.normal(size=12), 8)}, "2026-03-01")
    assert check_drift(reference, ordinary).dead_features == []
    stuck = np.concatenate([np.repeat(rng.normal(size=10), 8), np.full(16, 0.5)])
    result = check_drift(reference, _frame({"x": stuck}, "2026-03-01"))
    assert result.features["x"].dead_feed == (
        "x unchanged for the last 16 bars (reference longest 8)"
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_reference_values_are_excluded(bad: float) -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=2000)
    values[::10] = bad
    reference = fit_reference(_frame({"x": values}))
    assert reference.n["x"] == 1800 and reference.nan_share["x"] == pytest.approx(0.1)
    assert np.isfinite(reference.sorted_values["x"]).all()
    result = check_drift(reference, _frame({"x": rng.normal(size=500)}, "2026-03-01"))
    assert result.status == "ok" and np.isfinite(result.features["x"].psi)
