"""The whole Ploomber pipeline, built for real on tiny parameters (env.test.yaml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from levibot.features import FEATURES
from levibot.registry import load_registry, update_canary_policy, verify_artifacts
from tests.conftest import TINY_GATE

ROOT = Path(__file__).resolve().parents[2]
PLOOMBER = str(Path(sys.executable).with_name("ploomber"))
pytestmark = pytest.mark.slow


def build(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
    env.update(
        PLOOMBER_STATS_ENABLED="false",
        PLOOMBER_VERSION_CHECK_DISABLED="1",
        PLOOMBER_ENV_FILENAME="env.test.yaml",
    )
    return subprocess.run(
        [PLOOMBER, "build", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ran(output: str, task: str) -> bool:
    match = re.search(rf"^{task}\s+(True|False)", output, re.MULTILINE)
    assert match, output
    return match.group(1) == "True"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the pipeline's files, so the test never touches the working tree."""
    target = tmp_path_factory.mktemp("project")
    for name in ("pipeline.yaml", "env.yaml", "env.test.yaml"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "notebooks", target / "notebooks")
    # two symbols over 12 days sit near the 20-trade gate; this deployment asks for 5
    update_canary_policy(target / "registry" / "canary_policy.json", thresholds=TINY_GATE)
    return target


TASKS = (
    "ingest", "train_lgbm", "train_deep", "calibrate_and_sweep", "drift", "ensemble_tuning",
    "marathon_replay", "evaluate_marathon",
)  # fmt: skip


def test_build_runs_every_task_then_skips_when_up_to_date(project):
    first = build(project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert all(ran(first.stdout, task) for task in TASKS)
    assert "not used in the task's source code" not in first.stdout + first.stderr

    for name, images in (
        ("ingest", 2),
        ("train_lgbm", 2),
        ("train_deep", 2),
        ("calibrate_and_sweep", 4),
    ):
        report = (project / "reports" / f"{name}.html").read_text()
        assert report.count("<img") >= images, name
        assert "<title>LeviBot · " in report, name  # was "Notebook" on every page
        assert 'class="jp-OutputPrompt' not in report, name  # no Out[n]: prompts
        assert "epoch/s" not in report and "it/s]" not in report, name  # no progress lines
    ingest_report = (project / "reports" / "ingest.html").read_text()
    for text in ("BTCUSDT", "ETHUSDT", "quarantined", "missing_bars"):
        assert text in ingest_report
    stored = pd.read_parquet(project / "data" / "store" / "features" / "ETHUSDT_15m.parquet")
    assert len(stored) == 12 * 96
    assert stored.index[-1] == pd.Timestamp("2026-01-14 23:45", tz="UTC")
    assert set(FEATURES) <= set(stored.columns)
    assert stored[FEATURES].iloc[-1].notna().all()

    registry = load_registry(project / "registry" / "model_registry.json")
    assert registry.prod is not None and registry.candidate is not None  # bootstrap rule
    assert registry.prod.data_window.test_end < registry.candidate.data_window.test_end
    for entry in (registry.prod, registry.candidate):
        assert set(entry.models) == {"lgbm", "deep"}
        assert 0 < entry.policy.exit_threshold < entry.policy.entry_threshold < 1
        verify_artifacts(entry, project / "registry")
    holdout_start = pd.Timestamp("2026-01-15", tz="UTC") - pd.Timedelta(hours=12)
    assert pd.Timestamp(registry.candidate.data_window.test_end) <= holdout_start

    evaluation = json.loads(
        (project / "registry" / "runs" / "marathon_evaluation.json").read_text()
    )
    assert evaluation["decision"] in {"PROMOTE", "EXTEND", "ROLLBACK"}
    assert len(evaluation["checks"]) == 5 and evaluation["rules_fired"]
    replay = json.loads(
        (project / "data" / "replay" / "latest" / "replay_summary.json").read_text()
    )
    assert replay["bars"] == 48 and replay["errors"] == 0  # 12 held-out hours of 15m bars
    index = (project / "reports" / "index.html").read_text()
    assert evaluation["decision"] in index and "marathon_evaluation.html" in index
    assert 'class="badge"' in index and "ran in" in index  # the run page, with task timing
    assert (project / "reports" / "pipeline.png").read_bytes().startswith(b"\x89PNG")
    assert '<a href="pipeline.png">Task graph</a>' in index  # drawn by the build, offline
    runs = sorted((project / "reports" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "run.json").exists()
    assert (runs[0] / "marathon_evaluation.html").exists()

    second = build(project)
    assert second.returncode == 0
    assert not any(ran(second.stdout, task) for task in TASKS)
    assert len(list((project / "reports" / "runs").iterdir())) == 1  # nothing new decided


def test_a_rebuild_with_a_prod_registers_only_a_new_candidate(project):
    before = load_registry(project / "registry" / "model_registry.json")
    result = build(project, "--env--seed", "4")  # other bars and seeds: another release
    assert result.returncode == 0, result.stdout + result.stderr
    after = load_registry(project / "registry" / "model_registry.json")
    assert after.prod == before.prod
    assert after.candidate.id != before.candidate.id
    assert [a.entry.id for a in after.archive] == [before.candidate.id]


def test_a_parameter_reruns_only_its_tasks_and_the_run_is_judged_by_its_settings(project):
    """--env--horizon 4 reaches training and the replay but not the ingest; the evaluation
    (in the pipeline and from the CLI, whose env file still says 3) judges with 4."""
    from levibot.cli import main

    # the same ingest parameters as the previous build (seed 4), another horizon
    result = build(project, "--env--seed", "4", "--env--horizon", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not ran(result.stdout, "ingest")
    assert all(ran(result.stdout, task) for task in TASKS[1:])
    evaluation_file = project / "registry" / "runs" / "marathon_evaluation.json"
    assert json.loads(evaluation_file.read_text())["settings"]["horizon"] == 4
    evaluation_file.unlink()
    code = main(["--env-file", str(project / "env.test.yaml"), "marathon", "evaluate"])
    assert code in (0, 1, 3)
    assert json.loads(evaluation_file.read_text())["settings"]["horizon"] == 4


def test_a_failing_step_names_the_problem_and_keeps_old_products(project):
    manifest = project / "data" / "ingest_manifest.json"
    kept = manifest.read_bytes()
    result = build(project, "--force", "--env--source", "csv")
    assert result.returncode != 0
    assert "csv_path" in result.stdout + result.stderr
    assert manifest.read_bytes() == kept
