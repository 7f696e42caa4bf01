"""The whole Ploomber pipeline, built for real on tiny parameters (env.test.yaml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from levibot.features import FEATURES

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
    return target


def test_build_writes_report_and_store_then_skips_when_up_to_date(project):
    first = build(project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert ran(first.stdout, "ingest")

    report = (project / "reports" / "ingest.html").read_text()
    assert report.count("data:image/png") >= 2  # price/volume and feature plots embedded
    for text in ("BTCUSDT", "ETHUSDT", "quarantined", "missing_bars"):
        assert text in report
    stored = pd.read_parquet(project / "data" / "store" / "features" / "ETHUSDT_15m.parquet")
    assert len(stored) == 10 * 96
    assert stored.index[-1] == pd.Timestamp("2026-01-14 23:45", tz="UTC")
    assert set(FEATURES) <= set(stored.columns)
    assert stored[FEATURES].iloc[-1].notna().all()

    second = build(project)
    assert second.returncode == 0 and not ran(second.stdout, "ingest")

    changed = build(project, "--env--days", "3")
    assert changed.returncode == 0 and ran(changed.stdout, "ingest")


def test_a_failing_step_names_the_problem(project):
    result = build(project, "--force", "--env--source", "csv")
    assert result.returncode != 0
    assert "csv_path" in result.stdout + result.stderr
