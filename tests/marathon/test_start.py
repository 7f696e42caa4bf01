"""`levibot marathon start` on a fresh tiny project: the whole go-live checklist, for real."""

from __future__ import annotations

import os
import signal

import httpx
import pandas as pd
import pytest

from levibot.io import read_json
from levibot.marathon.evaluate import MarathonError, evaluate_marathon
from levibot.marathon.live import live_summary
from levibot.marathon.server import free_port
from levibot.marathon.start import PreflightError, start_marathon
from levibot.online.killswitch import KillSwitch
from levibot.registry import load_canary_policy, update_canary_policy
from levibot.state.paths import Paths
from tests.conftest import END, tiny_settings, train_tiny_project

pytestmark = pytest.mark.slow


def test_start_runs_the_checklist_and_leaves_a_healthy_canary_server(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("LEVIBOT_"):
            monkeypatch.delenv(name)
    settings = train_tiny_project(tmp_path, days=40)
    paths = Paths.of(settings)
    port = free_port()
    with pytest.raises(PreflightError, match=r"enabled but closed \(candidate test Sharpe"):
        start_marathon(settings, port=port, workers=1, now=END + pd.Timedelta(minutes=5))
    assert not paths.server_pid.exists()  # the refused start left no server behind
    # the tiny models lose money on their test window: open the canary to go on
    update_canary_policy(paths.canary_policy, thresholds={"canary_min_sharpe": -100.0})
    port = free_port()
    try:
        now = END + pd.Timedelta(minutes=5)  # features judged fresh against this time
        assert start_marathon(settings, port=port, workers=1, now=now) == 0
        snapshot = read_json(paths.marathon)
        assert snapshot["canary_fraction"] == 0.10 and snapshot["candidate"]
        assert load_canary_policy(Paths.of(settings).canary_policy).enabled
        assert not KillSwitch(paths.kill_switch).is_on()  # the smoke test switched it back off
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["ok"] and health["canary"]["enabled"]
        assert (paths.server_pid).exists()
        for _ in range(6):
            httpx.get(f"http://127.0.0.1:{port}/ml/predict", params={"symbol": "BTCUSDT"})
        summary = live_summary(settings, url=f"http://127.0.0.1:{port}", now=now)
        assert summary["requests"] >= 6 and summary["errors"] == 0
        # started at the data's end: no bar has closed in the marathon yet
        with pytest.raises(MarathonError, match="holds no closed bar"):
            evaluate_marathon(settings, summary)
    finally:
        pid_file = paths.server_pid
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_start_refuses_stale_features(tmp_path):
    root = tmp_path / "project"
    train_tiny_project(root, days=40)
    settings = tiny_settings(root, days=40)
    with pytest.raises(PreflightError, match=r"run the ingest"):
        start_marathon(settings, port=free_port(), workers=1, now=END + pd.Timedelta(hours=2))
