"""Where the serving state lives and what the endpoints are called.

Kept free of heavy imports (no torch, no models) so the tuner, the drift check and the
marathon tools can find the server's files without loading the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from levibot.settings import Settings

ENDPOINTS = {"lgbm": "/ml/predict", "deep": "/ml/predict_deep", "ensemble": "/ml/predict_ensemble"}
DEFAULT_WEIGHTS = {"lgbm": 0.5, "deep": 0.5}


@dataclass(frozen=True)
class ServingPaths:
    """Where one server keeps its state (all under the data directory)."""

    root: Path

    @classmethod
    def for_settings(cls, settings: Settings) -> ServingPaths:
        return cls(Path(settings.data_dir) / "serving")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def paper(self) -> Path:
        return self.root / "paper"

    @property
    def kill_switch(self) -> Path:
        return self.root / "kill_switch.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def marathon(self) -> Path:
        return self.root / "marathon.json"


def weights_path(settings: Settings) -> Path:
    """The ensemble weights the server hot-reloads."""
    return Path(settings.registry_dir) / "ensemble_weights.json"
