"""Run history: each build that reached the evaluation is kept, listed and comparable."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from levibot.cli import main
from levibot.io import write_json_atomic
from levibot.run_history import (
    UnknownRunError,
    compare_runs,
    find_run,
    list_runs,
    make_record,
    save_run,
    unrecorded,
)
from levibot.run_page import write_run_page
from levibot.state.paths import Paths


def _evaluation(decision: str = "EXTEND", sharpe: float = -1.5) -> dict:
    return {
        "decision": decision, "decision_text": f"{decision}: because", "checks_passed": 4,
        "rules_fired": ["the forecasts are not yet distinguishable", "extend the marathon"],
        "checks": [
            {"name": "ece", "critical": True, "status": "pass", "value": 0.029, "detail": "ok"},
            {"name": "shadow_data", "critical": False, "status": "fail", "value": 3,
             "detail": "3 < 20"},
        ],
        "models": {"prod": "lvb-prod", "candidate": "lvb-cand"},
        "metrics": {"candidate": {"sharpe": sharpe, "trade_count": 3}, "prod": {"sharpe": 0.2}},
        "window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-03T00:00:00+00:00",
                   "bars": 192},
        "settings": {"symbols": ["BTCUSDT"], "timeframe": "15m", "horizon": 3},
        "canary": {"configured_fraction": 0.1, "served_fraction": 0.0,
                   "closed_reasons": {"candidate test Sharpe -2 < 0": 192}},
    }  # fmt: skip


TASKS = [{"name": "ingest", "ran": True, "seconds": 12.5, "report": "ingest.html"},
         {"name": "evaluate_marathon", "ran": True, "seconds": 3.0,
          "report": "marathon_evaluation.html"}]  # fmt: skip


def _record(paths: Paths, when: str, **evaluation) -> dict:
    paths.reports_dir.mkdir(parents=True, exist_ok=True)
    (paths.reports_dir / "ingest.html").write_text("<html>ingest</html>")
    (paths.reports_dir / "marathon_evaluation.html").write_text("<html>eval</html>")
    write_json_atomic(paths.evaluation, _evaluation(**evaluation))
    record = make_record(
        _evaluation(**evaluation), tasks=TASKS, revision="abc1234",
        finished=pd.Timestamp(when, tz="UTC"),
    )  # fmt: skip
    save_run(paths, record)
    return record


def test_a_run_keeps_its_reports_evaluation_and_record(settings):
    paths = Paths.of(settings)
    record = _record(paths, "2026-01-03 00:10")
    folder = paths.run_record(record["run_id"]).parent
    assert record["run_id"] == "20260103T001000Z-abc1234"
    assert record["duration_sec"] == 15.5 and record["started_at"].startswith("2026-01-03T00:09:44")
    assert {p.name for p in folder.iterdir()} >= {
        "run.json", "ingest.html", "marathon_evaluation.html", paths.evaluation.name,
    }  # fmt: skip


def test_runs_are_listed_newest_first_and_found_by_prefix(settings):
    paths = Paths.of(settings)
    old = _record(paths, "2026-01-03 00:10", decision="ROLLBACK")
    new = _record(paths, "2026-01-04 00:10", decision="PROMOTE")
    (paths.report_runs / "broken").mkdir()
    (paths.report_runs / "broken" / "run.json").write_text("{oops")
    assert [r["run_id"] for r in list_runs(paths)] == [new["run_id"], old["run_id"]]
    assert find_run(paths, "latest")["decision"] == "PROMOTE"
    assert find_run(paths, "20260103")["decision"] == "ROLLBACK"
    with pytest.raises(UnknownRunError, match="matches several"):
        find_run(paths, "2026")
    with pytest.raises(UnknownRunError, match="matches no run"):
        find_run(paths, "1999")


def test_compare_lines_up_decisions_checks_and_metrics():
    a = make_record(_evaluation("EXTEND", sharpe=-1.5), revision="aaa")
    b = make_record(_evaluation("PROMOTE", sharpe=2.0), revision="bbb")
    rows = {what: (x, y) for what, x, y in compare_runs(a, b)}
    assert rows["decision"] == ("EXTEND", "PROMOTE")
    assert rows["check ece"] == ("pass 0.029", "pass 0.029")
    assert rows["candidate sharpe"] == ("-1.5", "2")
    assert rows["candidate model"] == ("lvb-cand", "lvb-cand")


def test_the_run_page_puts_the_decision_first_and_lists_earlier_runs(settings):
    paths = Paths.of(settings)
    old = _record(paths, "2026-01-03 00:10", decision="ROLLBACK")
    new = _record(paths, "2026-01-04 00:10")
    html = write_run_page(paths.report_index, new, earlier=[old]).read_text()
    assert 'class="badge"' in html and ">EXTEND<" in html and "<title>LeviBot run: EXTEND" in html
    assert "0.029" in html and "3 &lt; 20" in html and "(critical)" in html
    assert "served no request" in html and "candidate test Sharpe -2 &lt; 0" in html
    assert html.index('"ingest.html"') < html.index('"marathon_evaluation.html"')  # pipeline order
    assert "ran in 12.5 s" in html and f"runs/{old['run_id']}/" in html
    assert "abc1234" in html and "192 bars" in html


def test_a_page_outside_a_build_says_it_was_not_recorded(settings):
    paths = Paths.of(settings)
    paths.reports_dir.mkdir(parents=True, exist_ok=True)
    html = write_run_page(paths.report_index, unrecorded(_evaluation())).read_text()
    assert "not recorded" in html and "No earlier runs" in html


def test_the_runs_commands(settings, tmp_path, capsys):
    paths = Paths.of(settings)
    a = _record(paths, "2026-01-03 00:10", decision="ROLLBACK")
    b = _record(paths, "2026-01-04 00:10")
    registry = ["--registry", str(paths.registry)]
    env = ["--env-file", str(tmp_path / "env.yaml")]
    (tmp_path / "env.yaml").write_text(
        f"data_dir: {settings.data_dir}\nregistry_dir: {settings.registry_dir}\n"
        f"reports_dir: {settings.reports_dir}\n"
    )
    assert main([*env, "runs", "list", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [b["run_id"], a["run_id"]]
    assert main([*env, *registry, "runs", "compare", a["run_id"], "latest"]) == 0
    out = capsys.readouterr().out
    assert "* decision" in out and "ROLLBACK" in out and "EXTEND" in out
    assert main([*env, "runs", "compare", "nope", "latest"]) == 2
    assert "matches no run" in capsys.readouterr().err


def test_an_exact_id_wins_over_a_longer_id_it_prefixes(settings):
    paths = Paths.of(settings)
    first = _record(paths, "2026-01-03 00:10")
    longer = dict(first, run_id=first["run_id"] + "x", finished_at="2026-01-04T00:00:00+00:00")
    folder = paths.run_record(longer["run_id"]).parent
    folder.mkdir(parents=True)
    write_json_atomic(folder / "run.json", longer)
    assert find_run(paths, first["run_id"])["run_id"] == first["run_id"]
    with pytest.raises(UnknownRunError):
        find_run(paths, "")
