"""Calibrate, select the policy and register: turns two training runs into a registry entry.

For each model of a release: fit isotonic and Platt on the calibration window, keep
the one with the lower (out-of-fold) ECE, and report ECE raw vs calibrated on the
test window. The policy thresholds are quantile levels of the LightGBM model's calibrated
score, chosen on the calibration window among configurations that trade often enough
for a marathon to judge them, with a walk-forward check (`levibot.selection`); the test
window is used once, afterwards, for the report and the registration gate
(`levibot.policy_evaluation`). A release that fails the gate is not registered.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.dataset import BAR_RETURN, LABEL_DIRECTION, LABEL_RETURN
from levibot.drift.job import window_bars
from levibot.drift.performance import loss_baseline, per_bar_loss
from levibot.drift.predictions import ARTIFACT as PREDICTION_ARTIFACT
from levibot.drift.predictions import fit_prediction_reference, save_prediction_reference
from levibot.io import read_json, write_json_atomic
from levibot.models.calibration import (
    FITTERS,
    RANK_PRESERVING,
    choose_calibrator,
    expected_calibration_error,
    reliability_table,
)
from levibot.models.evaluation import classification_metrics
from levibot.policy import Policy
from levibot.policy_evaluation import TestReport, describe_test, evaluate_on_test
from levibot.registry import (
    CalibrationInfo,
    DataWindow,
    Lineage,
    ModelEntry,
    ModelSpec,
    PolicyInfo,
    artifact_ref,
    bootstrap_prod,
    load_canary_policy,
    load_registry,
    register_candidate,
)
from levibot.selection import Selection, select_policy
from levibot.settings import Settings
from levibot.state.paths import Paths
from levibot.thresholds import GateRules
from levibot.timeframe import utc_now

POLICY_MODEL = "lgbm"  # the model whose calibrated p_up the thresholds are swept on


@dataclass
class CalibratedModel:
    """One model of a release after calibration."""

    run: dict[str, Any]
    predictions: pd.DataFrame  # with p_raw and p_cal
    calibration: dict[str, Any]
    calibrator_path: Path
    reliability: dict[str, pd.DataFrame]


def calibrate_run(run: Mapping[str, Any]) -> CalibratedModel:
    """Choose and fit a calibrator on the calibration window; score ECE on test."""
    predictions = pd.read_parquet(run["predictions"])
    labelled = predictions.dropna(subset=[LABEL_DIRECTION])
    calib = labelled[labelled["window"] == "calibration"]
    test = labelled[labelled["window"] == "test"]
    methods = RANK_PRESERVING if run["kind"] == POLICY_MODEL else tuple(FITTERS)
    calibrator, choice = choose_calibrator(calib[LABEL_DIRECTION], calib["p_raw"], methods=methods)
    predictions["p_cal"] = calibrator.transform(predictions["p_raw"])
    test_cal = calibrator.transform(test["p_raw"])
    # named by its content: re-calibrating the same training run never rewrites a file a
    # registered release's sha256 points at
    payload = calibrator.to_dict()
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    calibrator_path = write_json_atomic(
        Path(run["artifact"]).with_name(f"calibrator-{digest}.json"), payload
    )
    info = {
        "method": calibrator.method,
        "ece_raw": expected_calibration_error(test[LABEL_DIRECTION], test["p_raw"]),
        "ece_calibrated": expected_calibration_error(test[LABEL_DIRECTION], test_cal),
        "ece_out_of_fold_on_calibration": choice["ece_out_of_fold"].to_dict(),
        "test_metrics_calibrated": classification_metrics(test[LABEL_DIRECTION], test_cal),
    }
    reliability = {
        "raw": reliability_table(test[LABEL_DIRECTION], test["p_raw"]),
        "calibrated": reliability_table(test[LABEL_DIRECTION], test_cal),
    }
    return CalibratedModel(dict(run), predictions, info, calibrator_path, reliability)


def choose_policy(
    predictions: pd.DataFrame,
    *,
    purge: pd.Timedelta,
    fee_bps: float,
    slippage_bps: float,
    timeframe: str,
    gate: GateRules,
    release: str,
) -> tuple[Selection, TestReport]:
    """Select on the calibration window, then score once on the test window (and gate)."""
    common = {"timeframe": timeframe, "min_trades": gate.min_trades,
              "marathon_hours": gate.marathon_hours, "release": release}  # fmt: skip
    selection = select_policy(
        predictions[predictions["window"] == "calibration"], label=LABEL_DIRECTION,
        bar_return=BAR_RETURN, forward_return=LABEL_RETURN, purge=purge, fee_bps=fee_bps,
        slippage_bps=slippage_bps, **common,
    )  # fmt: skip
    test = predictions[predictions["window"] == "test"]
    return selection, evaluate_on_test(test, selection, bar_return=BAR_RETURN, **common)


def code_version() -> str:
    """`git describe` of the code that trained the model ('unknown' outside git)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            capture_output=True, text=True, timeout=10, check=True,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def test_loss_baseline(predictions: pd.DataFrame, horizon: int) -> dict[str, float]:
    """The calibrated test-window per-bar log-loss level the performance monitor
    compares the served release with (`levibot.drift.performance`)."""
    test = predictions[predictions["window"] == "test"].dropna(subset=[LABEL_DIRECTION])
    losses = per_bar_loss(
        test[LABEL_DIRECTION].to_numpy(), test["p_cal"].to_numpy(), test.index.to_numpy()
    )
    return loss_baseline(losses, horizon)


def prediction_reference_file(settings: Settings, model: CalibratedModel, directory: Path) -> Path:
    """The test window's calibrated P(up) as a prediction-drift reference file."""
    test = model.predictions[model.predictions["window"] == "test"].dropna(subset=["p_cal"])
    bars = window_bars(settings.drift_current_hours, settings.timeframe)
    return save_prediction_reference(directory, fit_prediction_reference(test, bars))


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Registry metrics must be finite numbers (NaN AUC on a one-class window is dropped)."""
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)
    }


def build_entry(
    settings: Settings,
    models: Mapping[str, CalibratedModel],
    policy: Policy,
    *,
    policy_test_metrics: Mapping[str, float],
    pipeline_run: str,
    reports: list[str],
    trades_per_48h: float | None = None,
    selection: Mapping[str, Any] | None = None,
) -> ModelEntry:
    """A registry entry for one release (LightGBM + transformer, calibrated)."""
    base = settings.registry_dir
    first = next(iter(models.values())).run
    split = first["split"]
    specs = {}
    for kind, model in models.items():
        run = model.run
        test = run["metrics"].get("test", {})
        metrics = {
            **_finite(test),
            **{
                f"{k}_calibrated": v
                for k, v in _finite(model.calibration["test_metrics_calibrated"]).items()
            },
        }
        if kind == POLICY_MODEL:
            metrics.update({f"policy_{k}": v for k, v in _finite(policy_test_metrics).items()})
            metrics.update(_finite(test_loss_baseline(model.predictions, settings.horizon)))
        artifacts = {"model": artifact_ref(run["artifact"], base)}
        if kind == POLICY_MODEL:
            artifacts[PREDICTION_ARTIFACT] = artifact_ref(
                prediction_reference_file(settings, model, Path(run["artifact"]).parent), base
            )
        specs[kind] = ModelSpec(
            kind=kind,
            artifacts=artifacts,
            features=run["features"],
            calibration=CalibrationInfo(
                method=model.calibration["method"],
                ece_raw=model.calibration["ece_raw"],
                ece_calibrated=model.calibration["ece_calibrated"],
                artifact=artifact_ref(model.calibrator_path, base),
            ),
            metrics=metrics,
        )
    data_end = pd.Timestamp(first["data_end"])
    content = hashlib.sha256("".join(s.artifacts["model"].sha256 for s in specs.values()).encode())
    return ModelEntry(
        id=f"lvb-{data_end:%Y%m%dT%H%M}-{content.hexdigest()[:10]}",  # named by its weights
        models=specs,
        horizon=settings.horizon,
        timeframe=settings.timeframe,
        symbols=list(settings.symbols),
        policy=PolicyInfo(
            entry_threshold=policy.entry_threshold,
            exit_threshold=policy.exit_threshold,
            fee_bps=policy.fee_bps,
            slippage_bps=policy.slippage_bps,
        ),
        trades_per_48h=trades_per_48h,
        data_window=DataWindow(
            train_start=split["train"]["start"],
            train_end=split["train"]["end"],
            calib_start=split["calibration"]["start"],
            calib_end=split["calibration"]["end"],
            test_start=split["test"]["start"],
            test_end=split["test"]["end"],
        ),
        trained_at=utc_now().to_pydatetime(),
        code_version=code_version(),
        lineage=Lineage(
            pipeline_run=pipeline_run,
            reports=reports,
            extra={
                "runs": {k: m.run["artifact"] for k, m in models.items()},
                "selection": _finite(selection or {}),
            },
        ),
    )


def register_release(registry_file: Path, entry: ModelEntry, role: str) -> None:
    """Bootstrap prod (empty registry only) or register the candidate.

    Release ids hash the artifacts, so a rebuild on unchanged data and seeds yields the
    same release: when it already is the candidate, the registry is left as it is.
    """
    current = load_registry(registry_file, missing_ok=True).candidate
    if role == "candidate" and current is not None and current.id == entry.id:
        return
    if role == "prod":
        bootstrap_prod(registry_file, entry, reason="bootstrap: first prod trained on older data")
    else:
        register_candidate(registry_file, entry, reason="pipeline training run")


def releases_by_role(*runs_files: Path | str) -> dict[str, dict[str, dict[str, Any]]]:
    """{role: {kind: run}} from the training tasks' run lists."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for runs_file in runs_files:
        for run in read_json(runs_file)["runs"]:
            out.setdefault(run["role"], {})[run["kind"]] = run
    return out


@dataclass
class ReleaseResult:
    """A calibrated, swept and registered release (what the notebook reports)."""

    role: str
    models: dict[str, CalibratedModel]
    policy: Policy
    selection: Selection
    test: TestReport
    entry: ModelEntry

    @property
    def sweep(self) -> pd.DataFrame:
        """The configurations tried, with their selection-window metrics."""
        return self.selection.grid

    def calibration_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model id": self.entry.id}
        for kind, model in self.models.items():
            out[f"{kind} method"] = model.calibration["method"]
            out[f"{kind} ECE raw (test)"] = round(model.calibration["ece_raw"], 4)
            out[f"{kind} ECE calibrated (test)"] = round(model.calibration["ece_calibrated"], 4)
            out[f"{kind} AUC (test)"] = round(model.run["metrics"]["test"]["auc"], 4)
        return out

    def policy_summary(self) -> dict[str, Any]:
        chosen = self.selection.chosen
        out = {
            "entry": round(self.policy.entry_threshold, 4),
            "exit": round(self.policy.exit_threshold, 4),
            "entry / exit quantile": f"{chosen['entry_q']:.2f} / {chosen['exit_q']:.2f}",
            "configurations (eligible)": f"{len(self.sweep)} ({int(self.sweep['eligible'].sum())})",
            "selection sharpe (calibration window)": round(float(chosen["sharpe"]), 3),
            "selection trades per 48h": round(float(chosen["trades_per_48h"]), 1),
            "cost break-even P(up)": round(self.selection.cost_break_even, 3),
        }
        out.update(describe_test(self.test, self.selection))
        return out


def calibrate_and_register(
    settings: Settings,
    *runs_files: Path | str,
    summary_path: Path | str,
    reports: list[str],
    fee_bps: float | None = None,
    slippage_bps: float | None = None,
) -> list[ReleaseResult]:
    """Calibrate every model, select the policy, and register prod (bootstrap) then candidate.

    Costs default to the settings' `fee_bps` / `slippage_bps`. Every release of the run is
    built and gated before any is registered: one that fails (`SelectionError`) leaves
    the registry exactly as it was.
    """
    fee_bps = settings.fee_bps if fee_bps is None else fee_bps
    slippage_bps = settings.slippage_bps if slippage_bps is None else slippage_bps
    pipeline_run = utc_now().strftime("%Y%m%dT%H%M%S")
    results = []
    paths = Paths.of(settings)
    registry_file = paths.registry
    gate = load_canary_policy(paths.canary_policy).thresholds.gate
    for role, runs in sorted(releases_by_role(*runs_files).items(), key=lambda kv: kv[0] != "prod"):
        models = {kind: calibrate_run(run) for kind, run in sorted(runs.items())}
        purge = pd.Timedelta(models[POLICY_MODEL].run["split"]["purge"])
        selection, test = choose_policy(
            models[POLICY_MODEL].predictions, purge=purge, fee_bps=fee_bps,
            slippage_bps=slippage_bps, timeframe=settings.timeframe, gate=gate, release=role,
        )  # fmt: skip
        entry = build_entry(
            settings, models, selection.policy, policy_test_metrics=test.flat_metrics(),
            pipeline_run=pipeline_run, reports=[str(r) for r in reports],
            trades_per_48h=test.trades_per_48h, selection=selection.summary(),
        )  # fmt: skip
        results.append(ReleaseResult(role, models, selection.policy, selection, test, entry))
    for result in results:
        register_release(registry_file, result.entry, result.role)
    write_json_atomic(
        summary_path,
        {
            "pipeline_run": pipeline_run,
            "releases": {
                r.role: {"id": r.entry.id, **r.calibration_summary(), **r.policy_summary()}
                for r in results
            },
        },
    )
    return results
