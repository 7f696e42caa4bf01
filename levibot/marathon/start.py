"""`levibot marathon start`: the one-command go-live of a 48h canary-paper marathon.

Pre-flight (registry valid with both models and their artifacts, calibrated ECE within
the acceptable limit else a warning, a policy, drift not critical, features fresh,
shadow-log folder writable), initial ensemble tuning, the canary enabled at its policy's
fraction (10% by default), the API started as a managed process (pidfile + log file,
health-checked), both models answering, a kill-switch smoke test (on => predict says
HOLD => off), and the start snapshot, which records the settings the marathon runs with.
Every limit comes from the threshold model in the canary policy.
"""

from __future__ import annotations

import tempfile

import httpx
import pandas as pd

from levibot.marathon.server import start_server
from levibot.online.killswitch import KillSwitch
from levibot.registry import (
    load_canary_policy,
    load_registry,
    update_canary_policy,
    verify_artifacts,
)
from levibot.registry.canary import MARATHON_FRACTION
from levibot.settings import Settings, save_settings, settings_payload
from levibot.state.paths import Paths
from levibot.state.records import write_marathon
from levibot.timeframe import utc_now


class PreflightError(RuntimeError):
    """A go-live check failed; the message says which and what to do."""


def _say(ok: bool | None, text: str) -> None:
    mark = {True: "x", False: " ", None: "!"}[ok]
    print(f"  [{mark}] {text}")


def preflight(settings: Settings, *, now: pd.Timestamp | None = None) -> list[str]:
    """Every check before traffic; returns warnings, raises PreflightError on a failure."""
    from levibot.drift import run_drift_check

    warnings = []
    paths = Paths.of(settings)
    limits = load_canary_policy(paths.canary_policy).thresholds
    registry = load_registry(paths.registry)
    if registry.prod is None or registry.candidate is None:
        raise PreflightError("the registry needs a prod and a candidate: run `make run`")
    for entry in (registry.prod, registry.candidate):
        verify_artifacts(entry, paths.registry.parent)
    _say(True, f"registry valid: prod {registry.prod.id}, candidate {registry.candidate.id}")
    acceptable = limits.ece.acceptable
    for kind, spec in registry.candidate.models.items():
        ece = spec.calibration.ece_calibrated
        ok = ece <= acceptable
        if not ok:
            warnings.append(f"candidate {kind} calibrated ECE {ece:.3f} > {acceptable}")
        _say(ok or None, f"candidate {kind} calibrated ECE {ece:.3f} (warning above {acceptable})")
    policy = registry.candidate.policy
    _say(True, f"policy entry {policy.entry_threshold} / exit {policy.exit_threshold}")
    drift = run_drift_check(settings)
    if drift.status == "critical":
        raise PreflightError(f"drift is critical ({drift.critical_features}): retrain first")
    _say(True, f"drift {drift.status}")
    store = paths.store()
    for symbol in settings.symbols:
        age = store.staleness_seconds(symbol, now=now)
        if age > limits.max_staleness_sec:
            raise PreflightError(
                f"{symbol} features are {age:.0f} s old (> {limits.max_staleness_sec:.0f}): "
                "run the ingest (`make run` or `ploomber build --partially ingest`)"
            )
    _say(True, "features fresh for every symbol")
    logs = paths.logs
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=logs):
        pass
    _say(True, f"shadow-log folder writable: {logs}")
    switch = KillSwitch(paths.kill_switch)
    if switch.is_on():
        state = switch.state()
        raise PreflightError(
            f"the kill-switch is ON ({state.reason or state.error}, by {state.actor}): find out "
            "why and release it deliberately before a marathon"
        )
    _say(True, "kill-switch is off")
    return warnings


def start_marathon(
    settings: Settings,
    *,
    port: int = 8000,
    workers: int = 2,
    now: pd.Timestamp | None = None,
    fraction: float = MARATHON_FRACTION,
) -> int:
    """Run the go-live checklist and leave the API running; returns the exit code.

    `now` (default: the real clock) is what feature staleness is judged against.
    """
    from levibot.tuning import run_tuning

    print("pre-flight:")
    warnings = preflight(settings, now=now)
    tuning = run_tuning(settings)
    _say(True, f"ensemble weights {tuning.weights} ({tuning.reason})")
    paths = Paths.of(settings)
    canary = update_canary_policy(paths.canary_policy, enabled=True, fraction=fraction)
    _say(True, f"canary enabled at {canary.fraction:.0%} (whether it is open: below)")
    env_file = save_settings(paths.server_settings, settings)
    prom_dir = paths.prometheus_dir
    prom_dir.mkdir(parents=True, exist_ok=True)
    for stale in prom_dir.glob("*.db"):
        stale.unlink()
    server = start_server(
        env_file, port=port, workers=workers, log_path=paths.server_log,
        pid_file=paths.server_pid,
        extra_env={"PROMETHEUS_MULTIPROC_DIR": str(prom_dir)},
    )  # fmt: skip
    try:
        health = server.wait_healthy()
        _say(health["ok"], f"API healthy at {server.base_url} (pid {server.process.pid})")
        symbol = settings.symbols[0]
        for path in ("/ml/predict", "/ml/predict_deep", "/ml/predict_ensemble"):
            response = httpx.get(f"{server.base_url}{path}", params={"symbol": symbol}, timeout=60)
            response.raise_for_status()
        _say(True, "both models answer on every endpoint")
        switch = KillSwitch(paths.kill_switch)
        switch.set(True, actor="marathon-start", reason="smoke test")
        held = httpx.get(
            f"{server.base_url}/ml/predict", params={"symbol": symbol}, timeout=30
        ).json()
        switch.set(False, actor="marathon-start", reason="smoke test passed")
        if held.get("reason") != "kill_switch":
            raise PreflightError(f"kill-switch smoke test failed: predict said {held}")
        _say(True, "kill-switch smoke test: on => HOLD => off")
        canary_state = httpx.get(f"{server.base_url}/healthz", timeout=10).json()["canary"]
        if not canary_state["open"]:
            raise PreflightError(
                f"the canary is enabled but closed ({canary_state['reason']}): no request "
                "would reach the candidate; fix the candidate or lower the guard in the "
                "canary policy's thresholds before starting a marathon"
            )
        _say(True, f"canary open: {canary_state['fraction']:.0%} of clients reach the candidate")
    except Exception:
        server.stop()
        raise
    registry = load_registry(paths.registry)
    snapshot = {
        "started_at": (utc_now() if now is None else pd.Timestamp(now)).isoformat(),
        "mode": "live",
        "prod": registry.prod.id, "candidate": registry.candidate.id,
        "ece": {k: m.calibration.ece_calibrated for k, m in registry.candidate.models.items()},
        "policy": registry.candidate.policy.model_dump(), "canary_fraction": canary.fraction,
        "warnings": warnings, "pid": server.process.pid, "url": server.base_url,
        "settings": settings_payload(settings),
    }  # fmt: skip
    write_marathon(paths, snapshot)
    server.detach()
    print(
        f"\nmarathon started; snapshot {paths.marathon}\n"
        f"watch:  curl -s {server.base_url}/healthz ; curl -s {server.base_url}/automation/status\n"
        "check:  levibot marathon check   (every 6-12 h; cron template in ops/cron/)\n"
        f'stop trading now: curl -X POST -H "Authorization: Bearer $LEVIBOT_ADMIN_TOKEN" '
        f"'{server.base_url}/ml/kill?enabled=true'\n"
        f"stop the API: kill $(cat {paths.server_pid})\n"
        "at T+48h: levibot marathon evaluate"
    )
    return 0
