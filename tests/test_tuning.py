"""Ensemble weight tuning: pairing by (symbol, bar), the grid, EWMA, min data, the file."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

import levibot.io
from levibot import tuning
from levibot.cli import main
from levibot.data.store import FeatureStore
from levibot.io import CorruptFileError, read_json
from levibot.online.shadow_log import ShadowLog
from levibot.policy import Policy
from levibot.registry import ModelEntry, bootstrap_prod
from levibot.settings import Settings, load_settings
from levibot.state.paths import Paths
from levibot.state.weights import HISTORY_LENGTH
from levibot.tuning import (
    DEEP_ENDPOINT,
    LGBM_ENDPOINT,
    TuningError,
    TuningResult,
    align_predictions,
    best_weight,
    run_tuning,
    smooth,
    tune_weights,
    write_weights,
)
from tests.factories import make_entry

T0 = pd.Timestamp("2026-03-01", tz="UTC")
BAR = pd.Timedelta(minutes=15)
N_BARS = 60
NOW = T0 + N_BARS * BAR + pd.Timedelta(hours=1)
LOGGED_AT = NOW - pd.Timedelta(hours=2)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
POLICY = Policy(entry_threshold=0.55, exit_threshold=0.45, fee_bps=1.0, slippage_bps=1.0)
LGBM, DEEP = "/ml/predict", "/ml/predict_deep"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith("LEVIBOT_")]:
        monkeypatch.delenv(name)
    return load_settings(None, root=tmp_path, symbols="BTCUSDT,ETHUSDT", timeframe="15m")


def _closes(symbol: str) -> pd.Series:
    rng = np.random.default_rng(SYMBOLS.index(symbol) + 11)
    index = pd.date_range(T0, periods=N_BARS, freq="15min", name="timestamp")
    return pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, N_BARS))), index=index)


def _write_store(settings: Settings) -> dict[str, pd.Series]:
    store = FeatureStore(settings.data_dir / "store", settings.timeframe)
    closes = {}
    for symbol in SYMBOLS:
        close = _closes(symbol)
        store.write(symbol, close.to_frame("close"))
        closes[symbol] = close
    return closes


def _informative(close: pd.Series) -> pd.Series:
    """p_up that knows the NEXT bar's direction, just past the policy thresholds."""
    nxt = close.shift(-1) / close - 1.0
    return pd.Series(np.where(nxt > 0, 0.56, 0.44), index=close.index)[:-1]


def _noise(index: pd.Index, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.choice([0.05, 0.95], len(index)), index=index)


def _record(symbol: str, bar: pd.Timestamp, endpoint: str, p: float, **extra) -> dict:
    return {
        "request_id": f"{symbol}-{bar.isoformat()}-{endpoint}",
        "endpoint": endpoint,
        "symbol": symbol,
        "bar_time": bar.isoformat(),
        "variant": "prod",
        "role": "prod",
        "model_id": "m1",
        "p_up": p,
        "signal": "HOLD",
        "reason": None,
        "served": True,
        **extra,
    }


def _log(settings: Settings, records: Iterable[dict], at: pd.Timestamp = LOGGED_AT) -> None:
    ShadowLog(Paths.of(settings).logs, clock=lambda: at).log_predictions(list(records))


def _paired_records(p_lgbm: dict[str, pd.Series], p_deep: dict[str, pd.Series]) -> list[dict]:
    records = []
    for symbol in p_lgbm:
        for bar, p in p_lgbm[symbol].items():
            records.append(_record(symbol, bar, LGBM, float(p)))
            records.append(_record(symbol, bar, DEEP, float(p_deep[symbol][bar])))
    return records


def _scenario(settings: Settings, *, lgbm_good: bool) -> tuple[dict, dict]:
    closes = _write_store(settings)
    good = {s: _informative(c) for s, c in closes.items()}
    noise = {s: _noise(good[s].index, seed=i) for i, s in enumerate(SYMBOLS)}
    return (good, noise) if lgbm_good else (noise, good)


def _tune(settings: Settings, **kwargs) -> TuningResult:
    return tune_weights(settings, now=NOW, policy=POLICY, **kwargs)


# ---------------------------------------------------------------------- the tuning


def test_informative_lgbm_gets_the_weight(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    result = _tune(cfg)
    assert result.aligned_rows == 2 * (N_BARS - 1)
    assert result.w_opt == 1.0
    assert result.sharpe_by_w[1.0] == max(result.sharpe_by_w.values())
    assert result.sharpe_by_w[1.0] > result.sharpe_by_w[0.95] > result.sharpe_by_w[0.0]
    assert set(result.sharpe_by_w) == set(tuning.WEIGHT_GRID) and len(result.sharpe_by_w) == 21
    assert not result.kept_previous
    assert result.weights["lgbm"] == pytest.approx(0.65)  # 0.3 * 1 + 0.7 * 0.5
    assert result.weights["deep"] == pytest.approx(0.35)
    assert "w_opt=1.00" in result.reason and "EWMA" in result.reason
    assert result.trade_count >= tuning.MIN_TRADES


def test_informative_deep_gets_the_weight(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=False)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    result = _tune(cfg)
    assert result.w_opt == 0.0
    assert result.weights == pytest.approx({"lgbm": 0.35, "deep": 0.65})


def test_ewma_starts_from_the_previous_file(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    first = run_tuning(cfg, now=NOW, policy=POLICY)
    second = run_tuning(cfg, now=NOW, policy=POLICY)
    assert first.weights["lgbm"] == pytest.approx(0.65)
    assert second.previous_weights["lgbm"] == pytest.approx(0.65)
    assert second.weights["lgbm"] == pytest.approx(0.3 + 0.7 * 0.65)


def test_misaligned_logs_use_only_matching_pairs(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    matched: dict[str, pd.Index] = {}
    records = []
    for k, symbol in enumerate(SYMBOLS):
        lgbm_bars = p_lgbm[symbol].index[3:]  # lgbm misses the first bars
        deep_bars = p_deep[symbol].index.delete(slice(None, None, 7))  # deep misses every 7th
        matched[symbol] = lgbm_bars.intersection(deep_bars)
        records += [_record(symbol, b, LGBM, float(p_lgbm[symbol][b])) for b in lgbm_bars]
        records += [_record(symbol, b, DEEP, float(p_deep[symbol][b])) for b in deep_bars]
        # deep logged for bars lgbm never saw (one is not even in the store)
        for bar in (T0 - 5 * BAR, T0 + (N_BARS + 3) * BAR, p_lgbm[symbol].index[1]):
            records.append(_record(symbol, bar, DEEP, 0.99))
        # a stale value later overwritten, other roles/endpoints, a null p_up
        bar = matched[symbol][4]
        records.insert(k, _record(symbol, bar, LGBM, 0.01))
        records.append(_record(symbol, bar, DEEP, 0.99, role="candidate"))
        records.append(_record(symbol, bar, "/ml/predict_ensemble", 0.99))
        records.append(_record(symbol, matched[symbol][5], LGBM, None))
    stale = [r for r in records if r["p_up"] == 0.01]
    rest = [r for r in records if r["p_up"] != 0.01]
    random.Random(3).shuffle(rest)
    # the stale values come first in time, the later correct ones win
    _log(cfg, stale, at=LOGGED_AT - pd.Timedelta(minutes=30))
    _log(cfg, rest)
    result = _tune(cfg)

    other = load_settings(None, root=cfg.data_dir.parent / "aligned", symbols="BTCUSDT,ETHUSDT")
    _write_store(other)
    pre = {s: p_lgbm[s][matched[s]] for s in SYMBOLS}
    _log(other, _paired_records(pre, {s: p_deep[s][matched[s]] for s in SYMBOLS}))
    expected = _tune(other)

    assert result.aligned_rows == sum(len(m) for m in matched.values()) == expected.aligned_rows
    assert result.sharpe_by_w == expected.sharpe_by_w
    assert result.w_opt == expected.w_opt
    assert result.weights == expected.weights
    # a pairing that truncated two lists to the same length would score differently
    assert result.aligned_rows < 2 * (N_BARS - 1)


def test_align_predictions_is_an_inner_join() -> None:
    bars = pd.date_range(T0, periods=4, freq="15min")
    frame = pd.DataFrame(
        [
            {"ts": T0, "endpoint": DEEP, "symbol": "BTCUSDT", "bar_time": bars[3], "p_up": 0.9},
            {"ts": T0, "endpoint": LGBM, "symbol": "BTCUSDT", "bar_time": bars[0], "p_up": 0.1},
            {"ts": T0, "endpoint": LGBM, "symbol": "BTCUSDT", "bar_time": bars[3], "p_up": 0.2},
            {"ts": T0, "endpoint": DEEP, "symbol": "BTCUSDT", "bar_time": bars[1], "p_up": 0.8},
            {"ts": T0, "endpoint": LGBM, "symbol": "ETHUSDT", "bar_time": bars[1], "p_up": 0.3},
        ]
    ).assign(role="prod")
    aligned = tuning.align_predictions(frame)
    assert aligned.to_dict("records") == [
        {"symbol": "BTCUSDT", "bar_time": bars[3], "p_lgbm": 0.2, "p_deep": 0.9}
    ]
    assert tuning.align_predictions(frame.iloc[:0]).empty


def test_logs_outside_the_window_are_ignored(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep), at=NOW - pd.Timedelta(days=4))
    _log(cfg, _paired_records(p_deep, p_lgbm), at=NOW + pd.Timedelta(hours=1))  # the future
    result = _tune(cfg)
    assert result.aligned_rows == 0 and result.kept_previous
    assert _tune(cfg, days=5).w_opt == 1.0


# ------------------------------------------------------------------- minimum data


def test_too_few_rows_keep_previous_weights(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    few = {s: p_lgbm[s].iloc[:10] for s in SYMBOLS}
    _log(cfg, _paired_records(few, p_deep))
    result = _tune(cfg)
    assert result.aligned_rows == 20 < tuning.MIN_ALIGNED_ROWS
    assert result.kept_previous and result.weights == {"lgbm": 0.5, "deep": 0.5}
    assert "kept default 0.5/0.5" in result.reason and "only 20 aligned" in result.reason

    write_weights(Paths.of(cfg).ensemble_weights, _result({"lgbm": 0.8, "deep": 0.2}))
    result = _tune(cfg)
    assert result.kept_previous and result.weights == pytest.approx({"lgbm": 0.8, "deep": 0.2})
    assert result.reason.startswith("kept previous weights: only 20 aligned")


def test_too_few_trades_keep_previous_weights(cfg: Settings) -> None:
    closes = _write_store(cfg)
    flat = {s: pd.Series(0.5, index=c.index[:-1]) for s, c in closes.items()}
    _log(cfg, _paired_records(flat, flat))
    result = _tune(cfg)
    assert result.aligned_rows == 2 * (N_BARS - 1)
    assert result.kept_previous and result.trade_count == 0
    assert result.w_opt == 0.5  # all Sharpes tie at 0: no tilt
    assert "0 trade(s)" in result.reason


def test_no_logs_at_all(cfg: Settings) -> None:
    result = _tune(cfg)
    assert result.kept_previous and result.w_opt is None and result.sharpe_by_w == {}
    assert result.aligned_rows == 0


def test_rows_without_stored_bars_are_not_counted(cfg: Settings) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    records = _paired_records(p_lgbm, p_deep)
    records += [_record("SOLUSDT", T0, LGBM, 0.6), _record("SOLUSDT", T0, DEEP, 0.6)]
    _log(cfg, records)
    result = _tune(cfg)
    assert result.aligned_rows == 2 * (N_BARS - 1)
    assert "1 paired row(s) without a stored bar ignored" in result.reason


# ------------------------------------------------------------------- the weights file


def _result(weights: dict[str, float], at: str = "2026-03-01T00:00:00+00:00") -> TuningResult:
    return TuningResult(
        weights=weights,
        w_opt=weights["lgbm"],
        sharpe_by_w={},
        aligned_rows=0,
        kept_previous=False,
        reason="test",
        tuned_at=at,
    )


def test_file_format_is_what_the_server_reads(cfg: Settings) -> None:
    from levibot.state.weights import load_weights

    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    result = run_tuning(cfg, now=NOW, policy=POLICY)
    payload = read_json(Paths.of(cfg).ensemble_weights)
    assert payload["weights"] == pytest.approx(result.weights)
    assert payload["updated_at"] == NOW.isoformat() == result.tuned_at
    assert payload["w_opt"] == 1.0 and payload["aligned_rows"] == result.aligned_rows
    assert payload["reason"] == result.reason
    assert payload["history"][-1]["weights"] == payload["weights"]
    assert load_weights(Paths.of(cfg).ensemble_weights) == pytest.approx(result.weights)


def test_history_keeps_the_last_30(tmp_path: Path) -> None:
    path = tmp_path / "ensemble_weights.json"
    for i in range(35):
        write_weights(path, _result({"lgbm": i / 100, "deep": 1 - i / 100}, at=f"t{i}"))
    history = read_json(path)["history"]
    assert len(history) == HISTORY_LENGTH
    assert [h["at"] for h in history] == [f"t{i}" for i in range(5, 35)]
    assert history[-1]["weights"]["lgbm"] == pytest.approx(0.34)


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "ensemble_weights.json"
    write_weights(path, _result({"lgbm": 0.7, "deep": 0.3}))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(levibot.io.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_weights(path, _result({"lgbm": 0.1, "deep": 0.9}))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tmp") == []


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("{not json", CorruptFileError, "not valid JSON"),
        ('{"weights": {"lgbm": "x"}}', CorruptFileError, "numbers for lgbm and deep"),
        ('{"weights": {"lgbm": -1, "deep": 2}}', CorruptFileError, "non-negative"),
        ('{"weights": {"lgbm": 1, "deep": 0}, "history": 3}', CorruptFileError, "history"),
        ("[1, 2]", CorruptFileError, "JSON object"),
    ],
)
def test_corrupt_previous_file_is_an_error(
    cfg: Settings, text: str, error: type[Exception], match: str
) -> None:
    path = Paths.of(cfg).ensemble_weights
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(error, match=match) as info:
        run_tuning(cfg, now=NOW, policy=POLICY)
    assert str(path) in str(info.value)
    with pytest.raises(error):
        write_weights(path, _result({"lgbm": 0.5, "deep": 0.5}))
    assert path.read_text() == text  # never silently reset


def test_bad_arguments(cfg: Settings) -> None:
    for kwargs in ({"days": 0}, {"days": float("nan")}, {"alpha": 1.5}, {"role": "x"}):
        with pytest.raises(TuningError):
            _tune(cfg, **kwargs)


def test_policy_comes_from_the_registry(cfg: Settings) -> None:
    with pytest.raises(Exception, match="file not found"):
        tune_weights(cfg, now=NOW)
    bootstrap_prod(Paths.of(cfg).registry, _policy_entry(cfg), reason="first")
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    assert tune_weights(cfg, now=NOW).w_opt == 1.0
    with pytest.raises(TuningError, match="no candidate release"):
        tune_weights(cfg, now=NOW, role="candidate")


# ------------------------------------------------------------------------- bounds


def test_bounds() -> None:
    assert smooth(1.0, 1.0) == {"lgbm": 1.0, "deep": 0.0}
    assert smooth(0.0, 0.0) == {"lgbm": 0.0, "deep": 1.0}
    assert smooth(1.0, 1.0, alpha=1.0)["lgbm"] == 1.0
    assert best_weight({w: 0.0 for w in tuning.WEIGHT_GRID}) == 0.5
    assert best_weight({0.45: 1.0, 0.55: 1.0, 1.0: 0.5}) == 0.45


@hyp_settings(max_examples=200, deadline=None)
@given(
    w_opt=st.sampled_from(tuning.WEIGHT_GRID),
    w_prev=st.floats(0.0, 1.0),
    alpha=st.floats(0.0, 1.0),
)
def test_weights_sum_to_one_within_bounds(w_opt: float, w_prev: float, alpha: float) -> None:
    weights = smooth(w_opt, w_prev, alpha)
    assert set(weights) == {"lgbm", "deep"}
    assert all(0.0 <= v <= 1.0 for v in weights.values())
    assert weights["lgbm"] + weights["deep"] == pytest.approx(1.0, abs=1e-12)
    low, high = sorted((w_opt, w_prev))
    assert low - 1e-12 <= weights["lgbm"] <= high + 1e-12


@hyp_settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=21, max_size=21))
def test_best_weight_is_a_grid_point_with_top_sharpe(sharpes: list[float]) -> None:
    by_w = dict(zip(tuning.WEIGHT_GRID, sharpes, strict=True))
    w = best_weight(by_w)
    assert w in tuning.WEIGHT_GRID and 0.0 <= w <= 1.0
    assert by_w[w] >= max(sharpes) - 1e-8


# ---------------------------------------------------------------------------- CLI


def _policy_entry(cfg: Settings) -> ModelEntry:
    """A prod entry carrying the test POLICY (its artifacts are small real files)."""
    return make_entry(
        cfg.registry_dir, "m1", entry=POLICY.entry_threshold, exit_=POLICY.exit_threshold,
        fee_bps=POLICY.fee_bps, slippage_bps=POLICY.slippage_bps, symbols=SYMBOLS,
    )  # fmt: skip


@pytest.fixture
def env_file(cfg: Settings, tmp_path: Path) -> Path:
    env = tmp_path / "env.yaml"
    env.write_text("symbols: BTCUSDT,ETHUSDT\ntimeframe: 15m\n")
    assert load_settings(env).registry_dir == cfg.registry_dir
    bootstrap_prod(Paths.of(cfg).registry, _policy_entry(cfg), reason="first")
    return env


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_cli_tune(cfg: Settings, env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    args = ["tune", "--env-file", str(env_file), "--now", NOW.isoformat()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "weights: lgbm=0.650 deep=0.350" in out
    assert "w_opt: 1.00" in out and f"aligned rows: {2 * (N_BARS - 1)}" in out
    assert "reason: tuned on" in out
    assert read_json(Paths.of(cfg).ensemble_weights)["weights"]["lgbm"] == pytest.approx(0.65)

    assert main([*args, "--json", "--days", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["weights"]["lgbm"] == pytest.approx(0.3 + 0.7 * 0.65)
    assert data["w_opt"] == 1.0 and data["kept_previous"] is False
    assert set(data["sharpe_by_w"]) == {f"{w:.2f}" for w in tuning.WEIGHT_GRID}


def test_cli_tune_min_data_is_not_an_error(
    cfg: Settings, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tune", "--env-file", str(env_file), "--now", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "kept previous: yes" in out and "w_opt: n/a" in out
    assert "weights: lgbm=0.500 deep=0.500" in out and "kept default" in out


def test_cli_tune_errors(
    cfg: Settings, env_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Paths.of(cfg).ensemble_weights
    path.write_text("{broken")
    assert main(["tune", "--env-file", str(env_file)]) == 2
    _one_error_line(capsys, "ensemble_weights.json", "not valid JSON")
    path.write_text('{"weights": {"lgbm": "x", "deep": 1}}')
    assert main(["tune", "--env-file", str(env_file)]) == 2
    _one_error_line(capsys, "ensemble_weights.json")
    path.unlink()
    assert main(["tune", "--env-file", str(env_file), "--days", "-1"]) == 2
    _one_error_line(capsys, "days must be a positive number")
    missing = tmp_path / "nope.json"
    assert main(["tune", "--env-file", str(env_file), "--registry", str(missing)]) == 2
    _one_error_line(capsys, "nope.json", "file not found")
    assert main(["tune", "--env-file", str(env_file), "--now", "yesterday-ish"]) == 2
    assert "not an ISO timestamp" in capsys.readouterr().err


def test_rows_of_an_earlier_release_in_the_same_role_are_left_out() -> None:
    base = {"role": "prod", "symbol": "BTCUSDT", "bar_time": pd.Timestamp("2026-01-01", tz="UTC")}
    rows = pd.DataFrame([
        {**base, "ts": 1, "endpoint": LGBM_ENDPOINT, "p_up": 0.6, "model_id": "old"},
        {**base, "ts": 2, "endpoint": DEEP_ENDPOINT, "p_up": 0.4, "model_id": "old"},
        {**base, "ts": 3, "endpoint": LGBM_ENDPOINT, "p_up": 0.7, "model_id": "new"},
    ])  # fmt: skip
    assert len(align_predictions(rows, "prod")) == 1  # without a model id: old and new mixed
    assert align_predictions(rows, "prod", "new").empty  # the new release has no deep row
    assert align_predictions(rows, "prod", "old")["p_lgbm"].tolist() == [0.6]


def test_cli_tune_registry_option_pairs_that_registrys_release(
    cfg: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--registry X: X's policy and X's prod id (the logs are m1's), not the settings'."""
    env = tmp_path / "env.yaml"
    env.write_text("symbols: BTCUSDT,ETHUSDT\ntimeframe: 15m\n")
    other_id = make_entry(cfg.registry_dir, "m2", symbols=SYMBOLS)
    bootstrap_prod(Paths.of(cfg).registry, other_id, reason="the settings' registry")
    elsewhere = tmp_path / "elsewhere" / "model_registry.json"
    entry = make_entry(
        elsewhere.parent, "m1", entry=POLICY.entry_threshold, exit_=POLICY.exit_threshold,
        fee_bps=POLICY.fee_bps, slippage_bps=POLICY.slippage_bps, symbols=SYMBOLS,
    )  # fmt: skip
    bootstrap_prod(elsewhere, entry, reason="another registry")
    p_lgbm, p_deep = _scenario(cfg, lgbm_good=True)
    _log(cfg, _paired_records(p_lgbm, p_deep))
    args = ["tune", "--env-file", str(env), "--now", NOW.isoformat(), "--json"]
    assert main([*args, "--registry", str(elsewhere)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["aligned_rows"] == 2 * (N_BARS - 1) and data["kept_previous"] is False
    assert Paths.of(cfg, registry=elsewhere).ensemble_weights.exists()  # beside X
    assert main(args) == 0  # the settings' registry: m2 logged nothing
    assert json.loads(capsys.readouterr().out)["aligned_rows"] == 0


def test_cli_tune_days_default_comes_from_the_settings(
    cfg: Settings, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file.write_text(env_file.read_text() + "tuning_days: 0.5\n")
    assert main(["tune", "--env-file", str(env_file), "--now", NOW.isoformat()]) == 0
    assert "last 0.5 day(s)" in capsys.readouterr().out
