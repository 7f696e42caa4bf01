import numpy as np
import pandas as pd
import pytest

from levibot.data.sources.synthetic import SyntheticMarket
from levibot.features import (
    CROSS_ASSET_FEATURES,
    FEATURES,
    LABEL_DIRECTION,
    LABEL_RETURN,
    compute_feature_panel,
    compute_features,
    make_labels,
    rsi,
)
from tests.conftest import make_bars

N = 900  # long enough for every window (EMA-200, the weekly vol baseline's 96-bar minimum)


def perturb_after(frame: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Same bars up to row t, different (still valid) bars afterwards."""
    rng = np.random.default_rng(seed)
    changed = frame.copy()
    factor = np.exp(rng.normal(0, 0.05, len(frame) - t - 1))
    for column in ("open", "high", "low", "close"):
        changed.iloc[t + 1 :, changed.columns.get_loc(column)] *= factor
    for column in ("volume", "funding_rate", "open_interest", "ob_imbalance", "news_impact"):
        changed.iloc[t + 1 :, changed.columns.get_loc(column)] *= rng.uniform(0.5, 2.0)
    return changed


@pytest.mark.parametrize("t", [0, 13, 250, N - 2])
def test_no_feature_at_t_changes_when_later_bars_change(t):
    bars = make_bars(N, seed=5)
    original = compute_features(bars)
    changed = compute_features(perturb_after(bars, t, seed=t))
    pd.testing.assert_frame_equal(original.iloc[: t + 1], changed.iloc[: t + 1])
    if t < N - 2:
        assert not original.iloc[t + 1 :].equals(changed.iloc[t + 1 :])  # the test can fail


def test_cross_asset_features_are_causal_too():
    btc, eth = make_bars(N, seed=1), make_bars(N, seed=2)
    t = 400
    original = compute_feature_panel({"BTCUSDT": btc, "ETHUSDT": eth})["ETHUSDT"]
    changed = compute_feature_panel({"BTCUSDT": perturb_after(btc, t, 9), "ETHUSDT": eth})[
        "ETHUSDT"
    ]
    pd.testing.assert_frame_equal(original.iloc[: t + 1], changed.iloc[: t + 1])
    assert not original["btc_ret_1"].iloc[t + 1 :].equals(changed["btc_ret_1"].iloc[t + 1 :])


def test_feature_list_and_values_are_finite_after_warmup():
    features = compute_features(make_bars(N))
    assert list(features.columns) == FEATURES and len(FEATURES) == 18
    assert features.iloc[300:].notna().all().all()
    assert np.isfinite(features.iloc[300:].to_numpy()).all()
    assert features["rsi_14"].dropna().between(0, 100).all()


def test_price_features_are_scale_free():
    bars = make_bars(N)
    scaled = bars.copy()
    scaled[["open", "high", "low", "close"]] *= 1000.0
    pd.testing.assert_frame_equal(compute_features(bars), compute_features(scaled), rtol=1e-9)


def test_missing_auxiliaries_stay_nan_not_zero():
    bars = make_bars(N)
    bars[["funding_rate", "open_interest", "ob_imbalance", "news_impact", "news_confidence"]] = (
        np.nan
    )
    features = compute_features(bars)
    for column in ("fund_rate", "oi_chg_3", "ob_imb", "snews_impact", "snews_conf"):
        assert features[column].isna().all()
    assert features["ret_1"].iloc[1:].notna().all()


def test_without_btc_cross_asset_features_are_nan():
    panel = compute_feature_panel({"XYZUSD": make_bars(50)})
    assert panel["XYZUSD"][CROSS_ASSET_FEATURES].isna().all().all()


def test_empty_single_row_and_flat_prices():
    assert compute_features(make_bars(0)).empty
    one = compute_features(make_bars(1))
    assert len(one) == 1 and one[["ret_1", "rsi_14", "ema_200"]].isna().all().all()
    flat = make_bars(60)
    flat[["open", "high", "low", "close"]] = 100.0
    features = compute_features(flat)
    assert np.isfinite(features.dropna(how="all").fillna(0).to_numpy()).all()
    assert (rsi(flat["close"]).dropna() == 50).all()


def test_labels_look_forward_horizon_bars():
    bars = make_bars(20)
    labels = make_labels(bars, horizon=3)
    expected = np.log(bars["close"].iloc[3] / bars["close"].iloc[0])
    assert labels[LABEL_RETURN].iloc[0] == pytest.approx(expected)
    assert labels[LABEL_DIRECTION].iloc[0] == float(expected > 0)
    assert labels.iloc[-3:].isna().all().all() and labels.iloc[:-3].notna().all().all()
    with pytest.raises(ValueError, match="horizon"):
        make_labels(bars, horizon=0)


def test_synthetic_features_carry_a_weak_signal():
    """A sanity check of the simulator: some feature correlates with the next return."""
    end = pd.Timestamp("2024-04-01", tz="UTC")
    bars = SyntheticMarket(seed=7).fetch("ETHUSDT", end - pd.Timedelta(days=40), end)
    panel = compute_feature_panel({"ETHUSDT": bars})["ETHUSDT"]
    future = make_labels(bars, horizon=1)[LABEL_RETURN]
    correlations = panel.corrwith(future).abs()
    assert 0.03 < correlations.max() < 0.5
