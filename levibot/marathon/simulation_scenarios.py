"""The decision benchmark's scenarios and the markets and releases they are built from.

Releases are trained once per market (kept under `Paths.simulation_dir`, a folder per
market and edge) and copied into a registry per scenario; each scenario's drift
reference is fitted once from the market its reference release was trained on. See
`levibot.marathon.simulate` for the table of scenarios and how a run uses them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from levibot.data.sources.synthetic import SIM_EPOCH
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


def scenario_settings(root: Path, **overrides: Any) -> Settings:
    """The settings every simulated project shares (3 symbols, 15m, 72 h held out)."""
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
    settings = scenario_settings(
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
    entry = getattr(load_registry(Paths.of(scenario_settings(project)).registry), role)
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
    scenario_paths = Paths.of(scenario_settings(target.root))  # registry: target.registry_dir
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
        source = Paths.of(scenario_settings(project))
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

    scenario_paths = Paths.of(scenario_settings(root / "scenarios" / name))
    path = Workspace(root / "scenarios" / name).drift_reference
    chosen = reference_release(load_registry(scenario_paths.registry))
    assert chosen is not None  # build_scenario_registry registered both releases
    role, entry = chosen
    if path.exists() and load_reference(path).source == entry.id:
        return path  # fitted earlier for this very release
    market = getattr(SCENARIOS[name], role)[0]
    market_settings = scenario_settings(
        market_dir(root, market),
        seed=TRAIN_SEEDS[market],
        days=TRAIN_DAYS,
        end=TRAIN_END,
        sim_edge=MARKET_EDGES[market],
    )
    return save_reference(path, release_reference(market_settings, entry))
