"""Registry entries for tests: real small artifact files, so sha256 checks run for real."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from levibot.registry import ModelEntry, artifact_ref


def _after(stamp: str, *, days: int) -> str:
    return (pd.Timestamp(stamp) + pd.Timedelta(days=days)).isoformat()


def make_entry(
    base: Path,
    model_id: str,
    *,
    entry: float = 0.55,
    exit_: float = 0.45,
    fee_bps: float = 5.0,
    slippage_bps: float = 2.0,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    features: Sequence[str] = ("ret_1", "ret_4", "vol_16"),
    train: tuple[str, str] = ("2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"),
) -> ModelEntry:
    """A two-model release whose artifacts are small files written under `base`/models."""
    models = {}
    for kind in ("lgbm", "deep"):
        folder = base / "models" / model_id
        folder.mkdir(parents=True, exist_ok=True)
        model_file = folder / f"{kind}.bin"
        model_file.write_bytes(f"{model_id}:{kind}".encode())
        calib_file = folder / f"{kind}.calib"
        calib_file.write_bytes(f"{model_id}:{kind}:calib".encode())
        models[kind] = {
            "kind": kind,
            "artifacts": {"model": artifact_ref(model_file, base).model_dump()},
            "features": list(features),
            "calibration": {
                "method": "isotonic",
                "ece_raw": 0.08,
                "ece_calibrated": 0.03,
                "artifact": artifact_ref(calib_file, base).model_dump(),
            },
            "metrics": {"sharpe": 1.1, "auc": 0.54},
        }
    return ModelEntry.model_validate(
        {
            "id": model_id,
            "models": models,
            "horizon": 3,
            "timeframe": "15m",
            "symbols": list(symbols),
            "policy": {
                "entry_threshold": entry,
                "exit_threshold": exit_,
                "fee_bps": fee_bps,
                "slippage_bps": slippage_bps,
            },
            "data_window": {
                "train_start": train[0],
                "train_end": train[1],
                "calib_start": train[1],
                "calib_end": _after(train[1], days=2),
                "test_start": _after(train[1], days=2),
                "test_end": _after(train[1], days=5),
            },
            "trained_at": "2026-01-10T01:00:00Z",
            "code_version": "abc1234",
            "lineage": {"pipeline_run": "run-1", "reports": ["reports/train.html"]},
        }
    )
