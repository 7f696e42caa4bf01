"""`levibot dag`: the task graph drawn offline, and linked from the run page."""

from __future__ import annotations

from pathlib import Path

import pytest

from levibot.cli import main
from levibot.dag_picture import MAX_COLUMN, _shown, draw_dag, generations, pipeline_graph
from levibot.run_page import write_run_page

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c", "a"]}


def test_a_task_sits_one_column_right_of_its_latest_upstream():
    assert generations(DIAMOND) == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert generations({"x": ["y"], "y": []}) == {"x": 1, "y": 0}  # order-independent


def test_broken_graphs_are_named():
    with pytest.raises(ValueError, match=r"not in the graph: \['ghost'\]"):
        generations({"a": ["ghost"]})
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        generations({"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="no tasks"):
        draw_dag({}, Path("unused.png"))


def test_the_pipeline_graph_is_ploombers():
    graph = pipeline_graph(ROOT / "pipeline.yaml")
    assert graph["ingest"] == ["fetch-BTCUSDT", "fetch-ETHUSDT", "fetch-SOLUSDT"]
    assert generations(graph)["evaluate_marathon"] == 7  # fetch, ingest, train, ..., evaluate


def test_a_tall_column_shows_its_ends_and_a_count():
    tasks = [f"fetch-S{i:03d}" for i in range(40)]
    shown, hidden = _shown(tasks)
    assert len(shown) == 11 <= MAX_COLUMN and shown[5] == "... 30 more"
    assert shown[:5] == tasks[:5] and shown[-5:] == tasks[-5:]
    assert set(hidden) == set(tasks[5:-5]) and set(hidden.values()) == {"... 30 more"}
    assert _shown(tasks[:MAX_COLUMN]) == (tasks[:MAX_COLUMN], {})


def test_draw_writes_a_png_and_a_failed_draw_keeps_the_old_one(tmp_path, monkeypatch):
    target = draw_dag(DIAMOND, tmp_path / "reports" / "pipeline.png")
    before = target.read_bytes()
    assert before.startswith(PNG) and len(before) > 5_000

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        draw_dag({"a": []}, target)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["pipeline.png"]  # no temp left


def test_cli_draws_the_project_graph_and_refuses_outside_a_project(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "dag.png"
    assert main(["dag", "--output", str(out)]) == 0
    assert out.read_bytes().startswith(PNG) and f"wrote {out}" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert main(["dag"]) == 2
    assert "no pipeline.yaml here" in capsys.readouterr().err


def test_the_run_page_links_the_graph_only_when_it_was_drawn(tmp_path):
    index, picture = tmp_path / "index.html", tmp_path / "pipeline.png"
    write_run_page(index, {"decision": "EXTEND"}, picture=picture)
    assert "pipeline.png" not in index.read_text()
    draw_dag(DIAMOND, picture)
    write_run_page(index, {"decision": "EXTEND"}, picture=picture)
    assert '<a href="pipeline.png">Task graph</a>' in index.read_text()
