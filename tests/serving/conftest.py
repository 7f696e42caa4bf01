"""Serving fixtures on the session's tiny trained project (see tests/conftest.py).

Each test gets its own copy, so tests that flip the kill-switch or corrupt the registry
never disturb each other. The clock is a mutable fake so staleness is under control.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from levibot.settings import Settings, load_settings
from tests.conftest import END


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
