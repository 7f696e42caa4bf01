"""The real server: uvicorn with 2 worker processes on a free loopback port.

Concurrent requests, the kill-switch seen by both workers, hot reload in both, whole
shadow-log lines, logged line counts equal to request counts, and the drift series.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from levibot.io import write_json_atomic
from levibot.settings import load_settings
from levibot.state.drift_log import write_drift_report
from levibot.state.paths import Paths
from tests.serving.conftest import running_server

pytestmark = pytest.mark.slow
TOKEN = "uvicorn-test-token"
PATHS = ("/ml/predict", "/ml/predict_deep", "/ml/predict_ensemble")


@pytest.fixture
def server(trained_root, tmp_path):
    with running_server(trained_root, tmp_path, workers=2, token=TOKEN) as (base, root):
        yield base, root


def get_many(base: str, n: int, *, threads: int = 8) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            return client.get(
                f"{base}{PATHS[i % 3]}",
                params={"symbol": ("BTCUSDT", "ETHUSDT")[i % 2]},
                headers={"X-Client-Id": f"client-{i % 17}"},
            )

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def prediction_lines(root: Path) -> list[str]:
    lines = []
    for path in sorted((root / "data" / "serving" / "logs").glob("predictions_*.jsonl")):
        lines += path.read_text().splitlines()
    return lines


def test_two_workers_share_state_and_log_whole_lines(server):
    base, root = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        httpx.post(
            f"{base}/canary", params={"enabled": "true", "fraction": 0.5}, headers=auth
        ).status_code
        == 200
    )

    responses = get_many(base, 120)
    assert all(r.status_code == 200 for r in responses), [
        r.text for r in responses if r.status_code != 200
    ]
    assert len({r.headers["X-Worker-Pid"] for r in responses}) == 2  # both workers answered
    assert {r.json()["variant"] for r in responses} == {"prod", "canary"}

    assert httpx.post(f"{base}/ml/kill", params={"enabled": "true"}, headers=auth).json()[
        "kill_switch"
    ]
    killed = get_many(base, 40)
    assert len({r.headers["X-Worker-Pid"] for r in killed}) == 2
    assert all((r.json()["signal"], r.json()["reason"]) == ("HOLD", "kill_switch") for r in killed)
    httpx.post(f"{base}/ml/kill", params={"enabled": "false"}, headers=auth)

    write_json_atomic(
        root / "registry" / "ensemble_weights.json", {"weights": {"lgbm": 0.9, "deep": 0.1}}
    )
    time.sleep(1.5)  # the watchers look at most every 0.5 s
    reloaded = [r for r in get_many(base, 30) if r.request.url.path == "/ml/predict_ensemble"]
    assert all(r.json()["weights"] == {"lgbm": 0.9, "deep": 0.1} for r in reloaded)

    lines = prediction_lines(root)
    records = [json.loads(line) for line in lines]  # every line is whole JSON
    total_requests = 120 + 40 + 30
    assert len(records) == 2 * total_requests  # served + shadow for every request
    assert sum(r["served"] for r in records) == total_requests

    metrics_text = httpx.get(f"{base}/metrics").text
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("levibot_predictions_total{")
    )
    assert counted == total_requests  # aggregated over both workers


def test_drift_series_are_whole_and_current_under_two_workers(server):
    """Multiprocess mode: each drift series once (not once per worker), and a feature gone
    from the newest report gone from every worker's answer."""
    base, root = server
    paths = Paths.of(load_settings(root / "env.yaml", root=root))
    stamp = "2026-01-15T00:00:00Z"
    old = {"a": {"psi": 0.9, "psi_critical_threshold": 0.5}, "b": {"psi": 0.1}}
    write_drift_report(paths, stamp, {"status": "critical", "features": old})

    def scrapes(n: int) -> list[httpx.Response]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: httpx.get(f"{base}/metrics", timeout=30), range(n)))

    assert all('levibot_ml_drift_psi{feature="a"} 0.9' in r.text for r in scrapes(40))
    new = {"b": {"psi": 0.2, "psi_critical_threshold": 0.4}}
    write_drift_report(paths, "2026-01-15T00:15:00Z", {"status": "critical", "features": new})
    responses = scrapes(60)
    assert len({r.headers["X-Worker-Pid"] for r in responses}) == 2
    for response in responses:
        drift = sorted(
            line for line in response.text.splitlines() if line.startswith("levibot_ml_drift_")
        )
        assert drift == [
            'levibot_ml_drift_events_total{severity="critical"} 2.0',
            'levibot_ml_drift_events_total{severity="warning"} 0.0',
            'levibot_ml_drift_psi_critical_threshold{feature="b"} 0.4',
            'levibot_ml_drift_psi{feature="b"} 0.2',
            "levibot_ml_drift_status 2.0",
        ]
