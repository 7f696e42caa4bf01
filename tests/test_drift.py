"""Feature drift: PSI/KS units, statuses, the stored reference and the scheduled check."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from levibot.calendar import calendar_named
from levibot.cli import main
from levibot.drift import (
    CRITICAL,
    EPSILON,
    INSUFFICIENT,
    MISSING_FEATURE,
    NO_DATA,
    OK,
    REFERENCE_UNREADABLE,
    WARNING,
    DriftError,
    DriftThresholds,
    bin_proportions,
    check_drift,
    fit_reference,
    ks_statistic,
    load_reference,
    newest_reference,
    psi,
    psi_bins,
    reference_release,
    release_reference,
    run_drift_check,
    save_reference,
)
from levibot.features import FEATURES
from levibot.ingest import run_ingest
from levibot.io import CorruptFileError
from levibot.online.audit import AuditLog
from levibot.online.killswitch import KillSwitch
from levibot.registry import ModelEntry, bootstrap_prod, load_registry, register_candidate
from levibot.settings import Settings, load_settings
from levibot.state.drift_log import drift_history
from levibot.state.paths import Paths
from tests.factories import make_entry

END = pd.Timestamp("2026-01-15T00:00:00Z")
DRIFT_START = END - pd.Timedelta(days=1)


def _frame(columns: dict[str, np.ndarray], start: str = "2026-01-01") -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    index = pd.date_range(start, periods=n, freq="15min", tz="UTC", name="timestamp")
    return pd.DataFrame(columns, index=index)


def _sample(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=n)
    if kind == "lognormal":
        return rng.lognormal(sigma=2.0, size=n)
    if kind == "ties":  # heavy ties collapse quantile edges
        return rng.integers(0, 4, size=n).astype(float)
    values = rng.normal(size=n)  # "nan": a third missing
    values[rng.random(n) < 0.33] = np.nan
    return values


def _prod_entry(base: Path) -> ModelEntry:
    """A prod entry whose training window is days 7..2 before END."""
    train = ((END - pd.Timedelta(days=7)).isoformat(), (END - pd.Timedelta(days=2)).isoformat())
    return make_entry(base, "prod-1", features=FEATURES, train=train)


# ------------------------------------------------------------------------ PSI / KS


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["normal", "lognormal", "ties", "nan"]),
    n=st.integers(2000, 20_000),
    seed=st.integers(0, 2**32 - 1),
    bins=st.integers(2, 20),
)
def test_psi_and_ks_of_a_sample_against_itself_are_zero(kind, n, seed, bins) -> None:
    values = _sample(kind, n, seed)
    frame = _frame({"x": values})
    result = check_drift(fit_reference(frame, ["x"], bins=bins), frame)
    assert result.features["x"].psi < 0.01
    assert result.features["x"].ks == pytest.approx(0.0, abs=1e-12)
    assert result.status == OK


def test_psi_hand_computed() -> None:
    reference = np.arange(1.0, 9.0)  # 1..8; quartile edges (linear) 2.75, 4.5, 6.25
    edges = psi_bins(reference, bins=4)
    np.testing.assert_allclose(edges, [2.75, 4.5, 6.25])
    ref_props = bin_proportions(reference, edges)
    np.testing.assert_allclose(ref_props, [0.25] * 4)
    current = np.array([1, 1, 1, 3, 5, 7, 7, 8.0])
    cur_props = bin_proportions(current, edges)
    np.testing.assert_allclose(cur_props, [3 / 8, 1 / 8, 1 / 8, 3 / 8])
    expected = 2 * (0.375 - 0.25) * math.log(1.5) + 2 * (0.125 - 0.25) * math.log(0.5)
    assert psi(ref_props, cur_props) == pytest.approx(expected)  # 0.2746531
    # a value equal to an edge goes to the bin on its right (side="right")
    np.testing.assert_allclose(bin_proportions(np.array([4.5]), edges), [0, 0, 1, 0])


def test_psi_empty_bin_uses_epsilon_on_both_sides() -> None:
    assert EPSILON == 1e-4
    edges = psi_bins(np.arange(1.0, 11.0), bins=2)  # median 5.5
    np.testing.assert_allclose(edges, [5.5])
    ref_props = np.array([0.5, 0.5])
    cur_props = bin_proportions(np.array([6.0, 7, 8, 9]), edges)  # bin 0 empty
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi(ref_props, cur_props) == pytest.approx(expected)  # 4.2577...
    # an empty bin on the reference side is treated the same way
    assert psi(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0


@pytest.mark.parametrize("kind", ["normal", "lognormal", "ties"])
@pytest.mark.parametrize("shift", [0.0, 0.3, 2.0])
def test_ks_equals_scipy(kind: str, shift: float) -> None:
    ref = np.sort(_sample(kind, 3000, 1).astype(np.float32))
    cur = np.sort((_sample(kind, 700, 2) + shift).astype(np.float32))
    expected = ks_2samp(ref, cur).statistic
    assert ks_statistic(ref, cur) == pytest.approx(expected, abs=1e-12)
    # in time order the samples are shuffled (sorted values would be a persistent
    # series, which the check monitors by its changes)
    rng = np.random.default_rng(7)
    frame = _frame({"x": rng.permutation(cur).astype(np.float64)})
    stats = fit_reference(_frame({"x": rng.permutation(ref).astype(np.float64)}), ["x"])
    assert stats.methods == {"x": "level"}
    assert check_drift(stats, frame).features["x"].ks == pytest.approx(expected, abs=1e-12)


def test_ks_counts_repeated_infinities_as_one_value() -> None:
    values = np.random.default_rng(3).normal(size=1000)
    values[:200] = np.inf
    ordered = np.sort(values)
    assert ks_2samp(ordered, ordered).statistic == 0.0
    assert ks_statistic(ordered, ordered) == 0.0
    shifted = np.sort(np.where(np.isinf(values), -np.inf, values + 0.1))
    assert ks_statistic(ordered, shifted) == pytest.approx(ks_2samp(ordered, shifted).statistic)


def test_ks_one_sided_cases() -> None:
    ref = np.arange(10.0)
    assert ks_statistic(ref, ref + 100) == 1.0
    assert ks_statistic(ref, ref - 100) == 1.0
    assert math.isnan(ks_statistic(ref, np.empty(0)))


# ---------------------------------------------------------------------- statuses


@pytest.fixture(scope="module")
def reference_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return _frame({name: rng.normal(size=5000) for name in ("a", "b", "c")})


def _current(shifts: dict[str, float], n: int = 2000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return _frame({name: rng.normal(size=n) + shifts.get(name, 0.0) for name in "abc"})


def test_shift_crosses_warning_then_critical(reference_frame: pd.DataFrame) -> None:
    stats = fit_reference(reference_frame, ["a", "b", "c"])
    result = check_drift(stats, _current({"b": 0.5, "c": 1.5}))
    a, b, c = (result.features[name] for name in "abc")
    assert a.status == OK and a.psi < 0.05 and a.ks < 0.05
    assert b.status == WARNING and (b.psi > 0.2 or b.ks > 0.15)
    assert c.status == CRITICAL and c.psi > 0.3 and c.ks > 0.25
    assert result.critical_features == ["c"] and result.warning_features == ["b"]
    # one feature beyond its limit is a warning overall; two at once are critical
    assert result.status == WARNING
    assert "only c beyond its critical limit" in result.reasons[0]
    assert check_drift(stats, _current({"b": 1.5, "c": 1.5})).status == CRITICAL
    single = DriftThresholds(min_critical_features=1)
    assert check_drift(stats, _current({"c": 1.5}), single).status == CRITICAL
    # the thresholds are data: loosen them and the same drift is only a warning
    loose = DriftThresholds(psi_critical=10.0, psi_cap=10.0, ks_critical=0.9, ks_cap=0.9)
    both = check_drift(stats, _current({"b": 1.5, "c": 1.5}), loose)
    assert both.status == WARNING and both.critical_features == []
    assert check_drift(stats, _current({})).status == OK


def test_overall_is_the_worst_and_json_ready(reference_frame: pd.DataFrame) -> None:
    stats = fit_reference(reference_frame, ["a", "b", "c"])
    result = check_drift(stats, _current({"a": 0.5}), timestamp="2026-01-02T00:00:00Z")
    assert result.status == WARNING and result.exit_code == 1
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["status"] == WARNING and data["timestamp"].startswith("2026-01-02T00:00:00")
    assert data["rows"] == 2000 and data["reference"]["rows"] == 5000
    assert data["window"]["start"].startswith("2026-01-01")
    assert set(data["features"]) == {"a", "b", "c"}
    assert data["thresholds"]["psi_critical"] == 0.3


def test_insufficient_data_is_never_a_pass(reference_frame: pd.DataFrame) -> None:
    stats = fit_reference(reference_frame, ["a", "b", "c"])
    result = check_drift(stats, _current({}, n=47))
    assert result.status == INSUFFICIENT and result.exit_code == 3
    assert "min_rows" in result.reasons[0]
    assert check_drift(stats, _current({}, n=0)).status == INSUFFICIENT
    assert (
        check_drift(stats, _current({}, n=10), DriftThresholds(min_rows=5)).status != INSUFFICIENT
    )


def test_all_nan_feature_is_no_data(reference_frame: pd.DataFrame) -> None:
    ref = reference_frame.assign(d=np.nan)
    stats = fit_reference(ref, ["a", "b", "c", "d"])
    assert stats.n["d"] == 0 and stats.nan_share["d"] == 1.0
    current = _current({}).assign(d=np.nan)
    result = check_drift(stats, current)
    d = result.features["d"]
    assert d.status == NO_DATA and d.psi is None and d.ks is None
    assert d.nan_share_current == 1.0
    assert result.status == OK  # a feature with no reference data cannot drift
    # a feed that had data in the reference and died now is a dead feed: critical
    current_dead_b = _current({}).assign(b=np.nan, d=np.nan)
    result = check_drift(stats, current_dead_b)
    assert result.features["b"].status == CRITICAL
    assert result.features["b"].dead_feed == "b missing for the last 2000 bars"
    assert result.status == CRITICAL and result.dead_features == ["b"]
    # a few NaN at the end are not a dead feed (the reference's longest NaN run is 0)
    short_gap = _current({}).assign(d=np.nan)
    short_gap.iloc[-3:, 1] = np.nan
    assert check_drift(stats, short_gap).features["b"].dead_feed is None
    # too few rows and no dead feed: insufficient, not ok
    assert check_drift(stats, _current({}, n=3).assign(d=np.nan)).status == INSUFFICIENT


def test_missing_column_is_a_named_critical_status(reference_frame: pd.DataFrame) -> None:
    stats = fit_reference(reference_frame, ["a", "b", "c"])
    result = check_drift(stats, _current({}).drop(columns="c"))
    assert result.features["c"].status == MISSING_FEATURE and result.features["c"].psi is None
    assert result.status == CRITICAL
    assert result.reasons == ["features missing from the current rows: c"]
    with pytest.raises(ValueError, match="lacks feature columns"):
        fit_reference(reference_frame, ["a", "zz"])  # at fit time it is a programming error


def test_reference_round_trip(tmp_path: Path, reference_frame: pd.DataFrame) -> None:
    ref = reference_frame.assign(d=np.nan)
    stats = fit_reference(ref, ["a", "b", "c", "d"], bins=7)
    assert stats.source is None  # fitted from bare rows: no release behind it
    stats.source = "cand-1"
    path = save_reference(tmp_path / "models" / "reference.npz", stats)
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert "meta" in data.files
    loaded = load_reference(path)
    assert loaded.features == stats.features and loaded.bins == 7 and loaded.rows == 5000
    assert loaded.window_start == stats.window_start and loaded.n == stats.n
    assert loaded.source == "cand-1"
    for name in stats.features:
        np.testing.assert_array_equal(loaded.inner_edges[name], stats.inner_edges[name])
        np.testing.assert_array_equal(loaded.proportions[name], stats.proportions[name])
        np.testing.assert_array_equal(loaded.sorted_values[name], stats.sorted_values[name])
        assert loaded.sorted_values[name].dtype == np.float32
    current = _current({"c": 1.0}).assign(d=np.nan)
    assert (
        check_drift(loaded, current).to_dict()["features"]
        == (check_drift(stats, current).to_dict()["features"])
    )
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match=r"bad\.npz"):
        load_reference(bad)


# ------------------------------------------------------------ the scheduled check


def _settings(root: Path, monkeypatch: pytest.MonkeyPatch, scenario: str = "none") -> Settings:
    for name in [n for n in os.environ if n.startswith("LEVIBOT_")]:
        monkeypatch.delenv(name)
    extra = {} if scenario == "none" else {"drift_start": DRIFT_START.isoformat()}
    return load_settings(
        None,
        root=root,
        symbols="BTCUSDT,ETHUSDT",
        days=10,
        end=END.isoformat(),
        seed=3,
        drift_scenario=scenario,
        **extra,
    )


def _ingest_with_reference(settings: Settings) -> Path:
    """Ingest the window and store a reference fitted on days 3..8 (before any drift)."""
    run_ingest(settings, now=END)
    store = Paths.of(settings).store()
    start, stop = END - pd.Timedelta(days=7), END - pd.Timedelta(days=2)
    frames = {
        symbol: frame[(frame.index >= start) & (frame.index < stop)]
        for symbol, frame in ((s, store.read(s)) for s in settings.symbols)
    }
    reference = fit_reference(frames, window_bars=96)  # a 24h current window of 15m bars
    return save_reference(settings.data_dir / "reference.npz", reference)


def _switch(settings: Settings) -> KillSwitch:
    return KillSwitch(settings.data_dir / "serving" / "kill_switch.json")


def _audit(settings: Settings) -> AuditLog:
    return AuditLog(settings.data_dir / "serving" / "audit.jsonl")


# Features the scenario moves while the same seed's undrifted market leaves them 'ok'.
SCENARIO_FEATURES = {
    "vol_shock": ["ret_1", "ret_3"],
    "feature_freeze": ["oi_chg_3", "ob_imb"],
}


@pytest.mark.parametrize("scenario", ["vol_shock", "feature_freeze"])
def test_drift_scenario_is_critical_and_trips_the_kill_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    settings = _settings(tmp_path, monkeypatch, scenario)
    reference = _ingest_with_reference(settings)
    assert not _switch(settings).is_on()
    result = run_drift_check(settings, reference_path=reference)
    assert result.rows == 2 * 96 and result.window_end == END.isoformat()
    assert result.status == CRITICAL
    assert set(SCENARIO_FEATURES[scenario]) <= set(result.critical_features)
    state = _switch(settings).state()
    assert state.enabled and state.actor == "drift-check"
    assert all(name in state.reason for name in SCENARIO_FEATURES[scenario])
    (entry,) = _audit(settings).entries()
    assert entry["action"] == "drift_kill_switch_on" and entry["actor"] == "drift-check"
    assert entry["details"]["features"] == result.critical_features
    assert entry["details"]["already_on"] is False
    # report and latest.json written; the history keeps one file per check
    latest = json.loads((settings.registry_dir / "drift" / "latest.json").read_text())
    assert latest["status"] == CRITICAL and latest["kill_switch"] == "turned_on"
    assert latest["reference_file"] == str(reference)
    run_drift_check(settings, reference_path=reference, now=END - pd.Timedelta(hours=1))
    history = drift_history(Paths.of(settings))
    assert len(history) == 2
    assert _audit(settings).entries()[-1]["details"]["already_on"] is True


def test_no_scenario_leaves_the_scenario_features_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "none")
    result = run_drift_check(settings, reference_path=_ingest_with_reference(settings))
    for name in (name for names in SCENARIO_FEATURES.values() for name in names):
        assert result.features[name].status == OK, name


def test_no_scenario_is_not_critical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch, "none")
    result = run_drift_check(settings, reference_path=_ingest_with_reference(settings))
    assert result.status != CRITICAL


def test_reference_fitted_from_the_prod_training_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "feature_freeze")
    stored = load_reference(_ingest_with_reference(settings))
    with pytest.raises(DriftError, match="no prod model"):
        run_drift_check(settings)
    registry = settings.registry_dir / "model_registry.json"
    bootstrap_prod(registry, _prod_entry(registry.parent), reason="t")
    result = run_drift_check(settings, now=END)
    assert result.extra["reference_model"] == "prod-1"
    assert result.reference_rows == stored.rows  # same window, same rows
    assert set(SCENARIO_FEATURES["feature_freeze"]) <= set(result.critical_features)
    # the current window ends at `now` (floored to the bar grid)
    early = run_drift_check(settings, now=END - pd.Timedelta(days=3, minutes=5))
    assert early.window_end == (END - pd.Timedelta(days=3, minutes=15)).isoformat()
    assert early.status != INSUFFICIENT


def test_a_registered_candidate_is_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a marathon the checks compare with the candidate's (newer) training
    window: a rollback returns to prod, so drift from prod's window alone cannot be a
    reason for one."""
    settings = _settings(tmp_path, monkeypatch, "none")
    run_ingest(settings, now=END)
    registry = settings.registry_dir / "model_registry.json"
    prod = _prod_entry(registry.parent)
    bootstrap_prod(registry, prod, reason="t")
    assert reference_release(load_registry(registry)) == ("prod", prod)
    window = ((END - pd.Timedelta(days=4)).isoformat(), (END - pd.Timedelta(days=1)).isoformat())
    candidate = make_entry(registry.parent, "cand-1", features=FEATURES, train=window)
    register_candidate(registry, candidate, reason="t")
    assert reference_release(load_registry(registry)) == ("candidate", candidate)

    result = run_drift_check(settings, now=END)
    assert (result.extra["reference_model"], result.extra["reference_role"]) == (
        "cand-1",
        "candidate",
    )
    expected = release_reference(settings, candidate, current_hours=result.extra["current_hours"])
    assert result.reference_rows == expected.rows and expected.source == "cand-1"
    assert expected.rows != release_reference(settings, prod).rows  # 3 days, not 5
    assert newest_reference(settings).rows == expected.rows


def test_bad_inputs_get_named_statuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch, "none")
    reference = _ingest_with_reference(settings)
    # a corrupt reference file: a named status and a report, the kill switch untouched
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(reference.read_bytes()[:200])
    result = run_drift_check(settings, reference_path=corrupt)
    assert result.status == REFERENCE_UNREADABLE and result.exit_code == 4
    assert "refit it" in result.reasons[0] and str(tmp_path) not in result.reasons[0]
    latest = json.loads((settings.registry_dir / "drift" / "latest.json").read_text())
    assert latest["status"] == REFERENCE_UNREADABLE
    assert not _switch(settings).is_on()
    # a window shorter than min_rows: insufficient, never ok
    short = run_drift_check(
        settings, reference_path=reference, thresholds=DriftThresholds(min_rows=10_000)
    )
    assert short.status == INSUFFICIENT
    # a feature missing from the current rows: named, and critical (its feed is gone)
    loaded = load_reference(reference)
    store = Paths.of(settings).store()
    frames = {s: store.read(s).drop(columns="ob_imb").iloc[-96:] for s in settings.symbols}
    missing = check_drift(loaded, frames)
    assert missing.features["ob_imb"].status == MISSING_FEATURE
    assert missing.status == CRITICAL and "ob_imb" in missing.reasons[-1]


def test_a_stalled_feed_is_a_dead_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch, "none")
    reference = _ingest_with_reference(settings)
    # the check runs 2 h after the newest stored bar: 8 bars never arrived
    result = run_drift_check(settings, reference_path=reference, now=END + pd.Timedelta(hours=2))
    assert result.status == CRITICAL
    assert "dead feed: BTCUSDT has no new bar for 8 bars" in result.reasons
    # an FX market closed for the weekend has no missing bar: 2026-01-17 is a Saturday
    fx = settings.model_copy(update={"market_calendar": "fx"})
    loaded = load_reference(reference)
    store = Paths.of(settings).store()
    friday_close = pd.Timestamp("2026-01-16T22:00:00Z")
    frames = {
        s: store.read(s).set_axis(store.read(s).index + (friday_close - END), axis=0)
        for s in settings.symbols
    }
    weekend = check_drift(
        loaded,
        {s: f.iloc[-96:] for s, f in frames.items()},
        window_end=friday_close + pd.Timedelta(hours=30),
        bar=pd.Timedelta(minutes=15),
        calendar=calendar_named(fx.market_calendar),
    )
    assert not any("no new bar" in reason for reason in weekend.reasons)


def test_thresholds_are_stored_per_feature_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, monkeypatch, "none")
    result = run_drift_check(settings, reference_path=_ingest_with_reference(settings))
    report = json.loads((settings.registry_dir / "drift" / "latest.json").read_text())
    ret_1 = report["features"]["ret_1"]
    threshold_keys = {k for k in ret_1 if "threshold" in k}
    assert {"psi_critical_threshold", "ks_critical_threshold"} <= threshold_keys
    assert ret_1["psi_critical_threshold"] >= result.thresholds.psi_critical  # the floor
    assert report["features"]["ema_200"]["method"] in {"change", "change2"}
    assert report["features"]["ret_1"]["method"] == "level"


# --------------------------------------------------------------------------- CLI


def test_cli_drift_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, monkeypatch, "vol_shock")
    reference = _ingest_with_reference(settings)
    env = tmp_path / "env.yaml"
    env.write_text(
        "symbols: [BTCUSDT, ETHUSDT]\ndays: 10\nseed: 3\n"
        f"end: '{END.isoformat()}'\ndrift_scenario: vol_shock\n"
    )
    base = ["drift", "--env-file", str(env), "--reference", str(reference)]
    # critical -> 2, with a readable table naming the overall status
    assert main(base) == 2
    out = capsys.readouterr().out
    assert "overall: CRITICAL" in out and "ret_3" in out
    # an early window (before the shock) is not critical; --json prints the result
    code = main([*base, "--now", "2026-01-12T00:00:00Z", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == {"ok": 0, "warning": 1, "critical": 2}[data["status"]]
    assert data["current_hours"] == 24.0  # the settings' drift_current_hours by default
    env.write_text(env.read_text() + "drift_current_hours: 12\n")
    main([*base, "--now", "2026-01-12T00:00:00Z", "--json"])
    assert json.loads(capsys.readouterr().out)["current_hours"] == 12.0
    # a window too short for min_rows (48) bars is stretched to 48 bars (12 h at 15 m)
    main([*base, "--hours", "2", "--json"])
    assert json.loads(capsys.readouterr().out)["current_hours"] == 12.0
    # errors: one line, exit 2, no JSON on stdout
    assert main(["drift", "--env-file", str(env), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and "no prod model" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*base, "--now", "yesterday-ish"]) == 2
    assert "not an ISO timestamp" in capsys.readouterr().err
    assert main([*base, "--help"]) == 0
    assert "3 insufficient data" in capsys.readouterr().out
