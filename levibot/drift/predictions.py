"""Prediction drift: the distribution of a release's served P(up) against its test window.

A release whose P(up) distribution moves away from the one it had out of sample is
meeting inputs it was not evaluated on (or is broken). The reference is the calibrated
test-window P(up) per symbol, fitted with the same ordinary-window noise model as the
features (`fit_reference`) but always on the level -- the distribution of the forecasts
is the subject, however persistent they are -- and stored beside the model as an
artifact of the release. It is diagnostic: a critical prediction drift raises the
check to a warning, not to the kill switch, since a regime the release has not seen
changes its forecasts without making them wrong; the loss monitor says when they are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from levibot.drift.check import DriftResult, check_drift
from levibot.drift.monitoring import LEVEL
from levibot.drift.reference import ReferenceStats, fit_reference, save_reference
from levibot.thresholds import DriftThresholds

COLUMN = "p_up"
ARTIFACT = "prediction_reference"  # its key in the release's artifacts


def prediction_frames(p_up: pd.Series, symbols: pd.Series) -> dict[str, pd.DataFrame]:
    """One frame per symbol with the P(up) column, indexed by bar time."""
    frame = pd.DataFrame({COLUMN: p_up.to_numpy(), "symbol": symbols.to_numpy()}, index=p_up.index)
    return {
        str(symbol): group[[COLUMN]].sort_index(kind="stable")
        for symbol, group in frame.groupby("symbol")
    }


def fit_prediction_reference(
    test: pd.DataFrame, window_bars: int, column: str = "p_cal"
) -> ReferenceStats:
    """The reference from a release's test-window predictions (`symbol`, `column`)."""
    frames = prediction_frames(test[column], test["symbol"])
    return fit_reference(frames, [COLUMN], window_bars=window_bars, methods={COLUMN: LEVEL})


def save_prediction_reference(directory: Path, stats: ReferenceStats) -> Path:
    """Stored content-addressed next to the model: a re-release never rewrites a file a
    registered release's sha256 points at."""
    digest = hashlib.sha256(stats.sorted_values[COLUMN].tobytes()).hexdigest()[:12]
    return save_reference(directory / f"{ARTIFACT}-{digest}.npz", stats)


def served_frames(predictions: pd.DataFrame, role: str, endpoint: str = "/ml/predict"):
    """The role's served P(up) per symbol from shadow-log prediction rows."""
    rows = predictions[(predictions["endpoint"] == endpoint) & (predictions["role"] == role)]
    rows = rows.drop_duplicates(["symbol", "bar_time"], keep="last")
    index = pd.DatetimeIndex(pd.to_datetime(rows["bar_time"], utc=True))
    return prediction_frames(
        pd.Series(pd.to_numeric(rows[COLUMN], errors="coerce").to_numpy(), index=index),
        rows["symbol"],
    )


def prediction_drift(
    reference: ReferenceStats, predictions: pd.DataFrame, role: str, thresholds: DriftThresholds
) -> DriftResult:
    """The served P(up) of `role` against its test-window reference."""
    frames = served_frames(predictions, role)
    return check_drift(reference, frames or {"": pd.DataFrame({COLUMN: []})}, thresholds)
