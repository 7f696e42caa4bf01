"""Bar timeframes ("15m", "1h", ...) as pandas offsets, so no module hard-codes 15 minutes."""

from __future__ import annotations

import re

import pandas as pd

_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^(\d+)([mhd])$")
SECONDS_PER_YEAR = 365 * 86400  # crypto trades 24/7, so a year is 365 full days


def timeframe_seconds(timeframe: str) -> int:
    """Length of one bar in seconds; raises ValueError naming the accepted format."""
    match = _PATTERN.match(str(timeframe).strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"timeframe {timeframe!r} is not understood: use <n>m, <n>h or <n>d, e.g. 15m, 1h, 1d"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > 86400 or 86400 % seconds:
        raise ValueError(f"timeframe {timeframe!r} must divide one day evenly (e.g. 5m, 15m, 1h)")
    return seconds


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """Bar length as a Timedelta."""
    return pd.Timedelta(seconds=timeframe_seconds(timeframe))


def periods_per_year(timeframe: str) -> float:
    """Bars in a 24/7 year: 35,040 for 15m bars (96 x 365); used to annualise Sharpe."""
    return SECONDS_PER_YEAR / timeframe_seconds(timeframe)


def floor_to_bar(ts: pd.Timestamp | str, timeframe: str) -> pd.Timestamp:
    """The open time of the bar containing `ts` (UTC)."""
    return to_utc(ts).floor(timeframe_delta(timeframe))


def utc_now() -> pd.Timestamp:
    """The real UTC time: the one default clock of every state writer."""
    return pd.Timestamp.now("UTC")


def to_utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    """Timestamp in UTC; naive input is taken to be UTC already."""
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
