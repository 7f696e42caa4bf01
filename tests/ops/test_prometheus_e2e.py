"""A real Prometheus scraping a real uvicorn: the monitoring files in ops/ work end to end.

tests/ops/test_ops_files.py checks the dashboard and the rules statically (metric names,
promtool). What that cannot see is whether the live server's ``/metrics`` and the PromQL
fit together: a label matcher that never matches, a ``on(...)`` join over labels one side
lacks, a series only exported after some event, a rule that never fires. So this test
starts the server (2 workers, multiprocess metrics, as ``make serve``), points a real
``prometheus`` at it with a test copy of ops/prometheus/prometheus.yml (1 s intervals)
and of alerts.yml (every ``for:`` shortened to 0s, rules otherwise as in the repo), and
then requires every panel query of ops/grafana/ml_production.json to return a series and
``LevibotKillSwitchOn`` to fire when the kill switch is turned on through the admin API
(and to stop when it is turned off).

Without ``prometheus`` on PATH the test skips, unless ``LEVIBOT_REQUIRE_PROMETHEUS=1``
(set in CI), where a missing binary is a failure instead.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import pytest
import yaml

from levibot.features import FEATURES
from levibot.marathon.server import free_port
from levibot.settings import load_settings
from levibot.state.drift_log import write_drift_report
from levibot.state.paths import Paths
from tests.ops.conftest import prometheus_tool
from tests.serving.conftest import running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "ml_production.json"

TOKEN = "prometheus-e2e-token"
JOB = "levibot"
ALERT = "LevibotKillSwitchOn"
DEADLINE = 30.0  # seconds, for each wait below; they normally take 1-3 s
POLL = 0.2
PATHS = ("/ml/predict", "/ml/predict_deep", "/ml/predict_ensemble")
SYMBOLS = ("BTCUSDT", "ETHUSDT")

# Grafana's variables in panel queries, with the value used here. `$__rate_interval` is
# max($__interval + scrape interval, 4 x scrape interval): with the data source's default
# 15 s scrape interval (the repo's prometheus.yml) that is 1m on a short time range. 1m also
# spans the whole test at its 1 s scrapes, so a rate always has its two samples.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}

# Dashboard expressions that cannot return a series here, with the reason. Empty: every
# series the dashboard needs is produced by the test (see test_prometheus_end_to_end).
EXPECTED_EMPTY: dict[str, str] = {}

T = TypeVar("T")


# --- helpers --------------------------------------------------------------------------------
def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query target, panels nested in collapsed rows included."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [
        (panel.get("title", "?"), target["expr"])
        for panel in panels
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def substitute_variables(expr: str) -> str:
    """`expr` with Grafana's variables replaced; an unknown variable fails loudly."""
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"no test value for Grafana variable(s) {leftover} in {expr!r}"
    return expr


def write_test_config(dest: Path, target: str) -> Path:
    """Copies of the repo's prometheus.yml and its rule files, fit for a fast test.

    The config scrapes `target` every second (job name and metrics_path kept) and evaluates
    the rules every second; in the rules every `for:` becomes 0s, nothing else changes.
    """
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    assert len(jobs) == 1, f"expected one scrape job {JOB!r} in {PROMETHEUS_YML}"
    job = jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics", "the server exports /metrics"
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [target]}]

    rule_files = []
    for name in config.get("rule_files", []):
        rules = yaml.safe_load((PROMETHEUS_DIR / name).read_text(encoding="utf-8"))
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "0s"
        copy = dest / Path(name).name
        copy.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
        rule_files.append(str(copy))
    assert rule_files, f"{PROMETHEUS_YML} loads no rule files"
    config["rule_files"] = rule_files
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def wait_for(check: Callable[[], T | None], what: str, describe: Callable[[], str]) -> T:
    """Poll `check` until it returns something truthy (returned), or fail after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {DEADLINE:.0f} s waiting for {what}\n{describe()}")
        time.sleep(POLL)


@dataclass
class Prometheus:
    """A running prometheus process and its HTTP API."""

    process: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    def log_tail(self, n: int = 3000) -> str:
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return f"--- prometheus stderr (tail) ---\n{text[-n:]}"

    def api(self, path: str, **params: str) -> Any:
        """`data` of a successful API answer; anything else fails with the log tail."""
        if self.process.poll() is not None:
            pytest.fail(f"prometheus exited ({self.process.returncode})\n{self.log_tail()}")
        response = httpx.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body.get("status") == "success", (
            f"GET /api/v1/{path} {params}: {response.status_code} {body}\n{self.log_tail()}"
        )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def scalar(self, expr: str) -> float | None:
        """The value of a one-series query, None while it has no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alert_states(self, name: str) -> list[str]:
        alerts = self.api("alerts")["alerts"]
        return [a["state"] for a in alerts if a["labels"]["alertname"] == name]

    def rule(self, name: str) -> dict[str, Any]:
        for group in self.api("rules", type="alert")["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    return rule
        pytest.fail(f"rule {name} not loaded\n{self.log_tail()}")


@contextmanager
def running_prometheus(binary: str, config: Path, workdir: Path) -> Iterator[Prometheus]:
    """prometheus on a free 127.0.0.1 port, storage under `workdir`; always terminated.

    Port 0 cannot be handed to prometheus, so a free port is picked and, should another
    process take it before prometheus binds it, the start is retried on a new one.
    """
    stderr_path = workdir / "prometheus.stderr"
    for _attempt in range(3):
        port = free_port()
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
                 "--log.level=info"],
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        prom = Prometheus(process, f"http://127.0.0.1:{port}", stderr_path)
        try:
            if _wait_ready(prom):
                yield prom
                return
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if "address already in use" not in stderr_path.read_text(errors="replace"):
            break
    pytest.fail(f"prometheus did not become ready\n{prom.log_tail()}")


def _wait_ready(prom: Prometheus) -> bool:
    """True once /-/ready answers 200; False if prometheus exits or DEADLINE passes."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and prom.process.poll() is None:
        try:
            if httpx.get(f"{prom.base_url}/-/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(POLL)
    return False


def send_predictions(base: str, rounds: int) -> int:
    """`rounds` requests to each prediction endpoint and symbol; all must answer 200."""
    sent = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(rounds):
            for path in PATHS:
                for symbol in SYMBOLS:
                    response = client.get(path, params={"symbol": symbol})
                    assert response.status_code == 200, (path, symbol, response.text)
                    sent += 1
    return sent


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Session scope so a skip (or CI failure) happens before the project is trained."""
    return prometheus_tool("prometheus")


@pytest.fixture
def server(trained_root: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with running_server(trained_root, tmp_path, workers=2, token=TOKEN) as (base, root):
        yield base, root


# --- the test -------------------------------------------------------------------------------
def test_prometheus_end_to_end(
    prometheus_bin: str, server: tuple[str, Path], tmp_path: Path
) -> None:
    base, root = server
    # The drift panels and LevibotDriftPSIHigh read the newest drift report, which a drift
    # check writes (cron / marathon); without one there are no PSI series. Write an "ok" one.
    paths = Paths.of(load_settings(root / "env.yaml", root=root))
    write_drift_report(paths, "2026-01-15T00:00:00Z", {
        "status": "ok",
        "features": {name: {"psi": 0.05, "psi_critical_threshold": 0.25} for name in FEATURES[:3]},
    })  # fmt: skip

    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    config = write_test_config(workdir, base.removeprefix("http://"))
    with running_prometheus(prometheus_bin, config, workdir) as prom:
        # 1. a scrape happened and succeeded
        def levibot_target() -> dict[str, Any] | None:
            for target in prom.api("targets", state="active")["activeTargets"]:
                if target["labels"].get("job") == JOB and target["health"] == "up":
                    return target
            return None

        target = wait_for(
            levibot_target, "the levibot target to be up",
            lambda: f"{prom.api('targets')}\n{prom.log_tail()}",
        )  # fmt: skip
        assert target["scrapeUrl"] == f"{base}/metrics"

        # 2. traffic in two batches, each seen by a scrape, so rates over them are not zero
        total = 0
        counted = f'sum(levibot_predictions_total{{job="{JOB}"}})'
        for rounds in (2, 2):
            total += send_predictions(base, rounds)
            wait_for(
                lambda n=total: prom.scalar(counted) == n,
                f"a scrape counting {total} predictions",
                lambda: f"{prom.query('levibot_predictions_total')}\n{prom.log_tail()}",
            )  # fmt: skip

        # 3. every panel query of the dashboard returns a series
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        queries = panel_queries(dashboard)
        assert len(queries) >= 10, queries
        results: dict[str, list[dict[str, Any]]] = {}
        empty: dict[str, str] = {}
        deadline = time.monotonic() + DEADLINE
        pending = dict.fromkeys(substitute_variables(expr) for _, expr in queries)
        while pending:
            for expr in list(pending):
                results[expr] = prom.query(expr)
                if results[expr] or expr in EXPECTED_EMPTY:
                    del pending[expr]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        for title, raw in queries:
            expr = substitute_variables(raw)
            if not results[expr]:
                empty[expr] = title
        assert set(empty) == set(EXPECTED_EMPTY), (
            f"dashboard queries without a series (panel titles): {empty}\n"
            f"expected empty: {EXPECTED_EMPTY}\n{prom.log_tail()}"
        )

        # ... and the traffic shows: predictions were counted at a positive rate, and the
        # latency and confidence quantiles are numbers (NaN when no request fell in the window)
        def values(expr: str) -> list[float]:
            return [float(series["value"][1]) for series in results[substitute_variables(expr)]]

        traffic = [raw for _, raw in queries if "rate(levibot_" in raw and "drift" not in raw]
        assert traffic, queries
        for raw in traffic:
            assert any(math.isfinite(v) and v > 0 for v in values(raw)), (raw, values(raw))
        assert values("max(levibot_kill_switch)") == [0.0]

        # 4. LevibotKillSwitchOn: inactive after an evaluation that saw the switch off ...
        seen_off = time.time()

        def evaluated_since_off() -> dict[str, Any] | None:
            rule = prom.rule(ALERT)
            last = rule.get("lastEvaluation", "")
            evaluated = last and not last.startswith("0001") and _epoch(last) > seen_off
            return rule if evaluated else None

        rule = wait_for(evaluated_since_off, f"an evaluation of {ALERT}", lambda: prom.log_tail())
        assert rule["health"] == "ok", rule
        assert rule["state"] == "inactive", rule
        assert prom.alert_states(ALERT) == [], prom.api("alerts")

        # ... firing once the switch is turned on through the admin API ...
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.post(f"{base}/ml/kill", params={"enabled": "true"}, headers=auth)
        assert response.status_code == 200 and response.json()["kill_switch"], response.text
        wait_for(
            lambda: prom.alert_states(ALERT) == ["firing"], f"{ALERT} to fire",
            lambda: f"{prom.api('alerts')}\n{prom.query('levibot_kill_switch')}\n{prom.log_tail()}",
        )  # fmt: skip
        (alert,) = [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == ALERT]
        assert alert["labels"]["job"] == JOB and alert["labels"]["severity"] == "info", alert
        assert float(alert["value"]) == 1.0, alert

        # ... and resolved once it is off again
        response = httpx.post(f"{base}/ml/kill", params={"enabled": "false"}, headers=auth)
        assert response.status_code == 200 and not response.json()["kill_switch"], response.text
        wait_for(
            lambda: prom.alert_states(ALERT) == [], f"{ALERT} to stop firing",
            lambda: f"{prom.api('alerts')}\n{prom.log_tail()}",
        )  # fmt: skip


def _epoch(rfc3339: str) -> float:
    """Seconds since the epoch of one of Prometheus' RFC 3339 (nanosecond) timestamps."""
    return pd.Timestamp(rfc3339).timestamp()
