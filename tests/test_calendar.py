import pandas as pd
import pytest

from levibot.calendar import calendar_named


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_crypto_trades_around_the_clock():
    assert calendar_named("24/7").open_seconds(ts("2026-01-02 22:00"), ts("2026-01-04 22:00")) == (
        48 * 3600
    )


def test_fx_weekend_is_not_staleness():
    fx = calendar_named("fx")
    # Friday 2026-01-02 21:00 -> Sunday 22:30: one hour before the close, 30 min after
    assert fx.open_seconds(ts("2026-01-02 21:00"), ts("2026-01-04 22:30")) == 90 * 60
    assert fx.open_seconds(ts("2026-01-03 10:00"), ts("2026-01-03 11:00")) == 0  # Saturday
    assert fx.open_seconds(ts("2026-01-05 10:00"), ts("2026-01-05 11:00")) == 3600  # Monday
    assert not fx.is_open(ts("2026-01-03 12:00")) and fx.is_open(ts("2026-01-04 22:00"))
    # a whole week holds 5 x 24 h of trading
    assert fx.open_seconds(ts("2026-01-05"), ts("2026-01-12")) == 120 * 3600


def test_unknown_calendar_is_named():
    with pytest.raises(ValueError, match="unknown market_calendar 'nyse'"):
        calendar_named("nyse")
