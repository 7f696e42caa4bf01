"""Model-ready rows: stored features + labels, pooled over symbols, split by time.

One model serves every symbol (pooled): the features are scale-free, pooling triples
the data, and a symbol-free model also serves a user's own instrument. The symbol stays
a column so metrics and backtests can still be computed per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from levibot.features import (
    CROSS_ASSET_FEATURES,
    FEATURES,
    LABEL_DIRECTION,
    LABEL_RETURN,
    make_labels,
)
from levibot.settings import Settings
from levibot.splits import TimeSplit, make_time_split
from levibot.state.paths import Paths
from levibot.timeframe import timeframe_delta

MODEL_FEATURES = FEATURES + CROSS_ASSET_FEATURES
BAR_RETURN = "bar_return"  # close_t / close_{t-1} - 1: what a position held into bar t earns


def load_feature_frames(settings: Settings) -> dict[str, pd.DataFrame]:
    """Stored feature tables for the configured symbols; a missing one is an error."""
    store = Paths.of(settings).store()
    frames = {}
    for symbol in settings.symbols:
        frame = store.read(symbol)
        if frame is None:
            raise FileNotFoundError(
                f"no features stored for {symbol} at {settings.timeframe} in {store.root}: "
                "run the ingest task first"
            )
        frames[symbol] = frame
    return frames


def build_dataset(frames: dict[str, pd.DataFrame], horizon: int) -> pd.DataFrame:
    """Long frame (index timestamp) of features, labels, bar returns and the symbol."""
    parts = []
    for symbol, frame in frames.items():
        labels = make_labels(frame, horizon)
        part = frame[MODEL_FEATURES].join(labels)
        part[BAR_RETURN] = frame["close"].pct_change()
        part.insert(0, "symbol", symbol)
        parts.append(part)
    data = pd.concat(parts).sort_index(kind="stable")
    return data


@dataclass(frozen=True)
class ReleasePlan:
    """One model release to train: its role in the registry and its time split."""

    role: str  # "prod" (bootstrap only) or "candidate"
    data_end: pd.Timestamp
    split: TimeSplit


def plan_releases(
    settings: Settings, data_start: pd.Timestamp, data_end: pd.Timestamp, *, has_prod: bool
) -> list[ReleasePlan]:
    """The bootstrap rule: an empty registry gets a prod trained on older data first.

    With no prod, a prod model is trained on data ending ``prod_lag_days`` before the
    data end and a candidate on the full window, so a marathon always compares two
    real models. With a prod, a run trains only a new candidate. The newest
    ``holdout_hours`` stay out of every window (the marathon replays them).
    """
    bar = timeframe_delta(settings.timeframe)
    holdout_bars = int(pd.Timedelta(hours=settings.holdout_hours) / bar)
    ends = [("candidate", data_end)]
    if not has_prod:
        prod_end = (data_end - pd.Timedelta(days=settings.prod_lag_days)).floor(bar)
        ends.insert(0, ("prod", prod_end))
    return [
        ReleasePlan(
            role=role,
            data_end=end,
            split=make_time_split(
                data_start,
                end,
                timeframe=settings.timeframe,
                horizon=settings.horizon,
                holdout_bars=holdout_bars if role == "candidate" else 0,
            ),
        )
        for role, end in ends
    ]


def window_rows(
    data: pd.DataFrame, split: TimeSplit, name: str, *, labelled: bool = True
) -> pd.DataFrame:
    """Rows of one window (with a known label unless `labelled` is False)."""
    window = {w.name: w for w in split.windows}[name]
    rows = data.loc[window.mask(data.index)]
    return rows.dropna(subset=[LABEL_DIRECTION]) if labelled else rows


__all__ = [
    "BAR_RETURN",
    "LABEL_DIRECTION",
    "LABEL_RETURN",
    "MODEL_FEATURES",
    "ReleasePlan",
    "build_dataset",
    "load_feature_frames",
    "plan_releases",
    "window_rows",
]
