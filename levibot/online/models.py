"""A registry entry loaded for serving: both models, their calibrators and the policy.

Everything is verified (sha256) before it is used; a release either loads whole or
raises, so the server can keep serving the last good one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from levibot.io import read_json
from levibot.models.calibration import Calibrator
from levibot.models.deep import DeepModel, summarise_mc
from levibot.models.lgbm import LgbmModel
from levibot.policy import Policy
from levibot.registry import ModelEntry, verify_artifacts


@dataclass
class LoadedRelease:
    """prod or candidate, ready to predict."""

    role: str
    entry: ModelEntry
    lgbm: LgbmModel
    deep: DeepModel
    calibrators: dict[str, Calibrator]

    @property
    def model_id(self) -> str:
        return self.entry.id

    @property
    def policy(self) -> Policy:
        p = self.entry.policy
        return Policy(p.entry_threshold, p.exit_threshold, p.fee_bps, p.slippage_bps)

    @property
    def history_needed(self) -> int:
        """Feature rows a prediction needs (the transformer's sequence length)."""
        return self.deep.config.seq_len

    def ece(self, kind: str = "lgbm") -> float:
        return float(self.entry.models[kind].calibration.ece_calibrated)

    def predict_lgbm(self, rows: pd.DataFrame) -> float:
        """Calibrated P(up) for the newest row."""
        raw = self.lgbm.predict(rows.iloc[-1:])
        return float(self.calibrators["lgbm"].transform(raw)[0])

    def deep_samples(self, rows: pd.DataFrame, *, n_samples: int, seed: int) -> dict:
        """The raw MC-dropout draw for the newest row (see `DeepModel.mc_samples`)."""
        return self.deep.mc_samples(self.deep.latest_window(rows), n_samples=n_samples, seed=seed)

    def deep_from_samples(self, samples: dict, n_samples: int) -> dict[str, float]:
        """Calibrated MC-mean P(up), mu and the uncertainty split over the first
        `n_samples` samples of a draw."""
        out = summarise_mc(samples, n_samples)
        p_up = float(self.calibrators["deep"].transform(out["p_up"])[0])
        return {
            "p_up": p_up,
            "mu": float(out["mu"][0]),
            "epistemic": float(np.sqrt(out["epistemic"][0])),
            "aleatoric": float(np.sqrt(out["aleatoric"][0])),
        }

    def predict_deep(self, rows: pd.DataFrame, *, n_samples: int, seed: int) -> dict[str, float]:
        """Calibrated MC-mean P(up), mu and the uncertainty split, for the newest row."""
        samples = self.deep_samples(rows, n_samples=n_samples, seed=seed)
        return self.deep_from_samples(samples, n_samples)


def _resolve(base: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else base / path


def load_release(entry: ModelEntry, base_dir: Path, role: str) -> LoadedRelease:
    """Verify every artifact of `entry`, then load the models and calibrators."""
    verify_artifacts(entry, base_dir)
    missing = {"lgbm", "deep"} - set(entry.models)
    if missing:
        raise ValueError(f"model {entry.id} lacks {sorted(missing)} models")
    calibrators = {}
    for kind, spec in entry.models.items():
        ref = spec.calibration.artifact
        calibrators[kind] = (
            Calibrator.from_dict(read_json(_resolve(base_dir, ref.path)))
            if ref
            else Calibrator("none")
        )
    return LoadedRelease(
        role=role,
        entry=entry,
        lgbm=LgbmModel.load(_resolve(base_dir, entry.models["lgbm"].artifacts["model"].path)),
        deep=DeepModel.load(_resolve(base_dir, entry.models["deep"].artifacts["model"].path)),
        calibrators=calibrators,
    )
