"""`levibot marathon replay`: drive the serving logic through held-out bars.

The replay copies the registry and the feature store (cut at the replay start) into a
workspace and then, bar by bar: appends the bar's feature rows to the store (an append,
not a rewrite), advances the clock to just after the bar's close, sends one
/ml/predict per symbol (the bar close that lets both paper books act) and a mix of
predict / predict_deep / predict_ensemble requests from many client ids, runs the
staleness guard and the drift check (every bar) and the ensemble tuning (hourly) on
simulated time. Shadow logs, paper trades, kill-switch and audit events accumulate in
the workspace exactly as they would live.

Two transports, one loop: over HTTP against a real uvicorn server in replay mode (see
`levibot.online.clock`), or in-process against `PredictionService` (no HTTP, one
worker), which is what `levibot marathon simulate` repeats many times.

The window starts `holdout_hours` before the data's end, so a 48 h marathon replays
the first 48 held-out hours and the 72 h extension continues it with the same bars.
Bars are the stored ones (a closed market has none; staleness counts open time only).
`feed_stops_after_hours` injects a dead feed: from then on no bar is appended.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
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
MARATHON_HOURS = 48.0  # the go-live guide's marathon; EXTEND replays all held-out hours


@dataclass
class ReplayConfig:
    hours: float = 48.0
    transport: str = "http"  # "http" (a real uvicorn server) or "inprocess"
    feed_stops_after_hours: float | None = None  # a dead feed from this hour on
    speed: float = 0.0  # simulated seconds per wall second; 0 = as fast as possible
    requests_per_bar: int = 12
    clients: int = 40
    drift_every_bars: int = 1
    tune_every_bars: int = 4  # 0 = no ensemble tuning (it does not change the decision)
    canary_fraction: float = MARATHON_FRACTION
    workers: int = 1
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> ReplayConfig:
        """The settings' replay: a marathon's hours (at most the held-out ones), their
        request rate and seed."""
        base = {
            "hours": min(settings.holdout_hours, MARATHON_HOURS),
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
    data_end = min(frame.index[-1] for frame in frames.values()) + source.bar_length
    start = (data_end - pd.Timedelta(hours=settings.holdout_hours)).floor(source.bar_length)
    end = start + pd.Timedelta(hours=hours)
    stored = frames[settings.symbols[0]].index
    for frame in frames.values():
        stored = stored.union(frame.index)
    bars = stored[(stored >= start) & (stored < end)]
    if bars.empty:
        raise RuntimeError(f"no stored bar in the replay window [{start}, {end})")
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


KIND_OF = {"/ml/predict": "lgbm", "/ml/predict_deep": "deep", "/ml/predict_ensemble": "ensemble"}


class ManualClock:
    """A clock the replay sets: the in-process service reads "now" from it."""

    def __init__(self, now: pd.Timestamp) -> None:
        self.now = pd.Timestamp(now)

    def __call__(self) -> pd.Timestamp:
        return self.now


class HttpTransport:
    """Requests to a real uvicorn server in replay mode (its clock is a file)."""

    def __init__(self, paths: Paths, env_file: Path, log_path: Path, workers: int) -> None:
        self.paths = paths
        self.server = start_server(env_file, workers=workers, log_path=log_path,
                                   extra_env={CLOCK_ENV: "replay"})  # fmt: skip
        self.server.wait_healthy()
        self.client = httpx.Client(base_url=self.server.base_url, timeout=60)

    def set_time(self, now: pd.Timestamp) -> None:
        set_replay_time(self.paths, now)

    def request(self, path: str, symbol: str, client_id: str) -> tuple[int, dict]:
        response = self.client.get(path, params={"symbol": symbol},
                                   headers={"X-Client-Id": client_id})  # fmt: skip
        return response.status_code, response.json() if response.status_code == 200 else {}

    def health(self) -> dict[str, Any]:
        return self.client.get("/healthz").json()

    def close(self) -> None:
        self.client.close()
        self.server.stop()


class InProcessTransport:
    """The same calls on a `PredictionService` in this process (no HTTP, one worker)."""

    def __init__(self, settings: Settings, now: pd.Timestamp, seed: int) -> None:
        from levibot.online.service import PredictionService

        self.clock = ManualClock(now)
        self.service = PredictionService(settings, clock=self.clock, seed=seed, reload_every=0)

    def set_time(self, now: pd.Timestamp) -> None:
        self.clock.now = pd.Timestamp(now)

    def request(self, path: str, symbol: str, client_id: str) -> tuple[int, dict]:
        from levibot.online.service import ServiceUnavailable

        try:
            return 200, self.service.predict(symbol, KIND_OF[path], client_id=client_id)
        except ServiceUnavailable:
            return 503, {}
        except ValueError:
            return 422, {}

    def health(self) -> dict[str, Any]:
        return self.service.health()

    def close(self) -> None:
        pass


def run_replay(
    settings: Settings, workspace: Path, config: ReplayConfig | None = None,
    *, reference: Path | None = None, progress: Callable[[int, int], None] | None = None,
) -> ReplayOutcome:  # fmt: skip
    """Replay `config.hours` of the held-out bars; see the module docstring.

    `reference`: a drift reference `.npz` fitted earlier for the release the checks
    compare with (`levibot.drift.reference_release`; the simulation reuses one across
    runs); by default it is fitted from the store once.
    """
    from levibot.drift import newest_reference, run_drift_check, save_reference
    from levibot.online.staleness_guard import guard_staleness
    from levibot.tuning import run_tuning

    config = config or ReplayConfig()
    if config.hours > settings.holdout_hours:
        raise ValueError(
            f"replaying {config.hours} h but only the last {settings.holdout_hours} h were held "
            "out of training: the replay would score models on data they were fitted on "
            "(raise holdout_hours and retrain to replay longer)"
        )
    if config.transport not in ("http", "inprocess"):
        raise ValueError(f"transport must be 'http' or 'inprocess', got {config.transport!r}")
    wall_start = time.monotonic()
    workspace = Path(workspace).resolve()
    replay, prepared = prepare_workspace(settings, workspace, config.hours)
    ws, paths = Workspace(Path(workspace)), Paths.of(replay)
    frames, bars = prepared["frames"], prepared["bars"]
    store = paths.store()
    if reference is None:  # fitted once: every check then only reads the current window
        reference = save_reference(ws.drift_reference, newest_reference(replay))
    fraction = config.canary_fraction
    canary = update_canary_policy(paths.canary_policy, enabled=True, fraction=fraction)
    limits = canary.thresholds
    registry = load_registry(paths.registry)
    write_marathon(paths, {
        "started_at": (bars[0] + store.bar_length + SETTLE).isoformat(), "mode": "replay",
        "prod": registry.prod.id,
        "candidate": registry.candidate.id if registry.candidate else None,
        "canary_fraction": fraction, "hours": config.hours,
        "settings": settings_payload(replay),
    })  # fmt: skip
    first_now = bars[0] + store.bar_length + SETTLE
    dead_from = (
        bars[0] + pd.Timedelta(hours=config.feed_stops_after_hours)
        if config.feed_stops_after_hours is not None else None
    )  # fmt: skip
    if config.transport == "http":
        transport: Any = HttpTransport(paths, prepared["env_file"], ws.server_log, config.workers)
    else:
        transport = InProcessTransport(replay, first_now, config.seed)
    rng = random.Random(config.seed)
    clients = [f"client-{i:03d}" for i in range(config.clients)]
    requests: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    appended = {symbol: pd.Timestamp(bars[0]) - store.bar_length for symbol in frames}
    shown = {symbol: frame.loc[frame.index < bars[0]] for symbol, frame in frames.items()}
    try:
        for i, bar in enumerate(bars):
            step_start = time.monotonic()
            now = bar + store.bar_length + SETTLE
            transport.set_time(now)  # the clock first: no bar before its close
            if dead_from is None or bar < dead_from:
                for symbol, frame in frames.items():
                    rows = frame.loc[(frame.index > appended[symbol]) & (frame.index <= bar)]
                    if len(rows):
                        store.append(symbol, rows)
                        appended[symbol] = rows.index[-1]
                        shown[symbol] = frame.loc[frame.index <= bar]
            calls = [("/ml/predict", symbol) for symbol in replay.symbols]  # the bar close
            calls += [(_pick_endpoint(rng), rng.choice(replay.symbols))
                      for _ in range(config.requests_per_bar)]  # fmt: skip
            for path, symbol in calls:
                started = time.perf_counter()
                status, body = transport.request(path, symbol, rng.choice(clients))
                requests.append({
                    "bar": bar.isoformat(), "path": path, "status": status,
                    "latency_ms": 1000 * (time.perf_counter() - started),
                    "variant": body.get("variant"), "signal": body.get("signal"),
                    "reason": body.get("reason"),
                })  # fmt: skip
            health = transport.health()
            point: dict[str, Any] = {"bar": bar.isoformat(), "now": now.isoformat()}
            per_symbol = health["feature_staleness_sec"]["per_symbol"]
            point["stale_guard"] = guard_staleness(
                paths, per_symbol, limit=limits.max_staleness_sec, now=now
            )
            if config.drift_every_bars and i % config.drift_every_bars == 0:
                checked = run_drift_check(replay, now=now, reference_path=reference, frames=shown)
                point["drift"] = checked.status
                point["loss_alarm"] = [  # the releases whose loss monitor has crossed
                    m["role"] for m in checked.extra.get("performance", []) if m["alarm_at"]
                ]
            if config.tune_every_bars and i % config.tune_every_bars == config.tune_every_bars - 1:
                point["weights"] = run_tuning(replay, now=now).weights
            if point["stale_guard"] or point.get("drift") == "critical":
                health = transport.health()
            point.update(
                staleness=health["feature_staleness_sec"]["worst"], ok=health["ok"],
                status=health["status"], problems=health["problems"],
                kill_switch=health["kill_switch"], registry_status=health["registry_status"],
                canary_open=health["canary"]["open"], canary_reason=health["canary"]["reason"],
            )  # fmt: skip
            timeline.append(point)
            if progress is not None:
                progress(i + 1, len(bars))
            if config.speed > 0:
                budget = store.bar_length.total_seconds() / config.speed
                time.sleep(max(0.0, budget - (time.monotonic() - step_start)))
    finally:
        transport.close()
    latencies = np.array([r["latency_ms"] for r in requests]) if requests else np.zeros(1)
    summary = {
        "workspace": str(workspace),
        "transport": config.transport,
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
        "thresholds": limits.model_dump(),
        "feed_stops_after_hours": config.feed_stops_after_hours,
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
