"""`levibot marathon simulate`: how often the T+48h decision is right, measured.

Each scenario has a known right answer. Releases are trained once on synthetic markets
(kept under `Paths.simulation_dir` and reused); every run then draws a *new* market
(a new seed) with the scenario's edge and drift, ingests it, replays a whole 48 h
marathon in-process and evaluates it. Counting the decisions over many runs gives the
gate's error rates: how often it promotes an equal release, misses a better one, keeps
a worse one, or fails to stop on drift.

Markets and releases:

* ``strong`` -- a market with `STRONG_EDGE` x the realistic predictive effects (its
  features' IC about STRONG_EDGE x 0.02); its prod and candidate are the same recipe on
  data a week apart;
* ``none`` -- no predictive effect at all (edge 0): a release that has lost its edge;
* ``realistic`` -- edge 1, the ICs real 15 m crypto bars show.

Scenarios (prod vs candidate, on which market):

=============== ==================== ====================== ===========================
scenario        prod                 candidate              market / fault
=============== ==================== ====================== ===========================
equal           strong               strong (other data)    strong, no drift
better          none                 strong                 strong
worse           strong               none                   strong
subtle          none                 realistic              realistic
vol_shock       strong               strong (other data)    volatility x5 from hour 12
trend_flip      strong               strong (other data)    effects change sign, hour 12
feature_freeze  strong               strong (other data)    auxiliary feeds stuck, hour 12
dead_feed       strong               strong (other data)    no new bar from hour 12
=============== ==================== ====================== ===========================
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from levibot.io import without_fsync
from levibot.marathon.simulation_report import format_table, rule_shape, summarise
from levibot.marathon.simulation_scenarios import (
    HOLDOUT_HOURS,
    MARATHON_HOURS,
    MARKET_EDGES,
    ONSET_HOURS,
    RUN_DAYS,
    RUN_END,
    RUN_SEED_BASE,
    SCENARIOS,
    STRONG_EDGE,
    Scenario,
    build_scenario_registry,
    market_dir,
    scenario_settings,
    train_market,
    trained_entry,
    training_reference,
)
from levibot.settings import Settings
from levibot.state.paths import Paths

__all__ = [
    "MARKET_EDGES",
    "SCENARIOS",
    "STRONG_EDGE",
    "Scenario",
    "build_scenario_registry",
    "default_workers",
    "format_table",
    "market_dir",
    "rule_shape",
    "run_once",
    "simulate",
    "summarise",
    "train_market",
    "trained_entry",
    "training_reference",
]


def run_once(root: Path, name: str, scenario: Scenario, run: int) -> dict[str, Any]:
    """One 48 h marathon of a scenario on a new market; the evaluation's key figures."""
    from levibot.ingest import run_ingest
    from levibot.marathon.evaluate import evaluate_marathon
    from levibot.marathon.replay import ReplayConfig, run_replay

    registry_dir = build_scenario_registry(root, name, scenario)
    workdir = root / "runs" / f"{name}-{run}"
    if workdir.exists():
        shutil.rmtree(workdir)
    seed = RUN_SEED_BASE + run
    marathon_start = RUN_END - pd.Timedelta(hours=HOLDOUT_HOURS)
    onset = marathon_start + pd.Timedelta(hours=ONSET_HOURS)
    settings = scenario_settings(
        workdir,
        seed=seed,
        days=RUN_DAYS,
        end=RUN_END,
        sim_edge=MARKET_EDGES[scenario.market],
        drift_scenario=scenario.drift,
        drift_start=onset if scenario.drift != "none" else None,
    )
    shutil.copytree(registry_dir, Paths.of(settings).registry_dir)
    run_ingest(settings)
    reference = training_reference(root, name)
    config = ReplayConfig(
        hours=MARATHON_HOURS,
        transport="inprocess",
        requests_per_bar=0,
        tune_every_bars=0,
        drift_every_bars=4,
        seed=seed,
        feed_stops_after_hours=ONSET_HOURS if scenario.dead_feed else None,
    )
    outcome = run_replay(settings, workdir / "replay", config, reference=reference)
    result = evaluate_marathon(outcome.settings, outcome.summary)
    shutil.rmtree(workdir, ignore_errors=True)  # a throwaway market: gigabytes at N = 50
    faulty = scenario.drift != "none" or scenario.dead_feed
    detected = [
        pd.Timestamp(p["now"])
        for p in outcome.summary["timeline"]
        if p.get("kill_switch") or p.get("drift") == "critical"
    ]
    detection_hours = (
        (min(detected) - onset) / pd.Timedelta(hours=1) if faulty and detected else None
    )
    loss_alarms = [
        pd.Timestamp(p["now"])
        for p in outcome.summary["timeline"]
        if "candidate" in p.get("loss_alarm", [])
    ]
    return {
        "decision": result["decision"],
        "kill_switch": result["incidents"]["kill_switch_activations"] > 0,
        "critical_drift": result["incidents"]["critical_drift_checks"] > 0,
        "min_detectable_effect": result["power"]["min_detectable_effect"],
        "hours_needed": result["power"]["hours_needed"],
        "log_loss_difference": result["evidence"]["log_loss"]["difference"],
        "sharpe_difference": result["sharpe_difference"]["point"],
        "detection_hours": detection_hours,
        # the candidate's loss monitor (a warning under the default severity): its rate
        # in equal marathons is its false-alarm rate, in trend_flip its power
        "loss_alarm": bool(loss_alarms),
        "loss_alarm_hours": (
            (min(loss_alarms) - onset) / pd.Timedelta(hours=1) if loss_alarms else None
        ),
        "rules": result["rules_fired"],
    }


def _worker_init() -> None:
    """One thread per worker process: the workers already use every core."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _run_job(job: tuple[Path, str, int]) -> dict[str, Any]:
    root, name, run = job
    with without_fsync():  # throwaway workspaces: atomic, but not fsynced
        return run_once(root, name, SCENARIOS[name], run)


def default_workers() -> int:
    """One run per core (the runs are independent and CPU-bound)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def simulate(
    settings: Settings,
    *,
    runs: int,
    scenarios: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run `runs` marathons per scenario, `workers` at a time in separate processes
    (default: one per core); the JSON `levibot marathon simulate` prints. A run depends
    only on its scenario and run number, so the result does not depend on `workers`."""
    names = list(scenarios or SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; choose from {sorted(SCENARIOS)}")
    if runs < 1:
        raise ValueError(f"--runs must be at least 1, got {runs}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    root = Paths.of(settings).simulation_dir
    wall = time.monotonic()
    for market in sorted(
        {m for n in names for m, _ in (SCENARIOS[n].prod, SCENARIOS[n].candidate)}
    ):
        if progress:
            progress(f"training releases on the {market} market (once; reused later)")
        train_market(root, market)
    for name in names:  # shared by the runs: built once, before they start
        build_scenario_registry(root, name, SCENARIOS[name])
        training_reference(root, name)
    jobs = [(root, name, run) for name in names for run in range(runs)]
    outcomes: dict[str, list[dict[str, Any]]] = {name: [] for name in names}

    def record(job: tuple[Path, str, int], outcome: dict[str, Any]) -> None:
        outcomes[job[1]].append(outcome)
        if progress:
            progress(f"{job[1]} run {job[2] + 1}/{runs}: {outcome['decision']}")

    if workers == 1:
        for job in jobs:
            record(job, _run_job(job))
    else:
        context = multiprocessing.get_context("spawn")  # no forked torch / OpenMP state
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
            for job, outcome in zip(jobs, pool.map(_run_job, jobs), strict=True):
                record(job, outcome)
    out = {name: summarise(outcomes[name], SCENARIOS[name]) for name in names}
    return {
        "scenarios": out,
        "edges": dict(MARKET_EDGES),
        "marathon_hours": MARATHON_HOURS,
        "onset_hours": ONSET_HOURS,
        "wall_seconds": time.monotonic() - wall,
        "workers": workers,
    }
