"""The build hooks see every task of pipeline.yaml, function tasks included."""

from __future__ import annotations

from pathlib import Path

from levibot.operations import PLOOMBER_ENV
from levibot.pipeline_hooks import task_reports

ROOT = Path(__file__).resolve().parents[1]


def test_task_reports_lists_every_task_and_only_notebooks_have_a_report(monkeypatch):
    """A function task has no `nb` product: reading one used to raise inside the on_finish
    hook, which logged a warning and recorded no run at all."""
    from ploomber.spec import DAGSpec

    for name, value in PLOOMBER_ENV.items():
        monkeypatch.setenv(name, value)
    dag = DAGSpec(str(ROOT / "pipeline.yaml")).to_dag()
    reports = task_reports(dag)
    assert list(reports) == list(dag)
    assert {reports[f"fetch-{s}"] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")} == {None}
    assert reports["ingest"] == "ingest.html"
    assert reports["evaluate_marathon"] == "marathon_evaluation.html"


def test_the_run_page_lists_no_report_for_a_function_task():
    from levibot.run_page import _reports

    tasks = [
        {"name": "fetch-BTCUSDT", "ran": True, "seconds": 1.0, "report": None},
        {"name": "ingest", "ran": True, "seconds": 2.0, "report": "ingest.html"},
    ]
    page = _reports({"tasks": tasks}, present={"fetch-BTCUSDT.html", "ingest.html"})
    assert "fetch" not in page and 'href="ingest.html"' in page and "ran in 2.0 s" in page
