"""LightGBM: determinism, artifacts, input checks, and a label-shuffle leakage guard."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from levibot.data.sources.synthetic import SyntheticMarket
from levibot.dataset import LABEL_DIRECTION, MODEL_FEATURES, build_dataset, window_rows
from levibot.features import compute_feature_panel
from levibot.io import read_json
from levibot.models.artifacts import ArtifactError, sidecar_path
from levibot.models.lgbm import LgbmModel, train_lgbm
from levibot.splits import make_time_split

START = pd.Timestamp("2024-01-08", tz="UTC")
END = START + pd.Timedelta(days=60)  # 3 symbols x 60 days: ~3,400 test rows
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture(scope="module")
def windows() -> dict[str, pd.DataFrame]:
    """Labelled train / calibration / test rows of the synthetic market, purged apart.

    The market has 8x the default edge (ICs ~0.1): at the realistic default (~0.02) 60 days
    are too few for any model to beat chance reliably, and this test is about leakage."""
    market = SyntheticMarket(seed=7, edge=8.0)
    bars = {symbol: market.fetch(symbol, START, END) for symbol in SYMBOLS}
    frames = {s: bars[s].join(f) for s, f in compute_feature_panel(bars).items()}
    data = build_dataset(frames, horizon=3)
    split = make_time_split(START, END, timeframe="15m", horizon=3)
    return {name: window_rows(data, split, name) for name in ("train", "calibration", "test")}


def fit(windows: dict[str, pd.DataFrame], seed: int = 0, **kwargs) -> LgbmModel:
    return train_lgbm(
        windows["train"],
        windows["calibration"],
        features=MODEL_FEATURES,
        label=LABEL_DIRECTION,
        seed=seed,
        **kwargs,
    )


@pytest.fixture(scope="module")
def model(windows) -> LgbmModel:
    return fit(windows)


def test_training_is_deterministic_by_seed(windows, model):
    again = fit(windows)
    np.testing.assert_array_equal(again.predict(windows["test"]), model.predict(windows["test"]))
    assert again.booster.best_iteration == model.booster.best_iteration


def test_predictions_are_probabilities_and_importance_names_features(windows, model):
    p = model.predict(windows["test"])
    assert p.shape == (len(windows["test"]),)
    assert ((p > 0) & (p < 1)).all()
    importance = model.importance()
    assert sorted(importance.index) == sorted(MODEL_FEATURES)
    assert set(model.evals) == {"train", "valid"}


def test_save_writes_a_sidecar_with_features_params_and_hash(tmp_path, windows, model):
    path = model.save(tmp_path / "model.txt", {"role": "candidate", "split": {"x": "y"}})
    meta = read_json(sidecar_path(path))
    assert meta["kind"] == "lgbm" and meta["role"] == "candidate"
    assert meta["features"] == MODEL_FEATURES  # in order
    assert meta["params"] == model.params
    assert meta["params"]["seed"] == 0 and meta["params"]["deterministic"] is True
    assert meta["best_iteration"] == model.booster.best_iteration
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["artifact"] == path.name

    loaded = LgbmModel.load(path)
    assert loaded.features == MODEL_FEATURES and loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict(windows["test"]), model.predict(windows["test"]))


def test_tampered_artifact_is_refused(tmp_path, model):
    path = model.save(tmp_path / "model.txt", {})
    with path.open("ab") as handle:
        handle.write(b"\n")
    with pytest.raises(ArtifactError, match="sha256"):
        LgbmModel.load(path)


def test_missing_artifact_is_refused(tmp_path, model):
    path = model.save(tmp_path / "model.txt", {})
    path.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        LgbmModel.load(path)


def test_missing_feature_column_is_named(windows, model):
    with pytest.raises(KeyError, match="rsi_14"):
        model.predict(windows["test"].drop(columns=["rsi_14"]))


def test_empty_windows_are_refused(windows):
    with pytest.raises(ValueError, match="both have rows"):
        fit({**windows, "train": windows["train"].iloc[:0]})
    with pytest.raises(ValueError, match="both have rows"):
        fit({**windows, "calibration": windows["calibration"].iloc[:0]})


def test_real_labels_beat_chance_on_the_test_window(windows, model):
    test = windows["test"]
    assert len(test) >= 2_000
    assert roc_auc_score(test[LABEL_DIRECTION], model.predict(test)) > 0.52


def test_shuffled_labels_give_chance_auc_on_the_test_window(windows):
    """Leakage guard: with labels permuted in train AND calibration, nothing is learnable,
    so test AUCs consistently above 0.5 would mean the pipeline leaks the test labels.

    A model fitted to noise is still a random function of slow features (EMA-200, regime
    levels) that track the few trend regimes of a 12-day test window, so a single AUC
    scatters by about +-0.07 around 0.5 (the labels are autocorrelated); a leak would move
    every seed the same way, which is what the mean tests."""
    test = windows["test"]
    assert len(test) >= 2_000
    aucs = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        shuffled = {
            "train": windows["train"].assign(
                **{LABEL_DIRECTION: rng.permutation(windows["train"][LABEL_DIRECTION].to_numpy())}
            ),
            "calibration": windows["calibration"].assign(
                **{
                    LABEL_DIRECTION: rng.permutation(
                        windows["calibration"][LABEL_DIRECTION].to_numpy()
                    )
                }
            ),
        }
        noise = fit(shuffled, seed=seed)
        aucs.append(roc_auc_score(test[LABEL_DIRECTION], noise.predict(test)))
    assert abs(np.mean(aucs) - 0.5) < 0.05 and max(aucs) < 0.6, aucs
    assert abs(np.mean(aucs) - 0.5) < 0.03, aucs


def test_early_stopping_keeps_the_best_round_even_when_patience_never_runs_out(windows):
    model = fit(windows, num_boost_round=40, early_stopping_rounds=1000)
    auc = model.evals["valid"]["auc"]
    best = int(np.argmax(auc[19:])) + 20  # rounds are 1-based; at least 20 are kept
    assert model.booster.best_iteration == best
