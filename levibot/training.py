"""Training runs the pipeline's notebooks call: one function per model kind.

Each run trains on its release's train window, scores the calibration and test
windows out of sample, and writes the model artifact, a Parquet of those
predictions (what calibration and the threshold sweep consume) and a JSON summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.dataset import (
    BAR_RETURN,
    LABEL_DIRECTION,
    LABEL_RETURN,
    MODEL_FEATURES,
    ReleasePlan,
    build_dataset,
    load_feature_frames,
    plan_releases,
    window_rows,
)
from levibot.io import write_json_atomic, write_parquet_atomic
from levibot.models.deep import train_deep
from levibot.models.evaluation import classification_metrics
from levibot.models.lgbm import train_lgbm
from levibot.registry import load_registry
from levibot.settings import Settings
from levibot.splits import early_stopping_split
from levibot.state.paths import Paths
from levibot.timeframe import timeframe_delta, utc_now

SCORED_WINDOWS = ("calibration", "test")
Predictor = Callable[[pd.DataFrame], pd.DataFrame]
BASE_COLUMNS = ["symbol", "window", LABEL_DIRECTION, LABEL_RETURN, BAR_RETURN]


@dataclass
class TrainingContext:
    """What both training notebooks start from: stored features, pooled rows, the plan."""

    settings: Settings
    frames: dict[str, pd.DataFrame]
    data: pd.DataFrame
    plans: list[ReleasePlan]

    @property
    def artifacts_dir(self) -> Path:
        return Paths.of(self.settings).artifacts

    def split_table(self) -> pd.DataFrame:
        """The planned releases' windows, one column per role (for the reports)."""
        return pd.DataFrame({plan.role: plan.split.as_dict() for plan in self.plans})


def prepare_training(settings: Settings) -> TrainingContext:
    """Load the feature store and plan the releases (bootstrap rule: see plan_releases)."""
    frames = load_feature_frames(settings)
    data = build_dataset(frames, settings.horizon)
    registry = load_registry(Paths.of(settings).registry, missing_ok=True)
    end = data.index.max() + timeframe_delta(settings.timeframe)
    plans = plan_releases(settings, data.index.min(), end, has_prod=registry.prod is not None)
    return TrainingContext(settings, frames, data, plans)


def _run_dir(out_dir: Path, plan: ReleasePlan, kind: str) -> Path:
    """A fresh folder per training run: files a registry entry points at are never rewritten."""
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%f")
    return Path(out_dir) / kind / f"{plan.role}-{plan.data_end:%Y%m%dT%H%M}-{stamp}"


def _scored(data: pd.DataFrame, plan: ReleasePlan, predict: Predictor) -> pd.DataFrame:
    """Raw predictions (column p_raw, plus any extras) for the calibration and test rows.

    `predict(rows)` returns a frame in the order of `rows`. Rows keep their label and
    bar return, so the sweep can backtest them; rows without a known label yet (the
    last `horizon` bars) are kept for the backtest too.
    """
    parts = []
    for name in SCORED_WINDOWS:
        rows = window_rows(data, plan.split, name, labelled=False).assign(window=name)
        predicted = predict(rows)
        parts.append(pd.concat([rows[BASE_COLUMNS], predicted.set_axis(rows.index)], axis=1))
    return pd.concat(parts)


def _window_metrics(predictions: pd.DataFrame) -> dict[str, dict[str, float]]:
    labelled = predictions.dropna(subset=[LABEL_DIRECTION])
    return {
        name: classification_metrics(group[LABEL_DIRECTION], group["p_raw"])
        for name, group in labelled.groupby("window")
    }


def _finish(
    run_dir: Path,
    kind: str,
    plan: ReleasePlan,
    artifact: Path,
    predictions: pd.DataFrame,
    extra: dict[str, Any],
) -> dict[str, Any]:
    predictions_path = write_parquet_atomic(run_dir / "predictions.parquet", predictions)
    summary = {
        "kind": kind,
        "role": plan.role,
        "data_end": plan.data_end.isoformat(),
        "split": plan.split.as_dict(),
        "artifact": str(artifact),
        "predictions": str(predictions_path),
        "features": list(MODEL_FEATURES),
        "metrics": _window_metrics(predictions),
        **extra,
    }
    write_json_atomic(run_dir / "run.json", summary)
    return summary


def run_lgbm(
    data: pd.DataFrame, plan: ReleasePlan, *, out_dir: Path, seed: int, **params: Any
) -> dict[str, Any]:
    """Train LightGBM for one release and score its calibration and test windows."""
    train = window_rows(data, plan.split, "train")
    fit, valid = early_stopping_split(train, plan.split.purge)
    model = train_lgbm(
        fit, valid, features=MODEL_FEATURES, label=LABEL_DIRECTION, seed=seed, **params
    )
    run_dir = _run_dir(out_dir, plan, "lgbm")
    artifact = model.save(run_dir / "model.txt", {"split": plan.split.as_dict(), "role": plan.role})
    predictions = _scored(data, plan, lambda rows: pd.DataFrame({"p_raw": model.predict(rows)}))
    curve = {
        f"{split}_{metric}": values
        for split, metrics in model.evals.items()
        for metric, values in metrics.items()
    }
    return _finish(
        run_dir,
        "lgbm",
        plan,
        artifact,
        predictions,
        {
            "best_iteration": model.booster.best_iteration,
            "importance_gain": model.importance().to_dict(),
            "learning_curve": curve,
            "train_rows": len(train),
        },
    )


def run_deep(
    frames: Mapping[str, pd.DataFrame],
    data: pd.DataFrame,
    plan: ReleasePlan,
    *,
    out_dir: Path,
    seed: int,
    n_samples: int = 20,
    **overrides: Any,
) -> dict[str, Any]:
    """Train the transformer for one release; score with MC-dropout (`n_samples`)."""
    train = window_rows(data, plan.split, "train")
    fit, valid = early_stopping_split(train, plan.split.purge)
    model = train_deep(frames, fit, valid, features=MODEL_FEATURES, seed=seed, **overrides)
    run_dir = _run_dir(out_dir, plan, "deep")
    artifact = model.save(run_dir / "model.pt", {"split": plan.split.as_dict(), "role": plan.role})

    def predict(rows: pd.DataFrame) -> pd.DataFrame:
        mc = model.predict_rows(frames, rows, n_samples=n_samples, seed=seed)
        return mc.rename(columns={"p_up": "p_raw"})[["p_raw", "mu", "epistemic", "aleatoric"]]

    predictions = _scored(data, plan, predict)
    extra = {"history": model.history, "n_samples": n_samples, "train_rows": len(train)}
    return _finish(run_dir, "deep", plan, artifact, predictions, extra)


def save_runs(runs_file: Path | str, runs: list[dict[str, Any]]) -> Path:
    return write_json_atomic(runs_file, {"runs": runs})


def model_params(settings: Settings, kind: str) -> dict[str, Any]:
    """The training parameters of one model kind, as the settings hold them."""
    if kind == "lgbm":
        return {
            "num_boost_round": settings.lgbm_num_boost_round,
            "early_stopping_rounds": settings.lgbm_early_stopping_rounds,
        }
    if kind == "deep":
        return {
            "seq_len": settings.deep_seq_len,
            "epochs": settings.deep_epochs,
            "n_samples": settings.deep_n_samples,
        }
    raise ValueError(f"unknown model kind {kind!r}: use lgbm or deep")


def train_releases(
    context: TrainingContext, kind: str, runs_file: Path | str, **overrides: Any
) -> list[dict[str, Any]]:
    """Train one model kind for every planned release and save the run list (the product).

    Parameters come from the settings (`model_params`); `overrides` replace some of them.
    """
    params = {**model_params(context.settings, kind), **overrides}
    runs = []
    for plan in context.plans:
        common = {"out_dir": context.artifacts_dir, "seed": context.settings.seed, **params}
        if kind == "lgbm":
            runs.append(run_lgbm(context.data, plan, **common))
        elif kind == "deep":
            runs.append(run_deep(context.frames, context.data, plan, **common))
        else:
            raise ValueError(f"unknown model kind {kind!r}: use lgbm or deep")
    save_runs(runs_file, runs)
    return runs
