"""A tiny trained project (ingest + both models + registry), built once per session.

Each test gets its own copy, so tests that flip the kill-switch or corrupt the registry
never disturb each other. The clock is a mutable fake so staleness is under control.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from levibot.ingest import run_ingest
from levibot.registry import canary_policy_path, update_canary_policy
from levibot.release import calibrate_and_register
from levibot.settings import Settings, load_settings
from levibot.training import prepare_training, train_releases

END = pd.Timestamp("2026-01-15", tz="UTC")


class FakeClock:
    """A settable clock: `clock.now = ...` moves time for the service under test."""

    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> pd.Timestamp:
        return self.now


def train_tiny_project(root: Path, *, end: pd.Timestamp | None = END) -> Settings:
    """Ingest 12 days of two symbols and register a prod and a candidate release."""
    settings = load_settings(
        None, root=root, symbols="BTCUSDT,ETHUSDT", days=12, end=end, seed=3,
        holdout_hours=12, prod_lag_days=3,
    )  # fmt: skip
    run_ingest(settings)
    context = prepare_training(settings)
    runs = root / "runs"
    train_releases(
        context, "lgbm", runs / "lgbm.json", num_boost_round=60, early_stopping_rounds=20
    )
    train_releases(context, "deep", runs / "deep.json", seq_len=16, epochs=1, n_samples=4)
    calibrate_and_register(
        settings, runs / "lgbm.json", runs / "deep.json", fee_bps=10.0, slippage_bps=5.0,
        summary_path=runs / "release.json", reports=[],
    )  # fmt: skip
    return settings


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    settings = train_tiny_project(root)
    # the tiny models lose money on their test window; routing tests need the canary open
    update_canary_policy(canary_policy_path(settings), guards={"min_sharpe": -100.0})
    return root


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
