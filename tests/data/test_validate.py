import numpy as np
import pandas as pd
import pytest

from levibot.data.validate import DataValidationError, find_gaps, validate_bars
from tests.conftest import make_bars


def validate(frame, **kwargs):
    return validate_bars(frame, timeframe="15m", source="test feed", **kwargs)


def test_clean_bars_pass_untouched(bars):
    result = validate(bars)
    pd.testing.assert_frame_equal(result.clean, bars)
    assert result.quarantine.empty and result.gaps.empty and result.bad_fraction == 0


def test_each_problem_is_quarantined_with_its_reason():
    frame = make_bars(50)
    frame.iloc[1, frame.columns.get_loc("close")] = np.nan
    frame.iloc[2, frame.columns.get_loc("volume")] = np.inf
    frame.iloc[3, frame.columns.get_loc("low")] = -1.0
    frame.iloc[4, frame.columns.get_loc("volume")] = -5.0
    frame.iloc[5, frame.columns.get_loc("high")] = frame.iloc[5]["low"] * 0.9
    frame.iloc[6, frame.columns.get_loc("low")] = frame.iloc[6]["high"] * 1.1
    frame.iloc[7, frame.columns.get_loc("funding_rate")] = np.nan  # aux NaN is allowed
    off_grid = frame.iloc[[8]].set_axis(frame.index[[8]] + pd.Timedelta(minutes=3))
    duplicate = frame.iloc[[9]]
    frame = pd.concat([frame, off_grid, duplicate])
    result = validate(frame, max_bad_fraction=0.5)
    reasons = result.quarantine["reason"].value_counts().to_dict()
    assert reasons == {
        "nan_or_inf": 2,
        "non_positive_price": 1,
        "negative_volume": 1,
        "high_below_open_close": 1,
        "low_above_open_close": 1,
        "off_grid_timestamp": 1,
        "duplicate_timestamp": 1,
    }
    assert len(result.clean) + len(result.quarantine) == len(frame)  # nothing dropped
    assert result.clean.index.is_unique and result.clean.index.is_monotonic_increasing


def test_gaps_are_reported():
    frame = make_bars(20).drop(make_bars(20).index[5:8])
    result = validate(frame)
    assert result.missing_bars == 3
    assert len(result.gaps) == 1
    assert find_gaps(frame.index[:1], "15m").empty


def test_unsorted_input_is_sorted_not_rejected():
    frame = make_bars(10)
    result = validate(frame.iloc[::-1])
    pd.testing.assert_frame_equal(result.clean, frame)


def test_too_many_bad_rows_fail_naming_source_and_rows():
    frame = make_bars(10)
    frame.loc[frame.index[:3], "close"] = np.nan
    with pytest.raises(DataValidationError, match=r"test feed: 3 of 10 rows") as info:
        validate(frame, max_bad_fraction=0.1)
    assert "first bad rows" in str(info.value) and "nan_or_inf" in str(info.value)


def test_empty_and_single_row():
    empty = make_bars(0)
    result = validate(empty)
    assert result.clean.empty and result.bad_fraction == 0
    single = validate(make_bars(1))
    assert len(single.clean) == 1 and single.gaps.empty


def test_missing_ohlcv_column_is_an_error():
    with pytest.raises(KeyError, match="volume"):
        validate(make_bars(5).drop(columns="volume"))
