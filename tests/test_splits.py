import pandas as pd
import pytest

from levibot.splits import make_time_split, walk_forward

START = pd.Timestamp("2026-01-01", tz="UTC")
END = START + pd.Timedelta(days=10)
BAR = pd.Timedelta(minutes=15)


@pytest.mark.parametrize("horizon", [1, 3, 12])
def test_windows_are_ordered_with_purge_gaps_of_at_least_the_horizon(horizon):
    split = make_time_split(START, END, timeframe="15m", horizon=horizon)
    train, calib, test = split.windows
    assert train.start == START and test.end == END
    assert calib.start - train.end >= horizon * BAR
    assert test.start - calib.end >= horizon * BAR
    # a label of the last training bar ends before the calibration window starts
    last_train_bar = train.end - BAR
    assert last_train_bar + horizon * BAR < calib.start + BAR


def test_windows_label_rows_and_leave_gaps_unlabelled():
    split = make_time_split(START, END, timeframe="15m", horizon=3)
    index = pd.date_range(START, END, freq="15min", inclusive="left")
    labels = split.label(index)
    assert set(labels.unique()) == {"train", "calibration", "test", ""}
    assert (labels == "").sum() == 6  # two purge gaps of 3 bars
    assert labels[labels == "train"].index.max() < labels[labels == "calibration"].index.min()


def test_holdout_is_excluded_behind_its_own_purge():
    split = make_time_split(START, END, timeframe="15m", horizon=3, holdout_bars=192)
    assert split.test.end == END - 195 * BAR


def test_purge_shorter_than_horizon_and_too_little_data_are_refused():
    with pytest.raises(ValueError, match="shorter than the horizon"):
        make_time_split(START, END, timeframe="15m", horizon=3, purge_bars=1)
    with pytest.raises(ValueError, match="too few"):
        make_time_split(START, START + pd.Timedelta(hours=5), timeframe="15m", horizon=3)
    with pytest.raises(ValueError, match="fractions"):
        make_time_split(START, END, timeframe="15m", horizon=3, fractions=(0.5, 0.5, 0.5))


def test_walk_forward_folds_expand_in_time():
    folds = walk_forward(START, END, timeframe="15m", horizon=3, folds=3)
    assert len(folds) == 3
    ends = [fold.test.end for fold in folds]
    assert ends == sorted(ends) and ends[-1] == END
    assert all(fold.train.start == START for fold in folds)
