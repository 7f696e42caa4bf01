"""calibrate_and_register on hand-made training runs: calibration, sweep, registration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from levibot.models.calibration import Calibrator
from levibot.registry import RegistryError, load_registry, verify_artifacts
from levibot.release import calibrate_and_register, calibrate_run
from levibot.state.paths import Paths
from levibot.training import save_runs

BAR = pd.Timedelta(minutes=15)


def fake_run(tmp_path, settings, role: str, kind: str, seed: int) -> dict:
    """A training run whose raw p_up is informative but overconfident."""
    rng = np.random.default_rng(seed)
    folder = settings.registry_dir / "artifacts" / kind / f"{role}-{seed}"
    folder.mkdir(parents=True)
    artifact = folder / "model.bin"
    artifact.write_bytes(rng.bytes(64))
    frames = []
    start = pd.Timestamp("2026-01-01", tz="UTC")
    for window, offset in (("calibration", 0), ("test", 3000)):
        index = pd.date_range(start + offset * BAR, periods=2000, freq=BAR, name="timestamp")
        for symbol in ("BTCUSDT", "ETHUSDT"):
            true_p = rng.uniform(0.35, 0.65, len(index))
            y = (rng.uniform(size=len(index)) < true_p).astype(float)
            raw = 1 / (1 + np.exp(-3 * np.log(true_p / (1 - true_p))))
            bar_return = (2 * y - 1) * 0.002  # returns that agree with the label
            frames.append(pd.DataFrame({
                "symbol": symbol, "window": window, "label_direction": y,
                "fwd_ret": bar_return, "bar_return": np.roll(bar_return, 1), "p_raw": raw,
            }, index=index))  # fmt: skip
    predictions = pd.concat(frames).sort_index(kind="stable")
    predictions_path = folder / "predictions.parquet"
    predictions.to_parquet(predictions_path)
    split = {
        "train": {"start": "2025-12-01T00:00:00+00:00", "end": "2025-12-31T00:00:00+00:00"},
        "calibration": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-21T00:00:00+00:00"},
        "test": {"start": "2026-01-31T06:00:00+00:00", "end": "2026-02-21T06:00:00+00:00"},
        "purge": "0 days 00:45:00",
    }
    return {
        "kind": kind, "role": role, "data_end": "2026-02-22T00:00:00+00:00", "split": split,
        "artifact": str(artifact), "predictions": str(predictions_path),
        "features": ["ret_1", "ret_3"],
        "metrics": {"test": {"auc": 0.6, "brier": 0.24, "log_loss": 0.67, "n": 4000.0}},
    }  # fmt: skip


def run_files(tmp_path, settings, roles, seed=0):
    files = []
    for kind in ("lgbm", "deep"):
        runs = [fake_run(tmp_path, settings, role, kind, seed + i) for i, role in enumerate(roles)]
        files.append(save_runs(tmp_path / f"{kind}-{seed}.json", runs))
    return files


def test_calibration_improves_test_ece_and_is_stored_as_json(tmp_path, settings):
    run = fake_run(tmp_path, settings, "candidate", "lgbm", seed=1)
    model = calibrate_run(run)
    assert model.calibration["ece_calibrated"] < model.calibration["ece_raw"] / 2
    stored = Calibrator.from_dict(json.loads(model.calibrator_path.read_text()))
    np.testing.assert_allclose(
        stored.transform(model.predictions["p_raw"]), model.predictions["p_cal"]
    )
    assert model.reliability["raw"]["count"].sum() == 4000


def test_empty_registry_gets_prod_then_candidate_and_later_only_a_candidate(tmp_path, settings):
    summary = tmp_path / "release.json"
    kwargs = {"fee_bps": 10.0, "slippage_bps": 5.0, "summary_path": summary, "reports": ["r.html"]}
    first = calibrate_and_register(
        settings, *run_files(tmp_path, settings, ["prod", "candidate"]), **kwargs
    )
    assert [r.role for r in first] == ["prod", "candidate"]
    registry = load_registry(Paths.of(settings).registry)
    assert registry.prod.id == first[0].entry.id and registry.candidate.id == first[1].entry.id
    for entry in (registry.prod, registry.candidate):
        verify_artifacts(entry, settings.registry_dir)
        lgbm = entry.models["lgbm"]
        assert lgbm.calibration.ece_calibrated < lgbm.calibration.ece_raw
        assert lgbm.metrics["policy_trade_count"] >= 1
        assert entry.policy.exit_threshold < entry.policy.entry_threshold
        assert entry.trades_per_48h >= 20  # what the gate needs, from the test window
        assert lgbm.metrics["policy_trades_per_48h"] == pytest.approx(entry.trades_per_48h)
        assert lgbm.metrics["policy_flat_total_return"] == 0.0  # baselines beside the policy
        assert "policy_buy_hold_sharpe" in lgbm.metrics
        assert {"pbo", "deflated_sharpe"} <= set(entry.lineage.extra["selection"])
    assert set(json.loads(summary.read_text())["releases"]) == {"prod", "candidate"}

    second = calibrate_and_register(
        settings, *run_files(tmp_path, settings, ["candidate"], seed=10), **kwargs
    )
    registry = load_registry(Paths.of(settings).registry)
    assert registry.prod.id == first[0].entry.id
    assert registry.candidate.id == second[0].entry.id
    assert [a.entry.id for a in registry.archive] == [first[1].entry.id]


def test_a_second_bootstrap_is_refused(tmp_path, settings):
    kwargs = {
        "fee_bps": 10.0,
        "slippage_bps": 5.0,
        "summary_path": tmp_path / "s.json",
        "reports": [],
    }
    calibrate_and_register(settings, *run_files(tmp_path, settings, ["prod"]), **kwargs)
    with pytest.raises(RegistryError, match="prod already set"):
        calibrate_and_register(settings, *run_files(tmp_path, settings, ["prod"], seed=5), **kwargs)


def test_a_release_that_fails_the_gate_registers_nothing(tmp_path, settings):
    """A trade minimum no policy can meet: the run names the release and the reason, and
    the registry (here: prod and candidate of an earlier run) is byte for byte as it was."""
    from levibot.registry import update_canary_policy
    from levibot.selection import SelectionError

    kwargs = {"summary_path": tmp_path / "s.json", "reports": []}
    calibrate_and_register(
        settings, *run_files(tmp_path, settings, ["prod", "candidate"]), **kwargs
    )
    registry_file = Paths.of(settings).registry
    before = registry_file.read_bytes()
    update_canary_policy(
        Paths.of(settings).canary_policy, thresholds={"gate": {"min_trades": 10**6}}
    )
    with pytest.raises(SelectionError, match=r"candidate: no threshold pair reaches"):
        calibrate_and_register(
            settings, *run_files(tmp_path, settings, ["candidate"], seed=7), **kwargs
        )
    assert registry_file.read_bytes() == before
