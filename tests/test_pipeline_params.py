"""pipeline.yaml gives each task exactly the parameters its notebook declares and uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from levibot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
NOT_SETTINGS = {"project_root", "speed"}  # a path Ploomber renders; a replay pacing knob


def _tasks() -> dict[str, dict]:
    spec = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    return {task["name"]: task for task in spec["tasks"]}


def _declared(notebook: Path) -> set[str]:
    """Names assigned in the notebook's parameters cell (upstream/product excluded)."""
    text = notebook.read_text()
    cell = text.split('# %% tags=["parameters"]', 1)[1].split("# %%", 1)[0]
    return set(re.findall(r"^(\w+) = ", cell, re.MULTILINE)) - {"upstream", "product"}


def test_each_task_declares_exactly_the_parameters_it_is_given():
    for name, task in _tasks().items():
        given = set(task.get("params", {}))
        if task["source"].endswith(".py"):  # function tasks: see tests/test_pipeline_tasks.py
            assert _declared(ROOT / task["source"]) == given, name
        assert given - NOT_SETTINGS <= set(Settings.model_fields), name


def test_training_parameters_do_not_reach_the_ingest():
    """Changing holdout_hours or horizon must re-run training, not the ingest."""
    ingest = set(_tasks()["ingest"]["params"])
    assert not ingest & {"horizon", "holdout_hours", "prod_lag_days", "registry_dir"}
    for task in ("train_lgbm", "train_deep"):
        assert {"horizon", "holdout_hours", "prod_lag_days"} <= set(_tasks()[task]["params"])


def test_every_placeholder_of_the_pipeline_is_in_both_env_files():
    placeholders = set(re.findall(r"\{\{(\w+)\}\}", (ROOT / "pipeline.yaml").read_text()))
    placeholders -= {"here", "cwd", "root", "user", "now", "git", "git_hash"}
    for name in ("env.yaml", "env.test.yaml"):
        keys = set(yaml.safe_load((ROOT / name).read_text()))
        assert placeholders <= keys, (name, placeholders - keys)


def _build(tmp_path: Path, *overrides: str):
    """`ploomber build` on a copy of the pipeline, the way a user runs it."""
    import os
    import shutil
    import subprocess
    import sys

    for name in ("pipeline.yaml", "env.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    env = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "1"}
    ploomber = Path(sys.executable).with_name("ploomber")
    return subprocess.run(
        [str(ploomber), "build", *overrides], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("override", "value", "expected"),
    [
        ("timeframe", "7m", "task fetch-BTCUSDT: timeframe: Value error, timeframe '7m' must"),
        # the fetch grid is expanded from symbols before the parameter check runs
        ("symbols", " , ", "task ingest: symbols: Value error, symbols names no symbol"),
        ("symbols", "BTCUSDT,BTCUSDT", "task ingest: symbols: Value error, symbols contain dup"),
    ],
)
def test_a_bad_parameter_stops_the_build_with_one_line_and_no_products(
    tmp_path, override, value, expected
):
    """It used to fail inside the first notebook: a 50-70 line traceback, printed twice,
    and a partial reports/ingest.ipynb left behind."""
    run = _build(tmp_path, f"--env--{override}", value)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in run.stderr + run.stdout
    assert expected in lines[0] and "env.yaml" in lines[0]
    assert not (tmp_path / "reports").exists() and not (tmp_path / "data").exists()
