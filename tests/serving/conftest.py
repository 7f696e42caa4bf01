"""Serving fixtures on the session's tiny trained project (see tests/conftest.py).

Each test gets its own copy, so tests that flip the kill-switch or corrupt the registry
never disturb each other. The clock is a mutable fake so staleness is under control.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from levibot.marathon.server import start_server
from levibot.online.service import PredictionService
from levibot.settings import Settings, load_settings
from serving.app import create_app
from tests.conftest import END

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeClock:
    """A settable clock: `clock.now = ...` moves time for the service under test."""

    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> pd.Timestamp:
        return self.now


@pytest.fixture
def project(trained_root, tmp_path, monkeypatch) -> Settings:
    """A private copy of the trained project."""
    for name in list(__import__("os").environ):
        if name.startswith("LEVIBOT_"):
            monkeypatch.delenv(name)
    root = tmp_path / "project"
    shutil.copytree(trained_root, root)
    return load_settings(
        None, root=root, symbols="BTCUSDT,ETHUSDT", days=12, end=END, seed=3,
        holdout_hours=12, prod_lag_days=3,
    )  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(END + pd.Timedelta(minutes=5))


@pytest.fixture
def service(project, clock) -> PredictionService:
    return PredictionService(project, clock=clock)


@pytest.fixture
def client(service, monkeypatch) -> TestClient:
    monkeypatch.setenv("LEVIBOT_ADMIN_TOKEN", TOKEN)
    with TestClient(create_app(service=service), raise_server_exceptions=False) as test_client:
        yield test_client


@contextmanager
def running_server(
    trained_root: Path, tmp_path: Path, *, workers: int, token: str
) -> Iterator[tuple[str, Path]]:
    """A real uvicorn (live mode) on a copy of the trained project: (base url, root)."""
    root = tmp_path / "project"
    shutil.copytree(trained_root, root)
    env_file = root / "env.yaml"
    env_file.write_text(yaml.safe_dump({
        "symbols": "BTCUSDT,ETHUSDT", "data_dir": str(root / "data"),
        "registry_dir": str(root / "registry"), "timeframe": "15m",
    }))  # fmt: skip
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    server = start_server(
        env_file, workers=workers, log_path=tmp_path / "server.log",
        extra_env={"LEVIBOT_ADMIN_TOKEN": token, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)},
    )  # fmt: skip
    try:
        server.wait_healthy()
        yield server.base_url, root
    finally:
        server.stop()
