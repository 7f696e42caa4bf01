"""Drift on `GET /metrics`: the checks run in other processes and leave reports in the drift
log, so the server must expose the newest report's PSI, limits and status and the log's
running event count (a counter that survives restarts), and never fail a scrape over it."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from levibot.online.service import PredictionService
from levibot.state.drift_log import drift_event_counts, write_drift_report
from levibot.state.paths import Paths
from serving.app import create_app

STAMP = pd.Timestamp("2026-01-15T00:00:00Z")


@pytest.fixture
def client(project, clock) -> TestClient:
    service = PredictionService(project, clock=clock)
    with TestClient(create_app(service=service), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def paths(project) -> Paths:
    return Paths.of(project)


def samples(text: str, name: str) -> dict[str, float]:
    """Every exposed sample of `name`, keyed by its label text ('' when unlabelled)."""
    out = {}
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == name or head.startswith(name + "{"):
            out[head.removeprefix(name).strip("{}")] = float(value)
    return out


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


def report(status: str, **features: tuple[float | None, float | None]) -> dict:
    """A drift report as the check writes it: feature -> (psi, psi_critical_threshold)."""
    return {
        "status": status,
        "features": {
            name: {"psi": psi, "psi_critical_threshold": limit, "status": status}
            for name, (psi, limit) in features.items()
        },
    }


def test_no_drift_check_yet_means_no_psi_status_minus_one_and_zero_events(client, paths):
    assert not paths.drift_latest.exists()
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_psi") == {}
    assert samples(text, "levibot_ml_drift_psi_critical_threshold") == {}
    assert samples(text, "levibot_ml_drift_status") == {"": -1.0}
    assert samples(text, "levibot_ml_drift_events_total") == {
        'severity="warning"': 0.0,
        'severity="critical"': 0.0,
    }
    assert "# TYPE levibot_ml_drift_events_total counter" in text


def test_the_newest_report_sets_psi_limit_status_and_counts(client, paths):
    write_drift_report(paths, STAMP, report("critical", funding_rate=(0.42, 0.35)))
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_psi") == {'feature="funding_rate"': 0.42}
    assert samples(text, "levibot_ml_drift_psi_critical_threshold") == {
        'feature="funding_rate"': 0.35
    }
    assert samples(text, "levibot_ml_drift_status") == {"": 2.0}
    events = samples(text, "levibot_ml_drift_events_total")
    assert events == {'severity="warning"': 0.0, 'severity="critical"': 1.0}

    write_drift_report(paths, STAMP + pd.Timedelta(minutes=15), report("critical", atr=(0.5, 0.4)))
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_events_total")['severity="critical"'] == 2.0
    # the feature gone from the newest report is gone from /metrics too
    assert samples(text, "levibot_ml_drift_psi") == {'feature="atr"': 0.5}

    write_drift_report(paths, STAMP + pd.Timedelta(minutes=30), report("warning", atr=(0.3, 0.4)))
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_status") == {"": 1.0}
    assert samples(text, "levibot_ml_drift_events_total") == {
        'severity="warning"': 1.0,
        'severity="critical"': 2.0,
    }

    write_drift_report(paths, STAMP + pd.Timedelta(minutes=45), report("ok", atr=(0.01, 0.4)))
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_status") == {"": 0.0}
    assert samples(text, "levibot_ml_drift_events_total") == {
        'severity="warning"': 1.0,
        'severity="critical"': 2.0,
    }  # an ok check is not an event, and the count is carried forward
    assert drift_event_counts(paths) == {"warning": 1, "critical": 2}


def test_only_finite_numbers_become_series(client, paths):
    payload = report("insufficient_data", a=(0.1, None), b=(None, 0.3), c=(0.2, 0.3))
    payload["features"]["d"] = "not a feature"
    payload["features"]["e"] = {"psi": "0.4", "psi_critical_threshold": True}
    write_drift_report(paths, STAMP, payload)
    # JSON allows Infinity / NaN through Python's encoder: they must not become samples
    paths.drift_latest.write_text(
        paths.drift_latest.read_text().replace('"psi": 0.2', '"psi": Infinity')
    )
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_psi") == {'feature="a"': 0.1}
    assert samples(text, "levibot_ml_drift_psi_critical_threshold") == {
        'feature="b"': 0.3,
        'feature="c"': 0.3,
    }
    assert samples(text, "levibot_ml_drift_status") == {"": -1.0}  # not ok/warning/critical


@pytest.mark.parametrize(
    "content", ["{not json", '["a", "list"]', '{"status": ["x"], "features": 3}', "\udcff"]
)
def test_an_unreadable_latest_report_never_fails_the_scrape(client, paths, content):
    write_drift_report(paths, STAMP, report("critical", funding_rate=(0.42, 0.35)))
    paths.drift_latest.write_bytes(content.encode("utf-8", "surrogateescape"))
    text = scrape(client)
    assert samples(text, "levibot_ml_drift_psi") == {}
    assert samples(text, "levibot_ml_drift_status") == {"": -1.0}
    assert set(samples(text, "levibot_ml_drift_events_total").values()) == {0.0}
    # the next check counts from 0 again (Prometheus reads that as a counter reset)
    write_drift_report(paths, STAMP + pd.Timedelta(minutes=15), report("critical"))
    assert samples(scrape(client), "levibot_ml_drift_events_total")['severity="critical"'] == 1


def test_a_report_without_status_does_not_count(paths):
    write_drift_report(paths, STAMP, {"features": {}})
    write_drift_report(paths, STAMP + pd.Timedelta(minutes=15), {"status": "insufficient_data"})
    assert drift_event_counts(paths) == {"warning": 0, "critical": 0}
    payload = {"status": "warning"}
    write_drift_report(paths, STAMP + pd.Timedelta(minutes=30), payload)
    assert payload == {"status": "warning"}  # the caller's dict is not changed
    assert drift_event_counts(paths) == {"warning": 1, "critical": 0}
