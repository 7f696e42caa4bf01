"""Prediction drift: the served P(up) against the release's test-window P(up)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from levibot.drift import load_reference
from levibot.drift.predictions import (
    COLUMN,
    fit_prediction_reference,
    prediction_drift,
    save_prediction_reference,
)
from levibot.thresholds import CRITICAL, OK, DriftThresholds


def _test_window(rng: np.random.Generator, n: int = 960) -> pd.DataFrame:
    index = pd.date_range("2026-01-01", periods=n, freq="15min", tz="UTC")
    rows = [
        pd.DataFrame({"symbol": s, "p_cal": 0.5 + 0.05 * rng.standard_normal(n)}, index=index)
        for s in ("BTCUSDT", "ETHUSDT")
    ]
    return pd.concat(rows)


def _served(rng: np.random.Generator, center: float, bars: int = 96) -> pd.DataFrame:
    times = pd.date_range("2026-02-01", periods=bars, freq="15min", tz="UTC")
    rows = []
    for role in ("prod", "candidate"):
        for symbol in ("BTCUSDT", "ETHUSDT"):
            p = (center if role == "candidate" else 0.5) + 0.05 * rng.standard_normal(bars)
            rows.append(
                pd.DataFrame(
                    {
                        "endpoint": "/ml/predict",
                        "role": role,
                        "symbol": symbol,
                        "bar_time": times.astype(str),
                        COLUMN: p,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_a_shifted_forecast_distribution_is_caught_and_a_stable_one_is_not(tmp_path) -> None:
    rng = np.random.default_rng(0)
    reference = fit_prediction_reference(_test_window(rng), window_bars=96)
    assert reference.methods == {COLUMN: "level"}  # the level, however persistent
    path = save_prediction_reference(tmp_path, reference)
    assert path.name.startswith("prediction_reference-") and path.suffix == ".npz"
    assert save_prediction_reference(tmp_path, reference) == path  # content-addressed
    loaded = load_reference(path)
    served = _served(rng, center=0.62)
    thresholds = DriftThresholds()
    assert prediction_drift(loaded, served, "prod", thresholds).status == OK
    shifted = prediction_drift(loaded, served, "candidate", thresholds)
    assert shifted.status == CRITICAL and shifted.features[COLUMN].psi > 1.0


def test_no_served_predictions_is_insufficient_not_ok() -> None:
    rng = np.random.default_rng(1)
    reference = fit_prediction_reference(_test_window(rng), window_bars=96)
    empty = _served(rng, 0.5).iloc[:0]
    assert prediction_drift(reference, empty, "prod", DriftThresholds()).status != OK
