"""Time-ordered train / calibration / test windows with purge gaps -- one function for all.

Labels at bar t look ``horizon`` bars ahead, so the last training rows "see" prices
inside the next window unless a gap of at least ``horizon`` bars separates them. Every
boundary here leaves such a purge gap; every metric names the window it was computed
on, and headline metrics come from the test window only. The last ``holdout`` bars are
kept out of all three windows (the marathon replays them as unseen data).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from levibot.timeframe import timeframe_delta

WINDOW_NAMES = ("train", "calibration", "test")


@dataclass(frozen=True)
class Window:
    """Bars with open time in [start, end)."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp

    def mask(self, index: pd.Index) -> pd.Series:
        times = pd.DatetimeIndex(index)
        return (times >= self.start) & (times < self.end)

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class TimeSplit:
    """Train, calibration and test windows separated by purge gaps."""

    train: Window
    calibration: Window
    test: Window
    purge: pd.Timedelta

    @property
    def windows(self) -> tuple[Window, Window, Window]:
        return (self.train, self.calibration, self.test)

    def label(self, index: pd.Index) -> pd.Series:
        """Window name of every row ('' for rows in a purge gap or outside)."""
        names = pd.Series("", index=index, dtype=object)
        for window in self.windows:
            names[window.mask(index)] = window.name
        return names

    def as_dict(self) -> dict[str, dict[str, str] | str]:
        out: dict[str, dict[str, str] | str] = {w.name: w.as_dict() for w in self.windows}
        out["purge"] = str(self.purge)
        return out


def make_time_split(
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    timeframe: str,
    horizon: int,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    purge_bars: int | None = None,
    holdout_bars: int = 0,
) -> TimeSplit:
    """Split [start, end) by time into train / calibration / test with purge gaps.

    ``purge_bars`` defaults to (and may not be less than) ``horizon``. The holdout at the
    end is preceded by a purge gap too. Raises ValueError when the data is too short.
    """
    bar = timeframe_delta(timeframe)
    purge_bars = horizon if purge_bars is None else purge_bars
    if purge_bars < horizon:
        raise ValueError(f"purge gap of {purge_bars} bars is shorter than the horizon {horizon}")
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"window fractions must be positive and sum to 1, got {fractions}")
    purge = purge_bars * bar
    usable_end = end - holdout_bars * bar - (purge if holdout_bars else pd.Timedelta(0))
    total_bars = int((usable_end - start) / bar) - 2 * purge_bars
    if total_bars < 30:
        raise ValueError(
            f"[{start}, {end}) leaves {max(total_bars, 0)} bars after purge gaps and a "
            f"{holdout_bars}-bar holdout: too few for train/calibration/test"
        )
    train_bars = int(total_bars * fractions[0])
    calib_bars = int(total_bars * fractions[1])
    train_end = start + train_bars * bar
    calib_start = train_end + purge
    calib_end = calib_start + calib_bars * bar
    test_start = calib_end + purge
    return TimeSplit(
        train=Window("train", start, train_end),
        calibration=Window("calibration", calib_start, calib_end),
        test=Window("test", test_start, usable_end),
        purge=purge,
    )


def early_stopping_split(
    rows: pd.DataFrame, purge: pd.Timedelta, fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, valid): the newest `fraction` of the training rows' bar times for early
    stopping, the rest (minus a purge gap) for fitting.

    Early stopping on the calibration window would make that window part of the model's
    fit, and the calibrator and the policy chosen there would be judged in sample.
    """
    times = pd.DatetimeIndex(rows.index)
    distinct = times.unique().sort_values()
    if len(distinct) < 10:
        raise ValueError(f"{len(distinct)} training bars are too few to hold out a validation tail")
    cut = distinct[int(len(distinct) * (1 - fraction))]
    return rows.loc[times < cut - purge], rows.loc[times >= cut]


def walk_forward(
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    timeframe: str,
    horizon: int,
    folds: int = 3,
    min_train_fraction: float = 0.4,
) -> list[TimeSplit]:
    """Expanding-window folds: each fold's test follows its calibration window in time."""
    if folds < 1:
        raise ValueError("folds must be >= 1")
    span = end - start
    splits = []
    for fold in range(folds):
        fold_end = start + span * (
            min_train_fraction + (1 - min_train_fraction) * (fold + 1) / folds
        )
        splits.append(
            make_time_split(
                start,
                fold_end.floor(timeframe_delta(timeframe)),
                timeframe=timeframe,
                horizon=horizon,
            )
        )
    return splits
