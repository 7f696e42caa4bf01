"""LightGBM direction classifier: pooled over symbols, early-stopped on a validation tail.

Saved in LightGBM's own text format plus a JSON sidecar (features in order, params,
data window, best iteration, sha256), never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from levibot.io import atomic_write
from levibot.models.artifacts import read_sidecar, write_sidecar

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": ["auc", "binary_logloss"],  # stop on AUC: rank quality, blind to base rates
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "verbose": -1,
}


@dataclass
class LgbmModel:
    """A trained booster with the feature order it expects."""

    booster: lgb.Booster
    features: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    evals: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw P(up) for rows of `frame` (NaN features are handled by the trees)."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise KeyError(f"rows lack model features {missing}")
        return self.booster.predict(frame[self.features].to_numpy(dtype=float))

    def importance(self) -> pd.Series:
        gain = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.features).sort_values(ascending=False)

    def save(self, path: Path | str, meta: dict[str, Any]) -> Path:
        """Write the booster (text format) atomically plus its sidecar."""
        atomic_write(path, lambda tmp: self.booster.save_model(str(tmp)))
        write_sidecar(
            path,
            {
                **meta,
                "kind": "lgbm",
                "features": self.features,
                "params": self.params,
                "best_iteration": self.booster.best_iteration,
            },
        )
        return Path(path)

    @classmethod
    def load(cls, path: Path | str) -> LgbmModel:
        """Load a booster after verifying its sha256 against the sidecar."""
        meta = read_sidecar(path)
        booster = lgb.Booster(model_file=str(path))
        return cls(booster=booster, features=list(meta["features"]), params=meta.get("params", {}))


MIN_ROUNDS = 20  # a booster of a tree or two scores bars with a handful of distinct values


def _early_stopping_after(min_rounds: int, patience: int):
    """Stop `patience` rounds after the best validation AUC, but never before `min_rounds`:
    on small noisy windows the first tree is often the best by luck, and a one-tree model
    has too few distinct scores for a policy that ranks bars."""
    state: dict[str, Any] = {"best": -np.inf, "at": 0, "results": []}

    def callback(env: lgb.callback.CallbackEnv) -> None:
        score = next(r[2] for r in env.evaluation_result_list if r[0] == "valid" and r[1] == "auc")
        round_ = env.iteration + 1
        if round_ >= min_rounds and score > state["best"]:
            state.update(best=score, at=round_, results=list(env.evaluation_result_list))
        out_of_patience = round_ >= min_rounds and round_ - state["at"] >= patience
        if out_of_patience or round_ == env.end_iteration:  # the last round stops too
            raise lgb.callback.EarlyStopException(state["at"] - 1, state["results"])

    callback.order = 30  # type: ignore[attr-defined]  # after record_evaluation (20)
    return callback


def train_lgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: list[str],
    label: str,
    seed: int,
    num_boost_round: int = 600,
    early_stopping_rounds: int = 50,
    params: dict[str, Any] | None = None,
) -> LgbmModel:
    """Fit on `train`, early-stop on `valid` (both time-ordered, purged apart; `valid` is
    the tail of the training window, never the calibration window the policy is chosen on)."""
    if train.empty or valid.empty:
        raise ValueError("train and validation windows must both have rows")
    params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "deterministic": True}
    train_set = lgb.Dataset(train[features], label=train[label], free_raw_data=False)
    valid_set = lgb.Dataset(valid[features], label=valid[label], reference=train_set)
    evals: dict[str, dict[str, list[float]]] = {}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[train_set, valid_set],
        valid_names=["train", "valid"],
        callbacks=[
            lgb.record_evaluation(evals),
            _early_stopping_after(min(MIN_ROUNDS, num_boost_round), early_stopping_rounds),
        ],
    )
    return LgbmModel(booster=booster, features=list(features), params=params, evals=evals)
