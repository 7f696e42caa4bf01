"""Seeded factories shared by the tests: small bar frames and isolated settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from levibot.data.schema import conform_bars
from levibot.ingest import run_ingest
from levibot.registry import update_canary_policy
from levibot.release import calibrate_and_register
from levibot.settings import Settings, load_settings
from levibot.state.paths import Paths
from levibot.training import prepare_training, train_releases

T0 = pd.Timestamp("2026-01-01", tz="UTC")
END = pd.Timestamp("2026-01-15", tz="UTC")  # the tiny trained project's data end


def make_bars(
    n: int = 300,
    *,
    seed: int = 0,
    start: pd.Timestamp = T0,
    freq: str = "15min",
    price: float = 100.0,
) -> pd.DataFrame:
    """A random-walk bar frame with every auxiliary series filled and valid OHLC."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq=freq, name="timestamp")
    close = price * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.concatenate([[price], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1, 10, n),
            "funding_rate": rng.normal(1e-4, 5e-5, n),
            "open_interest": 1e5 * np.exp(np.cumsum(rng.normal(0, 0.001, n))),
            "ob_imbalance": np.tanh(rng.normal(0, 0.5, n)),
            "news_impact": rng.normal(0, 0.1, n),
            "news_confidence": rng.uniform(0, 1, n),
        },
        index=index,
    )
    return conform_bars(frame)


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Tiny, reproducible settings writing under tmp_path, immune to LEVIBOT_* vars."""
    for name in list(__import__("os").environ):
        if name.startswith("LEVIBOT_"):
            monkeypatch.delenv(name)
    return load_settings(
        None,
        root=tmp_path,
        symbols="BTCUSDT,ETHUSDT",
        days=5,
        end="2026-01-10T00:00:00Z",
        seed=3,
    )


def tiny_settings(
    root: Path, *, days: float = 12, end: pd.Timestamp | None = END, **overrides
) -> Settings:
    """The tiny project's settings: two symbols, 12 held-out hours, prod 3 days older."""
    return load_settings(
        None, root=root, symbols="BTCUSDT,ETHUSDT", days=days, end=end, seed=3,
        holdout_hours=12, prod_lag_days=3, **overrides,
    )  # fmt: skip


TINY_GATE = {"gate": {"min_trades": 5}}  # 2 symbols, 2-day windows: a trade rate this noisy


def train_tiny_project(root: Path, *, days: float = 12, end: pd.Timestamp | None = END) -> Settings:
    """Ingest `days` of two symbols and register a prod and a candidate release."""
    settings = tiny_settings(root, days=days, end=end)
    update_canary_policy(Paths.of(settings).canary_policy, thresholds=TINY_GATE)
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
    update_canary_policy(Paths.of(settings).canary_policy, thresholds={"canary_min_sharpe": -100.0})
    return root
