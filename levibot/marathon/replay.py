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

from levibot.io import read_json, write_json_atomic
from levibot.marathon.server import start_server
from levibot.online.clock import CLOCK_ENV, mark_replay_workspace, set_replay_time
from levibot.registry import load_registry, update_canary_policy
from levibot.registry.canary import MARATHON_FRACTION
from levibot.settings import Settings, load_recorded_settings, save_settings, settings_payload
from levibot.state.paths import Paths, Workspace
from levibot.state.records import write_marathon

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
    canary_fraction: float = MARATHON_FRACTION
    workers: int = 1
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> ReplayConfig:
        """The settings' replay: all held-out hours, their request rate and seed."""
        base = {
            "hours": settings.holdout_hours,
            "requests_per_bar": settings.replay_requests_per_bar,
            "seed": settings.seed,
        }
        return cls(**{**base, **{k: v for k, v in changes.items() if v is not None}})


@dataclass
class ReplayOutcome:
    workspace: Path
    settings: Settings
    summary: dict[str, Any] = field(default_factory=dict)


def workspace_settings(settings: Settings, workspace: Path) -> Settings:
    """The same settings, pointed at the replay workspace's folders."""
    ws = Workspace(Path(workspace))
    return settings.model_copy(update={"data_dir": ws.data_dir, "registry_dir": ws.registry_dir})


def prepare_workspace(settings: Settings, workspace: Path, hours: float) -> tuple[Settings, dict]:
    """Copy registry + store (cut at the replay start) and mark the folder as a replay.

    The workspace records the whole settings (its env file), so evaluating it later uses
    the settings it ran with, whatever the env file says by then.
    """
    if workspace.exists():
        shutil.rmtree(workspace)
    ws = Workspace(Path(workspace))
    replay = workspace_settings(settings, workspace)
    origin, target_paths = Paths.of(settings), Paths.of(replay)
    registry = load_registry(origin.registry)
    if registry.prod is None:
        raise RuntimeError(f"{origin.registry} has no prod model: run the pipeline first")
    # the marathon starts without drift history or tuned weights, as a live one would
    skip_dirs, skip_files = {origin.drift_dir.name}, {origin.ensemble_weights.name}
    shutil.copytree(
        origin.registry_dir, target_paths.registry_dir,
        ignore=lambda _, names: [
            n for n in names if n.endswith(".lock") or n in skip_dirs or n in skip_files
        ],
    )  # fmt: skip
    source, target = origin.store(), target_paths.store()
    frames = {symbol: source.read(symbol) for symbol in settings.symbols}
    missing = [s for s, f in frames.items() if f is None]
    if missing:
        raise RuntimeError(f"no features stored for {missing}: run the ingest first")
    end = min(frame.index[-1] for frame in frames.values()) + source.bar_length
    start = (end - pd.Timedelta(hours=hours)).floor(source.bar_length)
    bars = pd.date_range(start, end, freq=source.bar_length, inclusive="left")
    for symbol, frame in frames.items():
        target.write(symbol, frame.loc[frame.index < start])
    mark_replay_workspace(target_paths)
    set_replay_time(target_paths, start + SETTLE)
    env_file = save_settings(ws.settings_file, replay)
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
    workspace = Path(workspace).resolve()
    replay, prepared = prepare_workspace(settings, workspace, config.hours)
    ws, paths = Workspace(Path(workspace)), Paths.of(replay)
    frames, bars = prepared["frames"], prepared["bars"]
    store = paths.store()
    reference = save_reference(
        ws.drift_reference, prod_reference(replay)
    )  # fitted once: every 15-min check then only reads the current window
    fraction = config.canary_fraction
    canary = update_canary_policy(paths.canary_policy, enabled=True, fraction=fraction)
    registry = load_registry(paths.registry)
    write_marathon(paths, {
        "started_at": (bars[0] + store.bar_length + SETTLE).isoformat(), "mode": "replay",
        "prod": registry.prod.id,
        "candidate": registry.candidate.id if registry.candidate else None,
        "canary_fraction": fraction, "hours": config.hours,
        "settings": settings_payload(replay),
    })  # fmt: skip
    server = start_server(
        prepared["env_file"], workers=config.workers, log_path=ws.server_log,
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
                set_replay_time(paths, now)  # the clock first: no bar before its close
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
        "thresholds": canary.thresholds.model_dump(),
        "wall_seconds": time.monotonic() - wall_start,
    }
    write_json_atomic(ws.summary, summary)
    return ReplayOutcome(workspace, replay, summary)


def load_replay(workspace: Path) -> tuple[Settings, dict[str, Any]]:
    """The settings a finished replay ran with (as it recorded them) and its summary."""
    ws = Workspace(Path(workspace))
    if not ws.summary.exists():
        raise FileNotFoundError(
            f"no finished replay in {ws.root}: run `levibot marathon replay` (or `make run`)"
        )
    return load_recorded_settings(ws.settings_file), read_json(ws.summary)
