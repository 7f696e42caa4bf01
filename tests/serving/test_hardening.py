"""Serving under attack: bounded metric labels, short path-free error bodies, every status
documented, reloads that re-verify artifacts, a last good snapshot shared with a restarted
worker, and number files refused when not finite."""

from __future__ import annotations

import json
import random
import shutil
import string

import pytest

from levibot.online.service import PredictionService
from levibot.registry import load_registry
from levibot.state.paths import Paths
from serving.app import create_app
from serving.metrics import HTTP_METHODS
from tests.serving.conftest import AUTH


def _latency_methods(metrics_text: str) -> set[str]:
    methods = set()
    for line in metrics_text.splitlines():
        if line.startswith("levibot_http_request_duration_seconds_count{"):
            methods.add(line.split('method="', 1)[1].split('"', 1)[0])
    return methods


def test_random_http_methods_do_not_grow_metrics(client):
    """Each random method token was a new latency series: 2,000 requests grew /metrics
    from 44 KB to 9.1 MB. Now an unknown method is 'other' and an unknown path 'unmatched'."""
    rng = random.Random(0)

    def junk(n: int) -> None:
        for _ in range(n):
            method = "".join(rng.choices(string.ascii_uppercase, k=40))
            client.request(method, "/ml/predict", params={"symbol": "BTCUSDT"})
            client.request(method, "/nowhere/" + method)

    junk(2)  # the bounded series exist from here on
    client.get("/metrics")
    before = client.get("/metrics").text
    junk(100)
    after = client.get("/metrics").text
    assert _latency_methods(after) <= HTTP_METHODS | {"other"}
    assert "other" in _latency_methods(after)
    assert 'route="unmatched"' in after and "/nowhere" not in after

    def series(text: str) -> set[str]:
        return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}

    assert series(after) - series(before) == set(), series(after) - series(before)


def test_a_huge_parameter_is_not_echoed_back(client):
    response = client.get("/ml/predict", params={"symbol": "X" * 20_000})
    assert response.status_code == 422
    assert len(response.content) < 1_000  # was the whole input, twice
    assert "symbol" in response.json()["detail"] and "XXXX" in response.json()["detail"]


def test_error_bodies_name_files_without_their_paths(client, service, project):
    paths = Paths.of(project)
    paths.registry.write_text("{broken")
    shutil.rmtree(paths.last_good)  # no sibling ever loaded it whole
    fresh = PredictionService(project, clock=service.clock)  # nothing good in memory
    from fastapi.testclient import TestClient

    with TestClient(create_app(service=fresh), raise_server_exceptions=False) as other:
        response = other.get("/ml/predict", params={"symbol": "BTCUSDT"})
        health = other.get("/healthz")
    assert response.status_code == 503
    for text in (response.text, health.text):
        assert str(project.registry_dir) not in text and "model_registry.json" in text


def test_openapi_documents_every_error_status(client):
    schema = client.get("/openapi.json").json()["paths"]
    predict = schema["/ml/predict"]["get"]["responses"]
    assert {"404", "409", "422", "503"} <= set(predict)
    assert predict["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
    kill = schema["/ml/kill"]["post"]["responses"]
    assert {"401", "409", "422", "503"} <= set(kill)


def test_reload_re_verifies_the_artifacts_of_releases_it_keeps(client, project):
    entry = load_registry(Paths.of(project).registry).prod
    booster = project.registry_dir / entry.models["lgbm"].artifacts["model"].path
    booster.unlink()
    answer = client.post("/registry/reload", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["registry_status"].startswith("degraded")  # was "ok"
    assert "missing file" in answer.json()["registry_status"]
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and not health["ok"]
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).status_code == 200


def test_a_restarted_worker_serves_the_last_good_release(client, service, project):
    served = client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()["model_id"]
    entry = load_registry(Paths.of(project).registry).prod
    (project.registry_dir / entry.models["lgbm"].artifacts["model"].path).unlink()
    restarted = PredictionService(project, clock=service.clock)  # a new worker process
    assert restarted.snapshot().prod is not None  # was None: 503 "no prod model"
    assert restarted.snapshot().prod.model_id == served
    assert restarted.watcher.status.startswith("degraded")
    assert "last good" in restarted.watcher.status
    out = restarted.predict("BTCUSDT", "lgbm")
    assert out["model_id"] == served


def test_a_worker_never_falls_back_past_a_good_live_registry(project, service):
    """The saved copy is only for a worker with nothing: a good live file always wins."""
    assert service.watcher.source == "live"
    again = PredictionService(project, clock=service.clock)
    assert again.watcher.source == "live" and again.watcher.status == "ok"


@pytest.mark.parametrize(
    "weights",
    ['{"weights": {"lgbm": NaN, "deep": 0.5}}', '{"weights": {"lgbm": Infinity, "deep": 1}}',
     '{"weights": {"lgbm": 1e308, "deep": 1e308}}', '{"weights": {"lgbm": -1, "deep": 2}}'],
)  # fmt: skip
def test_non_finite_weights_are_refused_like_a_corrupt_registry(client, service, project, weights):
    before = client.get("/ml/predict_ensemble", params={"symbol": "BTCUSDT"}).json()
    Paths.of(project).ensemble_weights.write_text(weights)
    service.watcher.refresh()
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and "weights" in health["registry_status"]
    response = client.get("/ml/predict_ensemble", params={"symbol": "BTCUSDT"})
    assert response.status_code == 200
    assert response.json()["weights"] == before["weights"]  # the last good weights
    assert 0.0 < response.json()["p_up"] < 1.0
    assert "NaN" not in client.get("/metrics").text.split("levibot_ml_prediction_confidence")[1]


def test_health_lists_its_problems_in_words(client, project):
    book = Paths.of(project).paper_book("candidate")
    book.parent.mkdir(parents=True, exist_ok=True)
    book.write_text(json.dumps({"label": "somebody else"}))
    health = client.get("/healthz").json()
    assert health["status"] == "degraded"
    assert any("paper book candidate" in p for p in health["problems"])


def test_the_bar_clock_drives_the_paper_books_without_any_request(service, project):
    """Books acted only when a client asked about a symbol, so shadow P&L followed the
    traffic; the bar clock acts on every symbol's newest closed bar by itself."""
    import time

    from fastapi.testclient import TestClient

    with TestClient(create_app(service=service, bar_clock_every=0.05)):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [book.state()["last_bar"] for book in service.books.values()]
            if all(set(s) == {"BTCUSDT", "ETHUSDT"} for s in states):
                break
            time.sleep(0.05)
    assert all(set(s) == {"BTCUSDT", "ETHUSDT"} for s in states), states
    assert service.shadow.predictions().empty  # no prediction was requested


def test_without_the_bar_clock_nothing_acts(service):
    from fastapi.testclient import TestClient

    with TestClient(create_app(service=service)):
        pass
    assert all(book.state()["last_bar"] == {} for book in service.books.values())


def test_ready_only_answers_from_memory_or_refuses_before_any_side_effect(service, project):
    """The event loop answers a request only when nothing may block; otherwise the call
    is refused before it logs, computes or lets a book act, and goes to a thread."""
    from levibot.online.readiness import NeedsWork

    with pytest.raises(NeedsWork):
        service.predict("BTCUSDT", "lgbm", ready_only=True)
    assert service.shadow.predictions().empty
    assert all(book.state()["last_bar"] == {} for book in service.books.values())
    first = service.predict("BTCUSDT", "lgbm")
    again = service.predict("BTCUSDT", "lgbm", ready_only=True)
    assert again["p_up"] == first["p_up"] and len(service.shadow.predictions()) == 4
    with pytest.raises(NeedsWork):  # deep outputs of this bar are not computed yet
        service.predict("BTCUSDT", "deep", ready_only=True)
    store = Paths.of(project).store()
    frame = store.read("BTCUSDT")
    newer = frame.iloc[[-1]].copy()
    newer.index = newer.index + store.bar_length
    newer.index.name = frame.index.name
    store.write("BTCUSDT", __import__("pandas").concat([frame, newer]))
    with pytest.raises(NeedsWork):  # the feature table changed: reading it may block
        service.predict("BTCUSDT", "lgbm", ready_only=True)


def test_openapi_lists_the_hand_read_parameters(client):
    params = client.get("/openapi.json").json()["paths"]["/ml/predict_deep"]["get"]["parameters"]
    by_name = {p["name"]: p for p in params}
    assert by_name["symbol"]["required"] and by_name["symbol"]["in"] == "query"
    assert by_name["n_samples"]["schema"]["maximum"] == 200
    assert by_name["X-Client-Id"]["in"] == "header" and not by_name["X-Client-Id"]["required"]


def test_the_saved_copy_survives_an_artifact_changed_in_place(client, service, project):
    """Hard links shared a later in-place change: the copy must stay what was verified."""
    served = client.get("/ml/predict", params={"symbol": "BTCUSDT"}).json()["model_id"]
    entry = load_registry(Paths.of(project).registry).prod
    booster = project.registry_dir / entry.models["lgbm"].artifacts["model"].path
    with booster.open("ab") as handle:
        handle.write(b"\n# tampered\n")
    restarted = PredictionService(project, clock=service.clock)
    assert restarted.snapshot().prod is not None and restarted.snapshot().prod.model_id == served
    assert "sha256 mismatch" in restarted.watcher.status


def test_the_fallback_stays_visible_on_every_later_look(service, project):
    entry = load_registry(Paths.of(project).registry).prod
    (project.registry_dir / entry.models["lgbm"].artifacts["model"].path).unlink()
    restarted = PredictionService(project, clock=service.clock)
    for _ in range(3):
        restarted.watcher.refresh(force=True)
        assert restarted.watcher.status.endswith("serving the last good registry a worker saved")
    assert any("last good" in p for p in restarted.health()["problems"])


def test_an_unreadable_paper_book_degrades_health_instead_of_failing_it(client, project):
    book = Paths.of(project).paper_book("candidate")
    book.parent.mkdir(parents=True, exist_ok=True)
    book.unlink(missing_ok=True)
    book.mkdir()  # reading it raises IsADirectoryError (an OSError)
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert client.get("/ml/predict", params={"symbol": "BTCUSDT"}).status_code == 200


def test_one_broken_symbol_does_not_stop_the_bar_clock_for_the_others(service, project):
    Paths.of(project).store().path("BTCUSDT").write_bytes(b"not parquet")
    outcome = service.act_on_closed_bars()
    assert outcome["ETHUSDT"] == "acted" and outcome["BTCUSDT"] != "acted"
    assert all("ETHUSDT" in book.state()["last_bar"] for book in service.books.values())


def test_reload_answers_without_paths_even_under_odd_folder_names(tmp_path, project, clock):
    import os

    odd = tmp_path / "a folder: with spaces"
    shutil.copytree(project.data_dir.parent, odd)
    settings = project.model_copy(
        update={"data_dir": odd / project.data_dir.name,
                "registry_dir": odd / project.registry_dir.name}
    )  # fmt: skip
    entry = load_registry(Paths.of(settings).registry).prod
    (settings.registry_dir / entry.models["lgbm"].artifacts["model"].path).unlink()
    from fastapi.testclient import TestClient

    os.environ["LEVIBOT_ADMIN_TOKEN"] = "t"
    try:
        with TestClient(create_app(service=PredictionService(settings, clock=clock))) as other:
            bodies = [
                other.post("/registry/reload", headers={"Authorization": "Bearer t"}).text,
                other.get("/healthz").text,
                other.get("/ml/model/status").text,
            ]
    finally:
        del os.environ["LEVIBOT_ADMIN_TOKEN"]
    for body in bodies:
        assert str(odd) not in body and "with spaces" not in body, body
    assert "registry/artifacts/" in bodies[0]  # still says which file
