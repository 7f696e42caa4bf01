"""`levibot marathon replay`: drive a real server over HTTP through held-out bars.

The replay copies the registry and the feature store (cut at the replay start) into a
workspace, starts the API there in replay mode (see `levibot.online.clock`), and then,
bar by bar: appends the next bar's feature rows, advances the clock to just after the
bar's close, sends a mix of predict / predict_deep / predict_ensemble requests from
many client ids, and runs the drift check (every bar, i.e. every 15 min) and the
ensemble tuning (hourly) on simulated time. Shadow logs, paper trades, kill-switch and
audit events accumulate in the workspace exactly as they would live.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

from levibot.data.store import FeatureStore
from levibot.io import write_json_atomic
from levibot.marathon.server import start_server
from levibot.online.clock import CLOCK_ENV, REPLAY_MARKER, set_replay_time
from levibot.registry import canary_policy_path, load_registry, registry_path, update_canary_policy
from levibot.settings import Settings, load_settings

ENDPOINT_MIX = (("/ml/predict", 0.5), ("/ml/predict_deep", 0.25), ("/ml/predict_ensemble", 0.25))
SETTLE = pd.Timedelta(seconds=5)  # requests arrive a few seconds after a bar closes


@dataclass
class ReplayConfig:
    hours: float = 48.0
    speed: float = 0.0  # simulated seconds per wall second; 0 = as fast as possible
    requests_per_bar: int = 12
    clients: int = 40
    drift_every_bars: int = 1
    tune_every_bars: int = 4
    canary_fraction: float = 0.10
    workers: int = 1
    seed: int = 0


@dataclass
class ReplayOutcome:
    workspace: Path
    settings: Settings
    summary: dict[str, Any] = field(default_factory=dict)


def workspace_settings(settings: Settings, workspace: Path) -> Settings:
    """The same market settings, pointed at the replay workspace."""
    return settings.model_copy(
        update={"data_dir": workspace / "data", "registry_dir": workspace / "registry"}
    )


def prepare_workspace(settings: Settings, workspace: Path, hours: float) -> tuple[Settings, dict]:
    """Copy registry + store (cut at the replay start) and mark the folder as a replay."""
    if workspace.exists():
        shutil.rmtree(workspace)
    replay = workspace_settings(settings, workspace)
    registry = load_registry(registry_path(settings))
    if registry.prod is None:
        raise RuntimeError(f"{registry_path(settings)} has no prod model: run the pipeline first")
    skip = shutil.ignore_patterns("*.lock", "drift", "ensemble_weights.json")
    shutil.copytree(settings.registry_dir, replay.registry_dir, ignore=skip)
    source = FeatureStore(settings.data_dir / "store", settings.timeframe)
    target = FeatureStore(replay.data_dir / "store", settings.timeframe)
    frames = {symbol: source.read(symbol) for symbol in settings.symbols}
    missing = [s for s, f in frames.items() if f is None]
    if missing:
        raise RuntimeError(f"no features stored for {missing}: run the ingest first")
    end = min(frame.index[-1] for frame in frames.values()) + source.bar_length
    start = (end - pd.Timedelta(hours=hours)).floor(source.bar_length)
    bars = pd.date_range(start, end, freq=source.bar_length, inclusive="left")
    for symbol, frame in frames.items():
        target.write(symbol, frame.loc[frame.index < start])
    (replay.data_dir / REPLAY_MARKER).write_text(
        "replay workspace: the server may use a replay clock\n"
    )
    set_replay_time(replay.data_dir, start + SETTLE)
    env_file = workspace / "env.yaml"
    env_file.write_text(yaml.safe_dump({
        "symbols": ",".join(settings.symbols), "timeframe": settings.timeframe,
        "data_dir": str(replay.data_dir), "registry_dir": str(replay.registry_dir),
        "horizon": settings.horizon, "seed": settings.seed,
    }))  # fmt: skip
    return replay, {"frames": frames, "bars": bars, "env_file": env_file}


def _pick_endpoint(rng: random.Random) -> str:
    draw, cumulative = rng.random(), 0.0
    for path, weight in ENDPOINT_MIX:
        cumulative += weight
        if draw < cumulative:
            return path
    return ENDPOINT_MIX[-1][0]


def run_replay(
    settings: Settings, workspace: Path, config: ReplayConfig | None = None
) -> ReplayOutcome:
    """Replay the newest `config.hours` of the store through a server on a free port."""
    from levibot.drift import prod_reference, run_drift_check, save_reference
    from levibot.tuning import run_tuning

    config = config or ReplayConfig()
    if config.hours > settings.holdout_hours:
        raise ValueError(
            f"replaying {config.hours} h but only the last {settings.holdout_hours} h were held "
            "out of training: the replay would score models on data they were fitted on"
        )
    wall_start = time.monotonic()
    replay, prepared = prepare_workspace(settings, workspace, config.hours)
    frames, bars = prepared["frames"], prepared["bars"]
    store = FeatureStore(replay.data_dir / "store", replay.timeframe)
    reference = save_reference(
        workspace / "drift_reference.npz", prod_reference(replay)
    )  # fitted once: every 15-min check then only reads the current window
    update_canary_policy(canary_policy_path(replay), enabled=True, fraction=config.canary_fraction)
    registry = load_registry(registry_path(replay))
    write_json_atomic(replay.data_dir / "serving" / "marathon.json", {
        "started_at": (bars[0] + store.bar_length + SETTLE).isoformat(), "mode": "replay",
        "prod": registry.prod.id,
        "candidate": registry.candidate.id if registry.candidate else None,
        "canary_fraction": config.canary_fraction, "hours": config.hours,
    })  # fmt: skip
    server = start_server(
        prepared["env_file"], workers=config.workers, log_path=workspace / "server.log",
        extra_env={CLOCK_ENV: "replay"},
    )  # fmt: skip
    rng = random.Random(config.seed)
    clients = [f"client-{i:03d}" for i in range(config.clients)]
    requests: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    try:
        server.wait_healthy()
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            for i, bar in enumerate(bars):
                step_start = time.monotonic()
                now = bar + store.bar_length + SETTLE
                set_replay_time(replay.data_dir, now)  # the clock first: no bar before its close
                for symbol, frame in frames.items():
                    store.write(symbol, frame.loc[frame.index <= bar])
                for _ in range(config.requests_per_bar):
                    path = _pick_endpoint(rng)
                    symbol = rng.choice(replay.symbols)
                    started = time.perf_counter()
                    response = client.get(path, params={"symbol": symbol},
                                          headers={"X-Client-Id": rng.choice(clients)})  # fmt: skip
                    body = response.json() if response.status_code == 200 else {}
                    requests.append({
                        "bar": bar.isoformat(), "path": path, "status": response.status_code,
                        "latency_ms": 1000 * (time.perf_counter() - started),
                        "variant": body.get("variant"), "signal": body.get("signal"),
                        "reason": body.get("reason"),
                    })  # fmt: skip
                point: dict[str, Any] = {"bar": bar.isoformat(), "now": now.isoformat()}
                if i % config.drift_every_bars == 0:
                    point["drift"] = run_drift_check(
                        replay, now=now, reference_path=reference
                    ).status
                if i % config.tune_every_bars == config.tune_every_bars - 1:
                    point["weights"] = run_tuning(replay, now=now).weights
                health = client.get("/healthz").json()
                point.update(
                    staleness=health["feature_staleness_sec"]["worst"], ok=health["ok"],
                    kill_switch=health["kill_switch"], registry_status=health["registry_status"],
                )  # fmt: skip
                timeline.append(point)
                if config.speed > 0:
                    budget = store.bar_length.total_seconds() / config.speed
                    time.sleep(max(0.0, budget - (time.monotonic() - step_start)))
    finally:
        server.stop()
    latencies = np.array([r["latency_ms"] for r in requests]) if requests else np.zeros(1)
    summary = {
        "workspace": str(workspace),
        "hours": config.hours,
        "bars": len(bars),
        "start": bars[0].isoformat(),
        "end": (bars[-1] + store.bar_length).isoformat(),
        "requests": len(requests),
        "errors": sum(r["status"] >= 500 for r in requests),
        "client_errors": sum(400 <= r["status"] < 500 for r in requests),
        "latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)),
        },
        "served_by_variant": pd.Series([r["variant"] for r in requests]).value_counts().to_dict(),
        "timeline": timeline,
        "wall_seconds": time.monotonic() - wall_start,
    }
    write_json_atomic(workspace / "replay_summary.json", summary)
    return ReplayOutcome(workspace, replay, summary)


def load_replay(workspace: Path, base: Settings | None = None) -> tuple[Settings, dict[str, Any]]:
    """The settings and summary of a finished replay (for evaluate)."""
    from levibot.io import read_json

    settings = load_settings(workspace / "env.yaml")
    return (base and workspace_settings(base, workspace)) or settings, read_json(
        workspace / "replay_summary.json"
    )
