"""Seeded factories shared by the tests: small bar frames and isolated settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from levibot.data.schema import conform_bars
from levibot.settings import Settings, load_settings

T0 = pd.Timestamp("2026-01-01", tz="UTC")


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
