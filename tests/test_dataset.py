"""Model-ready rows: pooled columns and labels, release plans, window rows, stored frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from levibot.data.store import FeatureStore
from levibot.dataset import (
    BAR_RETURN,
    LABEL_DIRECTION,
    LABEL_RETURN,
    MODEL_FEATURES,
    build_dataset,
    load_feature_frames,
    plan_releases,
    window_rows,
)
from levibot.features import compute_feature_panel
from levibot.splits import make_time_split
from tests.conftest import T0, make_bars

BAR = pd.Timedelta(minutes=15)
HORIZON = 3
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def feature_frames(n: int = 400) -> dict[str, pd.DataFrame]:
    """Bars + features per symbol, as the ingest step stores them."""
    bars = {s: make_bars(n, seed=i, price=100.0 * (i + 1)) for i, s in enumerate(SYMBOLS)}
    return {s: bars[s].join(f) for s, f in compute_feature_panel(bars).items()}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return feature_frames()


@pytest.fixture(scope="module")
def data(frames) -> pd.DataFrame:
    return build_dataset(frames, HORIZON)


# --- build_dataset ----------------------------------------------------------------------


def test_columns_are_symbol_features_labels_and_bar_return(data, frames):
    assert list(data.columns) == [
        "symbol",
        *MODEL_FEATURES,
        LABEL_RETURN,
        LABEL_DIRECTION,
        BAR_RETURN,
    ]
    assert len(data) == sum(len(f) for f in frames.values())
    assert data.index.is_monotonic_increasing
    assert set(data["symbol"]) == set(SYMBOLS)


def test_labels_are_nan_only_for_each_symbols_last_horizon_bars(data, frames):
    for symbol, frame in frames.items():
        rows = data[data["symbol"] == symbol]
        assert rows.index.equals(frame.index)
        for label in (LABEL_RETURN, LABEL_DIRECTION):
            missing = rows[label].isna().to_numpy()
            assert missing[-HORIZON:].all() and not missing[:-HORIZON].any()
        known = rows.dropna(subset=[LABEL_RETURN])
        expected = np.log(frame["close"]).shift(-HORIZON) - np.log(frame["close"])
        np.testing.assert_allclose(known[LABEL_RETURN], expected.loc[known.index])
        assert (known[LABEL_DIRECTION] == (known[LABEL_RETURN] > 0)).all()


def test_bar_return_is_the_close_pct_change_within_each_symbol(data, frames):
    for symbol, frame in frames.items():
        bar_return = data.loc[data["symbol"] == symbol, BAR_RETURN]
        assert np.isnan(bar_return.iloc[0])  # never the previous symbol's last close
        np.testing.assert_allclose(
            bar_return.iloc[1:], (frame["close"] / frame["close"].shift(1) - 1).iloc[1:]
        )


def test_features_are_copied_unchanged(data, frames):
    rows = data[data["symbol"] == "ETHUSDT"]
    pd.testing.assert_frame_equal(
        rows[MODEL_FEATURES], frames["ETHUSDT"][MODEL_FEATURES], check_freq=False
    )


# --- plan_releases ----------------------------------------------------------------------

DATA_START = T0
DATA_END = T0 + pd.Timedelta(days=9)


@pytest.fixture
def plan_settings(settings):
    return settings.model_copy(update={"holdout_hours": 12.0, "prod_lag_days": 2.0})


def assert_purged(split, horizon: int) -> None:
    train, calibration, test = split.windows
    assert train.start < train.end <= calibration.start < calibration.end <= test.start < test.end
    assert calibration.start - train.end >= horizon * BAR
    assert test.start - calibration.end >= horizon * BAR


def test_empty_registry_plans_an_older_prod_and_a_candidate(plan_settings):
    plans = plan_releases(plan_settings, DATA_START, DATA_END, has_prod=False)
    assert [p.role for p in plans] == ["prod", "candidate"]
    prod, candidate = plans
    assert prod.data_end == DATA_END - pd.Timedelta(days=plan_settings.prod_lag_days)
    assert candidate.data_end == DATA_END
    purge = plan_settings.horizon * BAR
    holdout = pd.Timedelta(hours=plan_settings.holdout_hours)
    # the candidate's test window stops before the holdout and its own purge gap ...
    assert candidate.split.test.end == DATA_END - holdout - purge
    # ... while prod has no holdout: its test runs to its (earlier) data end
    assert prod.split.test.end == prod.data_end
    for plan in plans:
        assert plan.split.train.start == DATA_START
        assert plan.split.purge >= purge
        assert_purged(plan.split, plan_settings.horizon)


def test_prod_end_is_floored_to_the_bar_grid(plan_settings):
    odd = plan_settings.model_copy(update={"prod_lag_days": 1.003})  # not a whole bar
    prod, _ = plan_releases(odd, DATA_START, DATA_END, has_prod=False)
    assert prod.data_end == (DATA_END - pd.Timedelta(days=1.003)).floor(BAR)
    assert prod.data_end < DATA_END - pd.Timedelta(days=1)


def test_existing_prod_plans_only_a_candidate(plan_settings):
    plans = plan_releases(plan_settings, DATA_START, DATA_END, has_prod=True)
    assert [p.role for p in plans] == ["candidate"]
    assert plans[0].data_end == DATA_END
    assert_purged(plans[0].split, plan_settings.horizon)


@pytest.mark.parametrize("horizon", [1, 4, 12])
def test_purge_gaps_cover_the_horizon(plan_settings, horizon):
    custom = plan_settings.model_copy(update={"horizon": horizon})
    for plan in plan_releases(custom, DATA_START, DATA_END, has_prod=False):
        assert_purged(plan.split, horizon)


def test_too_little_data_for_the_prod_lag_is_refused(plan_settings):
    lagged = plan_settings.model_copy(update={"prod_lag_days": 8.9})
    with pytest.raises(ValueError, match="too few"):
        plan_releases(lagged, DATA_START, DATA_END, has_prod=False)


# --- window_rows ------------------------------------------------------------------------


def test_window_rows_skip_purge_gaps_and_unlabelled_rows(data):
    end = data.index.max() + BAR
    split = make_time_split(data.index.min(), end, timeframe="15m", horizon=HORIZON)
    names = split.label(data.index)
    seen = []
    for window in split.windows:
        rows = window_rows(data, split, window.name)
        assert rows[LABEL_DIRECTION].notna().all()
        assert ((rows.index >= window.start) & (rows.index < window.end)).all()
        assert (names.loc[rows.index] == window.name).all()
        seen.append(rows)
    # every labelled row outside the purge gaps is in exactly one window
    kept = pd.concat(seen)
    gap = (names == "").to_numpy()
    assert gap.sum() == 2 * HORIZON * len(SYMBOLS)
    labelled = data[~gap].dropna(subset=[LABEL_DIRECTION])
    assert len(kept) == len(labelled)
    assert not set(data.index[gap]) & set(kept.index)


def test_window_rows_keep_unlabelled_rows_only_on_request(data):
    end = data.index.max() + BAR
    split = make_time_split(data.index.min(), end, timeframe="15m", horizon=HORIZON)
    labelled = window_rows(data, split, "test")
    everything = window_rows(data, split, "test", labelled=False)
    # the test window runs to the data end: each symbol's last `horizon` bars lack a label
    assert len(everything) - len(labelled) == HORIZON * len(SYMBOLS)
    assert everything[LABEL_DIRECTION].isna().sum() == HORIZON * len(SYMBOLS)
    assert everything.index.max() == data.index.max()


def test_window_rows_refuse_an_unknown_window(data):
    split = make_time_split(data.index.min(), data.index.max(), timeframe="15m", horizon=3)
    with pytest.raises(KeyError):
        window_rows(data, split, "holdout")


# --- load_feature_frames ----------------------------------------------------------------


def test_load_feature_frames_reads_every_configured_symbol(settings, frames):
    store = FeatureStore(settings.data_dir / "store", settings.timeframe)
    for symbol, frame in frames.items():
        store.write(symbol, frame)
    loaded = load_feature_frames(settings)
    assert list(loaded) == settings.symbols
    for symbol in settings.symbols:
        pd.testing.assert_frame_equal(loaded[symbol], frames[symbol], check_freq=False)


def test_load_feature_frames_with_a_missing_symbol_says_to_run_ingest(settings, frames):
    store = FeatureStore(settings.data_dir / "store", settings.timeframe)
    store.write("BTCUSDT", frames["BTCUSDT"])
    with pytest.raises(FileNotFoundError, match=r"ETHUSDT.*run the ingest"):
        load_feature_frames(settings)
