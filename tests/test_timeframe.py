import pandas as pd
import pytest

from levibot.timeframe import floor_to_bar, periods_per_year, timeframe_seconds, to_utc


@pytest.mark.parametrize(("tf", "seconds"), [("1m", 60), ("15m", 900), ("1h", 3600), ("1d", 86400)])
def test_timeframe_seconds(tf, seconds):
    assert timeframe_seconds(tf) == seconds


@pytest.mark.parametrize("bad", ["", "15", "0m", "7m", "2d", "15x", "m15"])
def test_bad_timeframes_are_refused_with_the_format(bad):
    with pytest.raises(ValueError, match="timeframe"):
        timeframe_seconds(bad)


def test_periods_per_year_is_a_24_7_year():
    assert periods_per_year("15m") == 96 * 365
    assert periods_per_year("1h") == 24 * 365


def test_floor_to_bar_and_utc():
    assert floor_to_bar("2026-01-01 10:14:59", "15m") == pd.Timestamp("2026-01-01 10:00", tz="UTC")
    assert to_utc("2026-01-01 12:00+02:00") == pd.Timestamp("2026-01-01 10:00", tz="UTC")
