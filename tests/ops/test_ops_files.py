"""Static checks of the monitoring files in ops/ (Grafana dashboard, Prometheus config and alerts).

The metric names below are the contract with the FastAPI server's ``GET /metrics``: every
``levibot_*`` name used by a dashboard panel or an alert rule must be one of them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import prometheus_tool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "ml_production.json"
PROVISIONING = ROOT / "ops" / "grafana" / "provisioning"
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_YML = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST_YML = PROMETHEUS_DIR / "alerts_test.yml"

# --- the metrics contract ----------------------------------------------------------------------
GAUGES = {
    "levibot_ml_model_ece",
    "levibot_ml_feature_staleness_seconds",
    "levibot_ml_drift_psi",
    "levibot_ml_drift_psi_critical_threshold",
    "levibot_ml_drift_status",
    "levibot_ensemble_weight",
    "levibot_ml_uncertainty",
    "levibot_paper_pnl",
    "levibot_ml_model_sharpe",
    "levibot_ml_model_max_dd",
    "levibot_kill_switch",
}
COUNTERS = {"levibot_ml_drift_events_total", "levibot_predictions_total"}
HISTOGRAMS = {"levibot_ml_prediction_confidence", "levibot_http_request_duration_seconds"}
LEVIBOT_METRICS = GAUGES | COUNTERS | HISTOGRAMS
ALLOWED_NAMES = LEVIBOT_METRICS | {
    f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_count", "_sum")
}

METRIC_RE = re.compile(r"levibot_[a-z_]+")

EXPECTED_ALERTS = {
    "LevibotModelECEHigh": "levibot_ml_model_ece",
    "LevibotFeaturesStale": "levibot_ml_feature_staleness_seconds",
    "LevibotDriftPSIHigh": "levibot_ml_drift_psi",
    "LevibotDriftCritical": "levibot_ml_drift_events_total",
    "LevibotLatencyP95High": "levibot_http_request_duration_seconds_bucket",
    "LevibotMemoryHigh": "process_resident_memory_bytes",
    "LevibotKillSwitchOn": "levibot_kill_switch",
    "LevibotDown": "up",
}
SEVERITIES = {"info", "warning", "critical"}


def metric_names(expr: str) -> set[str]:
    """The ``levibot_*`` identifiers in a PromQL expression, ignoring string literals."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(METRIC_RE.findall(without_strings))


def _panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested in collapsed rows."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def alert_rules() -> dict[str, dict]:
    doc = yaml.safe_load(ALERTS_YML.read_text(encoding="utf-8"))
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert len(alerts) == len([r for r in rules if "alert" in r]), "duplicate alert names"
    return alerts


# --- helper -------------------------------------------------------------------------------------
def test_metric_names_ignores_label_values() -> None:
    expr = 'sum by (le) (rate(levibot_http_request_duration_seconds_bucket{job="levibot_x"}[5m]))'
    assert metric_names(expr) == {"levibot_http_request_duration_seconds_bucket"}


# --- Grafana dashboard --------------------------------------------------------------------------
def test_dashboard_identity(dashboard: dict) -> None:
    assert dashboard["title"] == "ML Production"
    assert dashboard["uid"] == "levibot-ml-production"
    assert 36 <= dashboard["schemaVersion"] <= 41


def test_dashboard_datasource_is_templated(dashboard: dict) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        for ds in [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]:
            assert ds == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]


def test_every_panel_has_title_and_targets(dashboard: dict) -> None:
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        assert panel.get("title"), panel
        assert panel["type"] in {"timeseries", "stat", "bargauge"}, panel["title"]
        assert panel.get("targets"), f"{panel['title']!r} has no target"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t.get("expr", "").strip(), panel["title"]


def test_dashboard_metrics_are_in_the_contract(dashboard: dict) -> None:
    used: set[str] = set()
    for panel in _panels(dashboard):
        for t in panel.get("targets", []):
            names = metric_names(t["expr"])
            unknown = names - ALLOWED_NAMES
            assert not unknown, f"{panel['title']!r} uses unknown metrics {sorted(unknown)}"
            used |= names
    # the dashboard covers every levibot metric (histograms through their buckets)
    covered = {name.removesuffix("_bucket") for name in used}
    assert covered >= LEVIBOT_METRICS, sorted(LEVIBOT_METRICS - covered)


def test_dashboard_required_panels(dashboard: dict) -> None:
    by_title = {p["title"]: p for p in _panels(dashboard)}
    exprs = {title: " ".join(t["expr"] for t in p["targets"]) for title, p in by_title.items()}

    def threshold_values(title: str) -> list[float]:
        steps = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return [s["value"] for s in steps if s["value"] is not None]

    assert "levibot_ml_model_ece" in exprs["Model ECE"]
    assert threshold_values("Model ECE") == [0.06]
    assert threshold_values("Feature staleness per symbol") == [1800]
    drift = "Drift PSI / its limit, top 5"  # PSI as a share of each feature's own limit
    assert (
        "topk(5, levibot_ml_drift_psi / on(job, instance, feature) "
        "levibot_ml_drift_psi_critical_threshold)" in exprs[drift]
    )
    assert "levibot_ml_drift_status" in exprs[drift]
    assert threshold_values(drift) == [0.67, 1.0]
    assert "rate(levibot_ml_drift_events_total" in exprs["Drift events (rate by severity)"]
    assert "severity" in exprs["Drift events (rate by severity)"]
    assert "histogram_quantile(0.95" in exprs["Request latency p95"]
    assert "rate(levibot_predictions_total" in exprs["Predictions by variant / signal"]
    assert by_title["Kill switch"]["type"] == "stat"
    pnl = exprs["Paper PnL 1D / 7D by model"]
    assert 'window="1d"' in pnl and 'window="7d"' in pnl
    for title, metric in [
        ("Ensemble weights", "levibot_ensemble_weight"),
        ("Model uncertainty per symbol", "levibot_ml_uncertainty"),
        ("Sharpe by model", "levibot_ml_model_sharpe"),
        ("MaxDD by model", "levibot_ml_model_max_dd"),
    ]:
        assert metric in exprs[title]


def test_grafana_provisioning() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources.yaml").read_text(encoding="utf-8"))
    assert datasources["apiVersion"] == 1
    (prom,) = [d for d in datasources["datasources"] if d["type"] == "prometheus"]
    assert prom["url"] == "http://localhost:9090"
    assert prom["isDefault"] is True

    dashboards = yaml.safe_load((PROVISIONING / "dashboards.yaml").read_text(encoding="utf-8"))
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


# --- Prometheus ---------------------------------------------------------------------------------
def test_prometheus_config_structure() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "levibot"]
    interval = job.get("scrape_interval", config.get("global", {}).get("scrape_interval"))
    assert interval == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:8000"]


def test_all_alerts_present(alert_rules: dict[str, dict]) -> None:
    assert set(alert_rules) == set(EXPECTED_ALERTS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_alert_rule(alert_rules: dict[str, dict], name: str) -> None:
    rule = alert_rules[name]
    expr = rule["expr"]
    assert EXPECTED_ALERTS[name] in expr
    unknown = metric_names(expr) - ALLOWED_NAMES
    assert not unknown, f"{name} uses unknown metrics {sorted(unknown)}"
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()


def test_alert_thresholds(alert_rules: dict[str, dict]) -> None:
    def compact(name: str) -> str:
        return re.sub(r"\s+", "", alert_rules[name]["expr"])

    assert compact("LevibotModelECEHigh").endswith(">0.06")
    assert alert_rules["LevibotModelECEHigh"]["for"] == "15m"
    assert compact("LevibotFeaturesStale").endswith(">1800")
    assert alert_rules["LevibotFeaturesStale"]["for"] == "5m"
    # each feature's own calibrated limit, not one number for all features
    assert compact("LevibotDriftPSIHigh") == (
        "levibot_ml_drift_psi>on(job,instance,feature)levibot_ml_drift_psi_critical_threshold"
    )
    assert alert_rules["LevibotDriftPSIHigh"]["for"] == "15m"
    assert compact("LevibotDriftCritical") == (
        'increase(levibot_ml_drift_events_total{severity="critical"}[30m])>0'
    )
    assert alert_rules["LevibotDriftCritical"]["labels"]["severity"] == "critical"
    latency = compact("LevibotLatencyP95High")
    assert latency.startswith("histogram_quantile(0.95,") and "[5m]" in latency
    assert latency.endswith(">2")
    assert 'route=~"/ml/.+"' in latency  # predictions, not scrapes and health probes
    assert compact("LevibotMemoryHigh") == 'process_resident_memory_bytes{job="levibot"}>4e9'
    assert alert_rules["LevibotMemoryHigh"]["for"] == "10m"
    assert compact("LevibotKillSwitchOn") == "levibot_kill_switch==1"
    assert alert_rules["LevibotKillSwitchOn"]["labels"]["severity"] == "info"
    assert compact("LevibotDown") == 'up{job="levibot"}==0'
    assert alert_rules["LevibotDown"]["for"] == "2m"


def test_alert_unit_tests_cover_key_alerts() -> None:
    doc = yaml.safe_load(ALERTS_TEST_YML.read_text(encoding="utf-8"))
    assert doc["rule_files"] == ["alerts.yml"]
    cases = [c for test in doc["tests"] for c in test.get("alert_rule_test", [])]
    for name in (
        "LevibotModelECEHigh", "LevibotFeaturesStale", "LevibotDriftPSIHigh",
        "LevibotDriftCritical",
    ):  # fmt: skip
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no silent case"


# --- promtool (skipped without it, except in CI: see tests/ops/conftest.py) ---------------------
@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", PROMETHEUS_YML],
        ["check", "rules", ALERTS_YML],
        ["test", "rules", ALERTS_TEST_YML],
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: list) -> None:
    result = subprocess.run(
        [prometheus_tool("promtool"), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_clean_keeps_serving_state_registry_and_run_history():
    """`make clean` used to remove all of data/ (a live marathon's shadow logs and books)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(["make", "-n", "-C", str(root), "clean"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    removed = dry.split()
    assert "data" not in removed and "registry" not in removed and "reports/runs" not in removed
    assert "data/store" in removed and "reports/*.html" in removed
    refused = subprocess.run(["make", "-C", str(root), "clean-all"], capture_output=True, text=True)
    assert refused.returncode != 0 and "CONFIRM=yes" in refused.stdout + refused.stderr
