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
import re
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from levibot.data.sources.synthetic import SIM_EPOCH
from levibot.io import without_fsync
from levibot.settings import Settings, load_settings
from levibot.state.paths import Paths, Workspace

if TYPE_CHECKING:
    from levibot.registry import ModelEntry

STRONG_EDGE = 6.0
MARKET_EDGES = {"strong": STRONG_EDGE, "none": 0.0, "realistic": 1.0}
TRAIN_SEEDS = {"strong": 101, "none": 102, "realistic": 103}
TRAIN_DAYS = 60
TRAIN_END = SIM_EPOCH + pd.Timedelta(days=TRAIN_DAYS + 1)
RUN_DAYS = 8  # feature warm-up + the 72 held-out hours
RUN_END = SIM_EPOCH + pd.Timedelta(days=RUN_DAYS + 1)
ONSET_HOURS = 12.0  # drift / dead feed from this hour of the marathon on
MARATHON_HOURS = 48.0
HOLDOUT_HOURS = 72.0
RUN_SEED_BASE = 10_000
SIM_SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"


@dataclass(frozen=True)
class Scenario:
    prod: tuple[str, str]  # (market, role in that market's training)
    candidate: tuple[str, str]
    market: str
    drift: str = "none"
    dead_feed: bool = False
    expected: str = ""


SCENARIOS: dict[str, Scenario] = {
    "equal": Scenario(
        ("strong", "prod"),
        ("strong", "candidate"),
        "strong",
        expected="PROMOTE <= 5%, ROLLBACK <= 10%",
    ),
    "better": Scenario(
        ("none", "candidate"), ("strong", "candidate"), "strong", expected="PROMOTE >= 80%"
    ),
    "worse": Scenario(
        ("strong", "candidate"),
        ("none", "candidate"),
        "strong",
        expected="ROLLBACK >= 80%, PROMOTE <= 1%",
    ),
    "subtle": Scenario(
        ("none", "candidate"),
        ("realistic", "candidate"),
        "realistic",
        expected="EXTEND, with an hours-needed estimate",
    ),
    "vol_shock": Scenario(
        ("strong", "prod"),
        ("strong", "candidate"),
        "strong",
        "vol_shock",
        expected="kill switch and ROLLBACK >= 95%",
    ),
    "trend_flip": Scenario(
        ("strong", "prod"),
        ("strong", "candidate"),
        "strong",
        "trend_flip",
        expected="ROLLBACK or kill switch >= 80%",
    ),
    "feature_freeze": Scenario(
        ("strong", "prod"),
        ("strong", "candidate"),
        "strong",
        "feature_freeze",
        expected="kill switch and ROLLBACK >= 95%",
    ),
    "dead_feed": Scenario(
        ("strong", "prod"),
        ("strong", "candidate"),
        "strong",
        dead_feed=True,
        expected="kill switch and ROLLBACK >= 95%",
    ),
}


def _settings(root: Path, **overrides: Any) -> Settings:
    return load_settings(
        None,
        root=root,
        source="synthetic",
        symbols=SIM_SYMBOLS,
        timeframe="15m",
        holdout_hours=HOLDOUT_HOURS,
        prod_lag_days=7,
        **overrides,
    )


def market_dir(root: Path, market: str) -> Path:
    """A market's project folder, named with its edge: changing an edge trains anew
    instead of reusing releases fitted to another market."""
    return root / "markets" / f"{market}-edge{MARKET_EDGES[market]:g}"


def train_market(root: Path, market: str) -> Path:
    """Train (once) a prod and a candidate release on one synthetic market; returns its
    project folder (registry + store). Reused when its registry exists."""
    from levibot.ingest import run_ingest
    from levibot.registry import load_registry, update_canary_policy
    from levibot.release import calibrate_and_register
    from levibot.training import prepare_training, train_releases

    project = market_dir(root, market)
    settings = _settings(
        project,
        seed=TRAIN_SEEDS[market],
        days=TRAIN_DAYS,
        end=TRAIN_END,
        sim_edge=MARKET_EDGES[market],
    )
    paths = Paths.of(settings)
    registry = load_registry(paths.registry, missing_ok=True)
    if registry.prod is not None and registry.candidate is not None:
        return project
    if project.exists():
        shutil.rmtree(project)
    # a market without edge trades at random: the trade-rate gate still applies
    update_canary_policy(paths.canary_policy, thresholds={"canary_min_sharpe": -1e6})
    run_ingest(settings)
    context = prepare_training(settings)
    runs = paths.runs
    train_releases(context, "lgbm", runs / "lgbm.json")
    train_releases(context, "deep", runs / "deep.json", seq_len=16, epochs=1, n_samples=4)
    calibrate_and_register(
        settings,
        runs / "lgbm.json",
        runs / "deep.json",
        summary_path=runs / "release.json",
        reports=[],
    )
    return project


def trained_entry(root: Path, market: str, role: str) -> tuple[Path, ModelEntry]:
    """The market's project folder and its release trained in `role`."""
    from levibot.registry import load_registry

    project = market_dir(root, market)
    entry = getattr(load_registry(Paths.of(_settings(project)).registry), role)
    assert entry is not None, f"{project}: no {role} release (train_market first)"
    return project, entry


def build_scenario_registry(root: Path, name: str, scenario: Scenario) -> Path:
    """A registry folder holding the scenario's prod and candidate (artifacts copied);
    reused while it holds the markets' current releases (a retrained market rebuilds it)."""
    from levibot.registry import (
        bootstrap_prod,
        load_registry,
        register_candidate,
        update_canary_policy,
    )

    target = Workspace(root / "scenarios" / name)
    registry_dir = target.registry_dir
    scenario_paths = Paths.of(_settings(target.root))  # its registry dir: target.registry_dir
    trained = {
        role: trained_entry(root, market, trained_role)
        for role, (market, trained_role) in (
            ("prod", scenario.prod),
            ("candidate", scenario.candidate),
        )
    }
    if scenario_paths.registry.exists():
        held = load_registry(scenario_paths.registry)
        if all(
            getattr(held, role) is not None and getattr(held, role).id == entry.id
            for role, (_, entry) in trained.items()
        ):
            return registry_dir  # built earlier from these very releases
    if target.root.exists():
        shutil.rmtree(target.root)
    entries = {}
    for role, (project, entry) in trained.items():
        source = Paths.of(_settings(project))
        for model in entry.models.values():
            for ref in [*model.artifacts.values(), model.calibration.artifact]:
                if ref is None:
                    continue
                folder = Path(ref.path).parent  # the run's folder: model, sidecars
                shutil.copytree(
                    source.registry_dir / folder, registry_dir / folder, dirs_exist_ok=True
                )
        entries[role] = entry
    registry_file = scenario_paths.registry
    bootstrap_prod(registry_file, entries["prod"], reason="simulation scenario " + name)
    register_candidate(registry_file, entries["candidate"], reason="simulation scenario " + name)
    update_canary_policy(scenario_paths.canary_policy, thresholds={"canary_min_sharpe": -1e6})
    return registry_dir


def training_reference(root: Path, name: str) -> Path:
    """The scenario's drift reference: the training window of the release the checks
    compare with (`reference_release`: the candidate), read from the market that release
    was trained on, as in production (fitted once, reused)."""
    from levibot.drift import load_reference, reference_release, release_reference, save_reference
    from levibot.registry import load_registry

    scenario_paths = Paths.of(_settings(root / "scenarios" / name))
    path = Workspace(root / "scenarios" / name).drift_reference
    chosen = reference_release(load_registry(scenario_paths.registry))
    assert chosen is not None  # build_scenario_registry registered both releases
    role, entry = chosen
    if path.exists() and load_reference(path).source == entry.id:
        return path  # fitted earlier for this very release
    market = getattr(SCENARIOS[name], role)[0]
    market_settings = _settings(
        market_dir(root, market),
        seed=TRAIN_SEEDS[market],
        days=TRAIN_DAYS,
        end=TRAIN_END,
        sim_edge=MARKET_EDGES[market],
    )
    return save_reference(path, release_reference(market_settings, entry))


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
    settings = _settings(
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


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def rule_shape(rule: str) -> str:
    """A fired rule with its numbers and intervals blanked, so the runs' rules can be
    counted: which rule blocks PROMOTE, which one rolls back."""
    shape = re.sub(r"\[[^\]]*\]", "[..]", rule)
    shape = re.sub(r"[-+]?\d+(\.\d+)?", "#", shape)
    return re.sub(r"\s+", " ", shape).strip()


def summarise(outcomes: list[dict[str, Any]], scenario: Scenario) -> dict[str, Any]:
    decisions = [o["decision"] for o in outcomes]
    return {
        "runs": len(outcomes),
        "PROMOTE": decisions.count("PROMOTE"),
        "EXTEND": decisions.count("EXTEND"),
        "ROLLBACK": decisions.count("ROLLBACK"),
        "kill_switch": sum(o["kill_switch"] for o in outcomes),
        "critical_drift": sum(o["critical_drift"] for o in outcomes),
        "loss_alarm": sum(o.get("loss_alarm", False) for o in outcomes),
        "median_loss_alarm_hours": _median([o.get("loss_alarm_hours") for o in outcomes]),
        "median_min_detectable_effect": _median([o["min_detectable_effect"] for o in outcomes]),
        "median_hours_needed": _median([o["hours_needed"] for o in outcomes]),
        "median_log_loss_difference": _median([o["log_loss_difference"] for o in outcomes]),
        "median_sharpe_difference": _median([o["sharpe_difference"] for o in outcomes]),
        "median_detection_hours": _median([o["detection_hours"] for o in outcomes]),
        "rules": dict(
            Counter(
                rule_shape(rule) for o in outcomes for rule in dict.fromkeys(o.get("rules", []))
            ).most_common()
        ),
        "target": scenario.expected,
    }


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


def format_table(report: dict[str, Any]) -> str:
    """The benchmark as a Markdown table (what `make bench` and the README show)."""
    lines = [
        "| scenario | runs | PROMOTE | EXTEND | ROLLBACK | kill switch | critical drift "
        "| candidate loss alarm | median MDE (log loss) | median hours needed "
        "| median detection (h) | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value: float | None, digits: int) -> str:
        return "n/a" if value is None or value != value else f"{value:.{digits}f}"

    for name, row in report["scenarios"].items():
        lines.append(
            f"| {name} | {row['runs']} | {row['PROMOTE']} | {row['EXTEND']} | {row['ROLLBACK']} "
            f"| {row['kill_switch']} | {row['critical_drift']} | {row.get('loss_alarm', 'n/a')} "
            f"| {num(row['median_min_detectable_effect'], 4)} "
            f"| {num(row['median_hours_needed'], 0)} | {num(row['median_detection_hours'], 1)} "
            f"| {row['target']} |"
        )
    lines.append(
        f"\nmarket edges {report['edges']}; wall time {report['wall_seconds']:.0f} s"
        f" on {report.get('workers', 1)} worker(s)"
    )
    return "\n".join(lines)
