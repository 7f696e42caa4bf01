"""Behaviour of the HTTP API through FastAPI's TestClient (real models, real files)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from levibot.data.store import FeatureStore
from levibot.online.service import PredictionService
from levibot.registry import update_canary_policy
from levibot.state.paths import Paths
from serving.app import create_app
from serving.schemas import DeepPrediction, EnsemblePrediction, Prediction
from tests.serving.conftest import AUTH, TOKEN


def test_health_reports_models_staleness_and_state(client, service):
    body = client.get("/healthz").json()
    assert body["ok"] is True
    assert body["prod_model_id"] and body["candidate_model_id"]
    assert body["registry_status"] == "ok"
    assert body["feature_staleness_sec"]["per_symbol"]["BTCUSDT"] == pytest.approx(300.0)
    assert body["kill_switch"] is False
    assert body["canary"]["enabled"] is False


@pytest.mark.parametrize(
    ("path", "extra", "schema"),
    [("/ml/predict", set(), Prediction),
     ("/ml/predict_deep", {"mu", "epistemic", "aleatoric"}, DeepPrediction),
     ("/ml/predict_ensemble", {"weights", "components"}, EnsemblePrediction)],
)  # fmt: skip
def test_predictions_answer_every_field(client, path, extra, schema):
    response = client.get(path, params={"symbol": "btcusdt"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["symbol"] == "BTCUSDT"
    assert body["bar_time"] == "2026-01-14T23:45:00+00:00"
    assert 0 <= body["p_up"] <= 1 and body["p_down"] == pytest.approx(1 - body["p_up"])
    assert body["signal"] in {"ENTRY", "EXIT", "HOLD"}
    assert body["variant"] == "prod"  # canary disabled by default
    assert body["exit_threshold"] < body["entry_threshold"]
    assert extra <= set(body)
    assert (
        schema.model_validate(body).model_dump(exclude_unset=True) == body
    )  # the documented shape


def test_second_request_on_the_same_bar_is_a_cache_hit(client, service, monkeypatch):
    calls = []
    release = service.snapshot().prod
    original = release.deep_samples
    monkeypatch.setattr(
        release, "deep_samples", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    first = client.get("/ml/predict_deep", params={"symbol": "ETHUSDT"}).json()
    second = client.get("/ml/predict_deep", params={"symbol": "ETHUSDT"}).json()
    assert first["p_up"] == second["p_up"] and len(calls) == 1


def test_sweeping_sample_counts_costs_one_mc_draw_per_bar(client, service, monkeypatch):
    """Each n_samples used to be a new cache key and a new forward pass: two clients
    sweeping 200..1 stalled the server. Now every n is a prefix of one draw per bar."""
    draws = []
    for release in (service.snapshot().prod, service.snapshot().candidate):
        original = release.deep_samples
        monkeypatch.setattr(
            release, "deep_samples",
            lambda *a, _o=original, **k: draws.append(k["n_samples"]) or _o(*a, **k),
        )  # fmt: skip
    answers = {
        n: client.get("/ml/predict_deep", params={"symbol": "BTCUSDT", "n_samples": n}).json()
        for n in (200, 150, 37, 20, 2, 1)
    }
    assert draws == [200, 200]  # prod + candidate, once each
    assert answers[1]["epistemic"] == 0.0  # one sample: no spread
    assert len({a["p_up"] for a in answers.values()}) > 1  # n still matters
    assert len(service._cache) <= 2 * (2 + 6)  # draws + answers of this bar only


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/ml/predict", {"symbol": "DOGEUSDT"}, 404, "BTCUSDT"),
        ("/ml/predict", {"symbol": "../etc"}, 422, "pattern"),
        ("/ml/predict", {}, 422, "symbol"),
        ("/ml/predict_deep", {"symbol": "BTCUSDT", "n_samples": 0}, 422, "greater than or equal"),
        ("/ml/predict_deep", {"symbol": "BTCUSDT", "n_samples": 10_000}, 422, "less than"),
        ("/ml/predict_deep", {"symbol": "BTCUSDT", "n_samples": "many"}, 422, "integer"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(client, path, params, status, message):
    response = client.get(path, params=params)
    assert response.status_code == status
    assert message in response.text and "Traceback" not in response.text


def test_admin_endpoints_need_the_token(client, monkeypatch):
    assert client.post("/ml/kill", params={"enabled": "true"}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/ml/kill", params={"enabled": "true"}, headers=wrong).status_code == 401
    monkeypatch.delenv("LEVIBOT_ADMIN_TOKEN")
    response = client.post("/ml/kill", params={"enabled": "true"}, headers=AUTH)
    assert response.status_code == 503 and "LEVIBOT_ADMIN_TOKEN" in response.text
    assert client.get("/healthz").status_code == 200  # reads stay open


@pytest.mark.parametrize(
    ("params", "message"),
    [({"enabled": "maybe"}, "boolean"), ({"fraction": 1.5}, "less than or equal"),
     ({"fraction": -0.1}, "greater than or equal")],
)  # fmt: skip
def test_bad_admin_parameters_are_4xx(client, params, message):
    path = "/ml/kill" if "enabled" in params else "/canary"
    response = client.post(path, params=params, headers=AUTH)
    assert response.status_code == 422 and message in response.text


def test_kill_switch_forces_hold_persists_and_is_audited(client, project, clock):
    assert client.post("/ml/kill", params={"enabled": "true"}, headers=AUTH).json()["kill_switch"]
    for path in ("/ml/predict", "/ml/predict_deep", "/ml/predict_ensemble"):
        body = client.get(path, params={"symbol": "BTCUSDT"}).json()
        assert (body["signal"], body["reason"]) == ("HOLD", "kill_switch")
    assert PredictionService(project, clock=clock).kill_switch.is_on()  # survives a restart
    client.post("/ml/kill", params={"enabled": "false"}, headers=AUTH)
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()["reason"] != "kill_switch"
    audit = (project.data_dir / "serving" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in audit] == ["kill_switch", "kill_switch"]


def test_stale_features_force_hold(client, clock):
    clock.now += pd.Timedelta(hours=2)
    body = client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()
    assert (body["signal"], body["reason"]) == ("HOLD", "stale_features")
    assert body["staleness_sec"] == pytest.approx(2 * 3600 + 300)


def test_canary_split_is_sticky_per_client_and_follows_the_fraction(client):
    assert client.post(
        "/canary", params={"enabled": "true", "fraction": 1.0}, headers=AUTH
    ).is_success
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()["variant"] == "canary"
    client.post("/canary", params={"fraction": 0.3}, headers=AUTH)
    variants = {}
    for i in range(200):
        headers = {"X-Client-Id": f"client-{i}"}
        first = client.get("/ml/predict", params={"symbol": "BTCUSDT"}, headers=headers).json()
        again = client.get("/ml/predict", params={"symbol": "BTCUSDT"}, headers=headers).json()
        assert first["variant"] == again["variant"]
        variants[i] = first["variant"]
    share = sum(v == "canary" for v in variants.values()) / len(variants)
    assert 0.2 < share < 0.4


def test_candidate_with_poor_calibration_gets_no_traffic(client, project):
    update_canary_policy(
        Paths.of(project).canary_policy,
        enabled=True,
        fraction=1.0,
        thresholds={"ece": {"target": 0.0, "acceptable": 0.0, "tighten": 0.0}},
    )
    client.post("/registry/reload", headers=AUTH)
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()["variant"] == "prod"
    assert "ece.tighten" in client.get("/healthz").json()["canary"]["reason"]


def test_candidate_losing_on_its_test_window_gets_no_traffic(client, project):
    update_canary_policy(
        Paths.of(project).canary_policy,
        enabled=True,
        fraction=1.0,
        thresholds={"canary_min_sharpe": 50.0},
    )
    client.post("/registry/reload", headers=AUTH)
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()["variant"] == "prod"
    assert "min_sharpe" in client.get("/healthz").json()["canary"]["reason"]


def test_every_request_shadow_logs_both_variants(client, service):
    for _ in range(3):
        client.get("/ml/predict", params={"symbol": "BTCUSDT"})
    logged = service.shadow.predictions()
    assert len(logged) == 6
    assert set(logged["variant"]) == {"prod", "canary"}
    assert logged.groupby("request_id")["served"].sum().eq(1).all()


def test_paper_books_act_once_per_bar(client, service, project, clock):
    for _ in range(5):
        client.get("/ml/predict", params={"symbol": "BTCUSDT"})
    book = json.loads((project.data_dir / "serving" / "paper" / "prod.json").read_text())
    assert "2026-01-14T23:45:00" in json.dumps(book)
    store = FeatureStore(project.data_dir / "store", "15m")
    frame = store.read("BTCUSDT")
    nxt = frame.iloc[[-1]].copy()
    nxt.index = nxt.index + pd.Timedelta(minutes=15)
    nxt.index.name = "timestamp"
    store.write("BTCUSDT", pd.concat([frame, nxt]))
    clock.now += pd.Timedelta(minutes=15)
    body = client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()
    assert body["bar_time"] == "2026-01-15T00:00:00+00:00"  # the feed noticed the new bar
    book = json.loads((project.data_dir / "serving" / "paper" / "prod.json").read_text())
    assert "2026-01-15T00:00:00" in json.dumps(book)


def test_hot_reload_refuses_a_corrupt_registry_and_keeps_serving(client, service, project):
    path = Paths.of(project).registry
    good = path.read_text()
    path.write_text(good[: len(good) // 2])
    service.watcher.refresh()
    health = client.get("/healthz").json()
    assert health["registry_status"].startswith("degraded")
    assert health["status"] == "degraded" and health["ok"] is False  # was ok: true
    assert str(project.registry_dir) not in client.get("/healthz").text  # no path
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).status_code == 200
    path.write_text(good)
    service.watcher.refresh()
    health = client.get("/healthz").json()
    assert health["registry_status"] == "ok" and health["status"] == "ok" and health["ok"]
    assert health["problems"] == []


def test_weights_file_change_is_picked_up(client, service, project):
    (project.registry_dir / "ensemble_weights.json").write_text(
        '{"weights": {"lgbm": 1, "deep": 0}}'
    )
    service.watcher.refresh()
    body = client.get("/ml/predict_ensemble", params={"symbol": "BTCUSDT"}).json()
    assert body["weights"] == {"lgbm": 1.0, "deep": 0.0}
    assert body["p_up"] == pytest.approx(body["components"]["lgbm"])


def test_metrics_and_docs(client):
    client.get("/ml/predict_deep", params={"symbol": "BTCUSDT"})
    text = client.get("/metrics").text
    names = (
        "levibot_ml_model_ece", "levibot_ml_feature_staleness_seconds", "levibot_kill_switch",
        "levibot_predictions_total", "levibot_http_request_duration_seconds_bucket",
        "levibot_ml_uncertainty", "levibot_paper_pnl", "levibot_ensemble_weight",
    )  # fmt: skip
    for name in names:
        assert name in text
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "EnsemblePrediction" in schema["components"]["schemas"]


def test_status_endpoints(client):
    model = client.get("/ml/model/status").json()
    assert model["prod"]["policy"]["entry_threshold"] > model["prod"]["policy"]["exit_threshold"]
    automation = client.get("/automation/status").json()
    assert automation["marathon_running"] is False


def test_without_features_health_says_not_ok_and_predict_is_503(client, project):
    import shutil

    shutil.rmtree(project.data_dir / "store")
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["ok"] is False
    assert health.json()["feature_staleness_sec"]["per_symbol"]["BTCUSDT"] is None
    response = client.get("/ml/predict", params={"symbol": "BTCUSDT"})
    assert response.status_code == 503 and "run the ingest" in response.text
    assert client.get("/metrics").status_code == 200


def test_without_a_registry_every_endpoint_answers_cleanly(project, clock, monkeypatch):
    import shutil

    shutil.rmtree(project.registry_dir)
    monkeypatch.setenv("LEVIBOT_ADMIN_TOKEN", TOKEN)
    service = PredictionService(project, clock=clock)
    with TestClient(create_app(service=service), raise_server_exceptions=False) as fresh:
        health = fresh.get("/healthz").json()
        assert health["ok"] is False and health["registry_status"].startswith("degraded")
        response = fresh.get("/ml/predict", params={"symbol": "BTCUSDT"})
        assert response.status_code == 503 and "no prod model" in response.text
        for path in ("/ml/model/status", "/automation/status", "/metrics"):
            assert fresh.get(path).status_code == 200, path


@pytest.mark.parametrize("content", ['["not", "an", "object"]', '{"started_at": 17}', "{oops"])
def test_odd_state_files_do_not_break_automation_status(client, project, content):
    marathon = project.data_dir / "serving" / "marathon.json"
    marathon.parent.mkdir(parents=True, exist_ok=True)
    marathon.write_text(content)
    (project.registry_dir / "drift").mkdir(exist_ok=True)
    (project.registry_dir / "drift" / "latest.json").write_text(content)
    response = client.get("/automation/status")
    assert response.status_code == 200, response.text


def _metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one exposed sample, or None when it is not exposed."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(head + " "):
            return float(line.split()[-1])
    return None


def test_drift_is_on_metrics_after_a_real_drift_check(client, project):
    from levibot.drift import run_drift_check
    from levibot.state.drift_log import write_drift_report

    text = client.get("/metrics").text
    assert _metric(text, "levibot_ml_drift_status") == -1  # no check yet
    assert _metric(text, "levibot_ml_drift_events_total", severity="critical") == 0
    assert "levibot_ml_drift_psi{" not in text
    result = run_drift_check(project)
    text = client.get("/metrics").text
    for name, feature in result.features.items():
        if feature.psi is not None:
            assert _metric(text, "levibot_ml_drift_psi", feature=name) == pytest.approx(feature.psi)
            assert _metric(
                text, "levibot_ml_drift_psi_critical_threshold", feature=name
            ) == pytest.approx(feature.psi_critical_threshold)
    level = {"ok": 0, "warning": 1, "critical": 2}.get(result.status, -1)
    assert _metric(text, "levibot_ml_drift_status") == level
    # the event counter counts warning / critical checks across processes and restarts
    paths = Paths.of(project)
    before = _metric(text, "levibot_ml_drift_events_total", severity="critical")
    for minute in (1, 2):
        stamp = pd.Timestamp("2026-01-15T00:00:00Z") + pd.Timedelta(minutes=minute)
        write_drift_report(paths, stamp, {"status": "critical", "features": {}})
    text = client.get("/metrics").text
    assert _metric(text, "levibot_ml_drift_events_total", severity="critical") == before + 2
    assert _metric(text, "levibot_ml_drift_status") == 2
    assert "levibot_ml_drift_psi{" not in text  # the newest check had no per-feature PSI
    # an unreadable latest report: still 200, status -1, no crash
    paths.drift_latest.write_text("{not json")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert _metric(response.text, "levibot_ml_drift_status") == -1
