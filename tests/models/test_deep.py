"""The sequence transformer: batched MC-dropout, artifacts, training, input windows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from levibot.dataset import LABEL_DIRECTION, MODEL_FEATURES, build_dataset
from levibot.features import compute_feature_panel
from levibot.models.artifacts import ArtifactError, read_sidecar
from levibot.models.deep import (
    MC_OUTPUTS,
    DeepConfig,
    DeepModel,
    Normaliser,
    SequenceRows,
    SequenceTransformer,
    row_starts,
    train_deep,
)
from tests.conftest import make_bars

N_FEATURES = 5
SEQ_LEN = 16
TINY = {
    "seq_len": SEQ_LEN,
    "patch_len": 8,
    "d_model": 16,
    "n_heads": 2,
    "n_layers": 1,
    "dim_feedforward": 32,
}


def tiny_model(*, dropout: float = 0.2, seed: int = 0, n_features: int = N_FEATURES) -> DeepModel:
    """An untrained (randomly initialised) model: enough for inference mechanics."""
    torch.manual_seed(seed)
    config = DeepConfig(n_features=n_features, dropout=dropout, **TINY)
    features = [f"f{i}" for i in range(n_features)]
    normaliser = Normaliser([0.0] * n_features, [1.0] * n_features)
    return DeepModel(SequenceTransformer(config), normaliser, features, 0.01, [])


def windows(n: int = 6, *, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, SEQ_LEN, N_FEATURES)).astype(np.float32)


def looped_mc(model: DeepModel, x: np.ndarray, n_samples: int) -> dict[str, np.ndarray]:
    """Reference MC-dropout: one forward pass per sample, each with its own seed."""
    net = model.network
    net.train()
    xt = torch.as_tensor(x)
    probs, sigma2 = [], []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for k in range(n_samples):
            torch.manual_seed(10_000 + k)
            logit, _, log_sigma = net(xt)
            probs.append(torch.sigmoid(logit).numpy())
            sigma2.append(np.exp(2 * log_sigma.numpy()) * model.return_scale**2)
    probs_arr = np.stack(probs)
    return {
        "p_up": probs_arr.mean(axis=0),
        "epistemic": probs_arr.var(axis=0),
        "aleatoric": np.stack(sigma2).mean(axis=0),
    }


# --- MC-dropout -------------------------------------------------------------------------


def test_predict_mc_is_deterministic_per_seed():
    model, x = tiny_model(), windows()
    first = model.predict_mc(x, n_samples=10, seed=3)
    again = model.predict_mc(x, n_samples=10, seed=3)
    other = model.predict_mc(x, n_samples=10, seed=4)
    assert set(first) == set(MC_OUTPUTS)
    for key in MC_OUTPUTS:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["p_up"], other["p_up"])
    assert not np.array_equal(first["epistemic"], other["epistemic"])


def test_predict_mc_does_not_disturb_the_global_rng():
    model, x = tiny_model(), windows()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model.predict_mc(x, n_samples=4, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


def test_batched_mc_matches_looped_mc_in_distribution():
    model, x = tiny_model(dropout=0.2), windows(8)
    k = 200
    batched = model.predict_mc(x, n_samples=k, seed=0)
    looped = looped_mc(model, x, k)
    var_b, var_l = batched["epistemic"], looped["epistemic"]
    assert (var_b > 0).all() and (var_l > 0).all()
    # means agree within a few standard errors of the two MC estimates (+ a float floor)
    stderr = np.sqrt((var_b + var_l) / k)
    assert (np.abs(batched["p_up"] - looped["p_up"]) < 5 * stderr + 1e-6).all()
    ratio = var_b / var_l
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), ratio
    np.testing.assert_allclose(batched["aleatoric"], looped["aleatoric"], rtol=0.25)


def test_predict_mc_is_one_forward_call(monkeypatch):
    model, x = tiny_model(), windows(6)
    original = model.network.forward
    batch_sizes: list[int] = []

    def counting_forward(inputs, **kwargs):
        batch_sizes.append(inputs.shape[0])
        return original(inputs, **kwargs)

    monkeypatch.setattr(model.network, "forward", counting_forward)
    out = model.predict_mc(x, n_samples=20, seed=0)
    assert batch_sizes == [20 * 6]  # all samples stacked on the batch dimension
    assert out["p_up"].shape == (6,)


def test_mc_path_without_dropout_is_the_modules_eval_forward():
    """The MC forward re-implements the encoder layer: with p = 0 it must be the module's."""
    model, x = tiny_model(dropout=0.0), torch.as_tensor(windows())
    model.network.eval()
    with torch.no_grad():
        expected = model.network(x)
        got = model.network(x, mc_generator=torch.Generator().manual_seed(0))
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_mc_dropout_leaves_the_module_mode_alone():
    model = tiny_model()
    model.network.eval()
    model.predict_mc(windows(), n_samples=4, seed=0)
    assert not model.network.training
    model.network.train()
    model.predict_mc(windows(), n_samples=4, seed=0)
    assert model.network.training


def test_concurrent_mc_calls_give_the_serial_answers():
    """Server threads call MC-dropout at once (prod and candidate, several requests): no
    shared mode or global seed, so each call's numbers are its seed's numbers."""
    from concurrent.futures import ThreadPoolExecutor

    model, x = tiny_model(), windows(4)
    seeds = list(range(24))
    serial = [model.predict_mc(x, n_samples=32, seed=s)["p_up"] for s in seeds]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(
            pool.map(lambda s: model.predict_mc(x, n_samples=32, seed=s)["p_up"], seeds)
        )
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_prefix_of_the_samples_is_a_smaller_draw():
    from levibot.models.deep import summarise_mc

    model, x = tiny_model(), windows(3)
    samples = model.mc_samples(x, n_samples=50, seed=7)
    first = summarise_mc(samples, 10)
    np.testing.assert_allclose(first["p_up"], samples["p_up"][:10].mean(axis=0))
    assert summarise_mc(samples)["p_up"].shape == (3,)


def test_without_dropout_every_mc_sample_is_identical(monkeypatch):
    model, x = tiny_model(dropout=0.0), windows()
    original = model.network.forward
    logits: list[torch.Tensor] = []

    def recording_forward(inputs, **kwargs):
        out = original(inputs, **kwargs)
        logits.append(out[0])
        return out

    monkeypatch.setattr(model.network, "forward", recording_forward)
    out = model.predict_mc(x, n_samples=16, seed=0)
    samples = logits[0].reshape(16, len(x))
    assert (samples == samples[0]).all()  # bit-identical samples: no randomness at all
    assert (out["epistemic"] < 1e-12).all() and (out["mu_epistemic"] < 1e-12).all()


def test_without_dropout_epistemic_variance_is_exactly_zero():
    model, x = tiny_model(dropout=0.0), windows()
    out = model.predict_mc(x, n_samples=16, seed=0)
    assert (out["epistemic"] == 0).all()
    assert (out["mu_epistemic"] == 0).all()


def test_zero_samples_is_refused():
    with pytest.raises(ValueError, match="n_samples"):
        tiny_model().predict_mc(windows(), n_samples=0)


def test_mc_outputs_are_in_range():
    out = tiny_model().predict_mc(windows(32), n_samples=8, seed=0)
    assert all(out[key].shape == (32,) for key in MC_OUTPUTS)
    assert ((out["p_up"] >= 0) & (out["p_up"] <= 1)).all()
    assert (out["aleatoric"] > 0).all()
    assert (out["epistemic"] >= 0).all() and (out["mu_epistemic"] >= 0).all()
    assert all(np.isfinite(out[key]).all() for key in MC_OUTPUTS)


# --- artifacts --------------------------------------------------------------------------


def test_save_load_round_trip_without_pickled_modules(tmp_path):
    model, x = tiny_model(), windows()
    model.history = [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.69}]
    path = model.save(tmp_path / "model.pt", {"role": "candidate"})
    meta = read_sidecar(path)
    assert meta["kind"] == "deep" and meta["role"] == "candidate"
    assert meta["features"] == model.features and meta["config"]["seq_len"] == SEQ_LEN

    payload = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert set(payload) >= {"state_dict", "config", "normaliser", "features"}

    loaded = DeepModel.load(path)
    assert loaded.config == model.config and loaded.features == model.features
    assert loaded.history == model.history and loaded.return_scale == model.return_scale
    before = model.predict_mc(x, n_samples=12, seed=5)
    after = loaded.predict_mc(x, n_samples=12, seed=5)
    for key in MC_OUTPUTS:
        np.testing.assert_array_equal(before[key], after[key])


def test_the_same_weights_save_to_the_same_bytes(tmp_path):
    """Release ids hash the artifacts: saving a model twice must give identical files."""
    from levibot.io import sha256_file

    model = tiny_model()
    first = model.save(tmp_path / "a" / "model.pt", {})
    second = model.save(tmp_path / "b" / "model.pt", {})
    assert sha256_file(first) == sha256_file(second)


def test_tampered_artifact_is_refused(tmp_path):
    path = tiny_model().save(tmp_path / "model.pt", {})
    with path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        DeepModel.load(path)


# --- training ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def market() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Feature frames (bars + features) of two symbols and their labelled pooled rows."""
    bars = {
        "BTCUSDT": make_bars(500, seed=1, price=40_000.0),
        "ETHUSDT": make_bars(500, seed=2, price=2_000.0),
    }
    frames = {s: bars[s].join(f) for s, f in compute_feature_panel(bars).items()}
    rows = build_dataset(frames, horizon=3).dropna(subset=[LABEL_DIRECTION])
    return frames, rows


def test_train_deep_records_finite_losses_per_epoch_without_warnings(market):
    frames, rows = market
    cut = rows.index[int(len(rows) * 0.7)]
    train, val = rows[rows.index < cut], rows[rows.index >= cut]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = train_deep(
            frames,
            train,
            val,
            features=MODEL_FEATURES,
            seed=0,
            epochs=2,
            batch_size=128,
            max_train_samples=300,
            **TINY,
        )
    assert [str(w.message) for w in caught] == []
    assert [h["epoch"] for h in model.history] == [1, 2]
    for entry in model.history:
        assert np.isfinite(entry["train_loss"]) and np.isfinite(entry["val_loss"])
    assert model.features == MODEL_FEATURES and model.config.seq_len == SEQ_LEN

    predicted = model.predict_rows(frames, val.iloc[:50], n_samples=4, seed=0)
    assert list(predicted.columns) == ["symbol", *MC_OUTPUTS]
    assert predicted.index.equals(val.index[:50])
    assert ((predicted["p_up"] >= 0) & (predicted["p_up"] <= 1)).all()


def test_normaliser_handles_an_all_nan_feature_without_warnings():
    values = np.random.default_rng(0).normal(size=(50, 3))
    values[:, 1] = np.nan
    normaliser = Normaliser.fit(values)
    assert normaliser.mean[1] == 0.0 and normaliser.std[1] == 1.0
    assert (normaliser.transform(values)[:, 1] == 0).all()


def test_train_deep_refuses_an_empty_window(market):
    frames, rows = market
    with pytest.raises(ValueError, match="both have rows"):
        train_deep(frames, rows, rows.iloc[:0], features=MODEL_FEATURES, seed=0, **TINY)


def test_config_rejects_seq_len_not_a_multiple_of_patch_len():
    with pytest.raises(ValueError, match="multiple of patch_len"):
        DeepConfig(n_features=3, seq_len=20, patch_len=8)
    assert DeepConfig(n_features=3, seq_len=24, patch_len=8).seq_len == 24


# --- input windows ----------------------------------------------------------------------


def symbol_frames(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Two symbols on overlapping clocks with non-zero feature values everywhere."""
    index = pd.date_range("2026-01-01", periods=30, freq="15min", tz="UTC", name="timestamp")
    return {
        symbol: pd.DataFrame(
            rng.uniform(1.0, 2.0, size=(n, N_FEATURES)) * scale,
            index=index[:n],
            columns=[f"f{i}" for i in range(N_FEATURES)],
        )
        for symbol, n, scale in (("AAA", 30, 1.0), ("BBB", 20, -1.0))
    }


def pooled(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(f.assign(symbol=s) for s, f in frames.items()).sort_index(kind="stable")


def test_window_ends_at_the_rows_own_bar_with_left_padding_and_no_bleed():
    frames = symbol_frames(np.random.default_rng(0))
    normaliser = Normaliser([1.0] * N_FEATURES, [0.5] * N_FEATURES)
    model = tiny_model()
    model.normaliser = normaliser
    seqs = model.sequences(frames)
    rows = pooled(frames)
    gathered = seqs.gather(row_starts(seqs, frames, rows))
    assert gathered.shape == (len(rows), SEQ_LEN, N_FEATURES)

    for symbol, frame in frames.items():
        mine = np.flatnonzero(rows["symbol"].to_numpy() == symbol)
        expected = normaliser.transform(frame.to_numpy(float))
        # position i of a symbol: its window is rows [i - seq_len + 1, i] of that symbol
        for i, where in enumerate(mine):
            window = gathered[where]
            np.testing.assert_array_equal(window[-1], expected[i])
            n_real = min(i + 1, SEQ_LEN)
            np.testing.assert_array_equal(
                window[SEQ_LEN - n_real :], expected[i + 1 - n_real : i + 1]
            )
            assert (window[: SEQ_LEN - n_real] == 0).all()  # left zero-padding, no bleed

    # the first BBB window is pure padding + its own row, not AAA's last rows
    first_bbb = gathered[np.flatnonzero(rows["symbol"].to_numpy() == "BBB")[0]]
    assert (first_bbb[:-1] == 0).all() and (first_bbb[-1] != 0).all()


def test_sequence_rows_keep_symbols_apart():
    a = np.arange(1, 13, dtype=np.float32).reshape(6, 2)
    b = -np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    seqs = SequenceRows({"A": a, "B": b}, seq_len=4)
    windows_b = seqs.gather(seqs.starts("B", np.arange(3)))
    np.testing.assert_array_equal(windows_b[0], np.vstack([np.zeros((3, 2)), b[:1]]))
    np.testing.assert_array_equal(windows_b[2], np.vstack([np.zeros((1, 2)), b]))
    windows_a = seqs.gather(seqs.starts("A", np.array([5])))
    np.testing.assert_array_equal(windows_a[0], a[2:6])


def test_row_starts_refuses_rows_missing_from_the_frames():
    frames = symbol_frames(np.random.default_rng(0))
    seqs = tiny_model().sequences(frames)
    stray = frames["BBB"].iloc[:1].assign(symbol="BBB")
    stray.index = stray.index - pd.Timedelta(days=1)
    with pytest.raises(KeyError, match="BBB"):
        row_starts(seqs, frames, stray)


def test_prediction_for_t_ignores_rows_after_t():
    frames = symbol_frames(np.random.default_rng(1))
    model = tiny_model(dropout=0.1)
    t = 18
    rows = pooled({"AAA": frames["AAA"].iloc[[t]]})

    def predict(candidate: dict[str, pd.DataFrame]) -> pd.DataFrame:
        return model.predict_rows(candidate, rows, n_samples=8, seed=11)

    base = predict(frames)
    future = {**frames, "AAA": frames["AAA"].copy()}
    future["AAA"].iloc[t + 1 :] = 1e6  # the future changes wildly
    pd.testing.assert_frame_equal(predict(future), base)

    # ... while a change at t itself (or before it) does move the prediction
    present = {**frames, "AAA": frames["AAA"].copy()}
    present["AAA"].iloc[t] = -5.0
    assert not np.allclose(predict(present)["p_up"], base["p_up"])
