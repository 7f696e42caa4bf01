"""The drift reference: what a check needs from the training window, fitted once."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import numpy as np
import pandas as pd

from levibot.drift.monitoring import (
    LEVEL,
    MONITORED_FEATURES,
    Frames,
    as_frames,
    choose_method,
    in_time_order,
    lag1_autocorrelation,
    longest_run,
    monitored_columns,
    raw_columns,
)
from levibot.drift.stats import DEFAULT_BINS, bin_counts_sorted, ks_statistic, psi, psi_bins
from levibot.io import CorruptFileError, atomic_path
from levibot.thresholds import DriftThresholds

REFERENCE_FORMAT = 2
WINDOW_STRIDES = 8  # ordinary windows start every window / 8 bars (overlapping)
MIN_WINDOWS = 10  # fewer ordinary windows and their spread means nothing
MAX_WINDOWS = 600  # more add fitting time, not information (they overlap)
SCALE_MAX_AUTOCORRELATION = 0.5  # the short scale check only for nearly independent bars
SCALE_MAX_TIES = 0.25  # ... and not where the median itself is a quarter of the values


@dataclass
class ReferenceStats:
    """What a drift check needs from the reference window, per feature.

    `inner_edges[f]` are the PSI bin edges, `proportions[f]` the reference share per
    bin, `sorted_values[f]` the sorted non-NaN compared values (float32) for KS, `n[f]`
    their count and `nan_share[f]` the share of NaN rows; `rows` is the window's row
    count; `methods[f]` is what was compared (`levibot.drift.monitoring`).

    The noise: over ordinary same-length windows of the reference (`window_rows`
    pooled rows each, `windows` of them, overlapping), the median and robust spread
    (1.4826 x MAD) of log PSI and log KS against the rest of it (`noise[f]["psi_center"]`,
    `"psi_spread"`, `"ks_center"`, `"ks_spread"`); over short windows (`short_window_rows`
    rows, `short_windows` of them) the same of the log scale ratio -- the short window's
    median absolute deviation from the reference median over that of the bars before it
    in a current window (`"median"`, `"mad"`, `"scale_center"`, `"scale_spread"`); the
    same of a whole window's scale over the reference's (`"level_scale_*"`); and of both
    ratios' median log over the features at once (`joint_scale["scale" | "level_scale"]`).
    `longest_repeat[f]` /
    `longest_nan[f]` are the longest runs of one repeated value / of NaN within a
    symbol: a current run far beyond them is a dead feed.
    """

    features: list[str]
    bins: int
    rows: int
    inner_edges: dict[str, np.ndarray]
    proportions: dict[str, np.ndarray]
    sorted_values: dict[str, np.ndarray]
    n: dict[str, int]
    nan_share: dict[str, float]
    window_start: str | None = None
    window_end: str | None = None
    methods: dict[str, str] = field(default_factory=dict)
    window_rows: int = 0
    windows: int = 0
    short_window_bars: int = 0
    short_window_rows: int = 0
    short_windows: int = 0
    noise: dict[str, dict[str, float]] = field(default_factory=dict)
    joint_scale: dict[str, Any] = field(default_factory=dict)
    longest_repeat: dict[str, int] = field(default_factory=dict)
    longest_nan: dict[str, int] = field(default_factory=dict)
    source: str | None = None  # the release whose training window this is (its id)


@dataclass
class MonitoredRows:
    """The compared values of several symbols pooled (feature-major, time order), the
    raw values of each symbol (for dead-feed runs) and each symbol's last bar time."""

    features: list[str]
    methods: dict[str, str]
    values: np.ndarray
    times: np.ndarray
    raw: dict[str, np.ndarray]
    last_bar: dict[str, pd.Timestamp | None]
    missing: list[str]
    start: str | None
    end: str | None

    @property
    def rows(self) -> int:
        return int(self.values.shape[1])


def _times(frame: pd.DataFrame) -> np.ndarray:
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index.asi8
    return np.arange(len(frame), dtype=np.int64)


def monitored_rows(
    frames: Frames, features: Sequence[str], methods: Mapping[str, str] | None = None
) -> MonitoredRows:
    """Each symbol's compared values (changes within the symbol where the method says
    so; without `methods`, chosen from these rows), pooled in time order."""
    features = list(features)
    per_symbol = {key: in_time_order(frame) for key, frame in as_frames(frames).items()}
    present = (
        set().union(*(frame.columns for frame in per_symbol.values())) if per_symbol else set()
    )
    raw = {key: raw_columns(frame, features) for key, frame in per_symbol.items()}
    if methods is None:
        methods = {
            name: choose_method([values[j] for values in raw.values()])
            for j, name in enumerate(features)
        }
    chosen = [methods.get(name, LEVEL) for name in features]
    parts = [monitored_columns(raw[key], chosen) for key in per_symbol]
    times = [_times(frame) for frame in per_symbol.values()]
    values = np.concatenate(parts, axis=1) if parts else np.empty((len(features), 0))
    stamps = np.concatenate(times) if times else np.empty(0, dtype=np.int64)
    in_order = stamps.size < 2 or bool(np.all(stamps[1:] >= stamps[:-1]))
    order = slice(None) if in_order else np.argsort(stamps, kind="stable")  # one symbol: no copy
    bounds = [_index_bounds(frame) for frame in per_symbol.values() if len(frame)]
    return MonitoredRows(
        features=features,
        methods=dict(zip(features, chosen, strict=True)),
        values=values[:, order],
        times=stamps[order],
        raw=raw,
        last_bar={
            key: frame.index.max()
            if isinstance(frame.index, pd.DatetimeIndex) and len(frame)
            else None
            for key, frame in per_symbol.items()
        },
        missing=[name for name in features if name not in present],
        start=min((b[0] for b in bounds if b[0]), default=None),
        end=max((b[1] for b in bounds if b[1]), default=None),
    )


def _index_bounds(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    if isinstance(frame.index, pd.DatetimeIndex) and len(frame.index):
        return frame.index.min().isoformat(), frame.index.max().isoformat()
    return None, None


def default_features(frames: Frames) -> list[str]:
    """The model features a frame has (cross-asset ones only where they exist); a frame
    of other data (a user's own columns): its numeric columns."""
    parts = list(as_frames(frames).values())
    columns = set().union(*(frame.columns for frame in parts))
    known = [name for name in MONITORED_FEATURES if name in columns]
    if known or not parts:
        return known
    return [str(c) for c in parts[0].select_dtypes("number").columns]


def fit_reference(
    frames: Frames,
    features: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    *,
    window_bars: int | None = None,
    short_window_bars: int = DriftThresholds().short_window_bars,
    methods: Mapping[str, str] | None = None,
) -> ReferenceStats:
    """Summarise the reference window (training time, once); NaN and ±inf are excluded.

    `frames`: one frame per symbol (or one frame: one series). With `window_bars`, also
    measures the noise of ordinary windows that long and `short_window_bars` long
    (overlapping, in time order): the scale of each feature's limits. `methods`: what
    to compare per feature (default: chosen from these rows' persistence).
    """
    features = default_features(frames) if features is None else list(features)
    rows = monitored_rows(frames, features, methods)
    if rows.missing:
        raise ValueError(f"frame lacks feature columns {rows.missing}")
    ordered = np.sort(rows.values, axis=1)  # NaN last
    counts = rows.rows - np.isnan(rows.values).sum(axis=1)
    stats = ReferenceStats(
        features=features,
        bins=bins,
        rows=rows.rows,
        inner_edges={},
        proportions={},
        sorted_values={},
        n={},
        nan_share={},
        window_start=rows.start,
        window_end=rows.end,
        methods=rows.methods,
    )
    for j, name in enumerate(features):
        column = ordered[j, : counts[j]]
        edges = psi_bins(column, bins)
        stats.inner_edges[name] = edges
        stats.proportions[name] = bin_counts_sorted(column, edges) / max(column.size, 1)
        stats.sorted_values[name] = column.astype(np.float32)
        stats.n[name] = int(counts[j])
        stats.nan_share[name] = float(1.0 - counts[j] / rows.rows) if rows.rows else math.nan
        runs = [longest_run(raw[j]) for raw in rows.raw.values()]
        stats.longest_repeat[name] = max((r[0] for r in runs), default=0)
        stats.longest_nan[name] = max((r[1] for r in runs), default=0)
    if window_bars:
        _fit_noise(stats, rows, window_bars, short_window_bars)
    return stats


def _window_bounds(times: np.ndarray, window_bars: int) -> list[tuple[int, int]]:
    """Row ranges of overlapping windows of `window_bars` distinct bar times."""
    distinct = np.unique(times)
    step = max(1, window_bars // WINDOW_STRIDES, distinct.size // MAX_WINDOWS)
    starts = range(0, distinct.size - window_bars + 1, step)
    return [
        (
            int(np.searchsorted(times, distinct[i], side="left")),
            int(np.searchsorted(times, distinct[i + window_bars - 1], side="right")),
        )
        for i in starts
    ]


def _robust(values: list[float]) -> tuple[float, float]:
    """Median and 1.4826 x MAD (a normal's sd) of finite values."""
    data = np.asarray([v for v in values if np.isfinite(v)])
    center = float(np.median(data))
    return center, float(1.4826 * np.median(np.abs(data - center)))


def recent_scale(
    recent: np.ndarray, before: np.ndarray, median: float, *, base: float | None = None
) -> float | None:
    """The newest bars' median absolute deviation from the reference median, over the
    whole current window's (`before`: the window, newest bars included; or `base`, its
    deviation, when the caller has it): about 1 on ordinary data whatever the volatility
    regime, about 3 right after volatility jumps 5-fold (None with too few values or no
    spread)."""
    recent = recent[~np.isnan(recent)]
    if recent.size < 2 or before.size < 2 * recent.size:
        return None
    if base is None:
        before = before[~np.isnan(before)]
        base = float(np.median(np.abs(before - median))) if before.size else 0.0
    return float(np.median(np.abs(recent - median)) / base) if base > 0 else None


def _short_windows(
    times: np.ndarray, window_bars: int, short: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Short windows (row ranges) that have a full current window before them, and the
    first row of the bars preceding each inside that window."""
    distinct = np.unique(times)
    step = max(1, short // 2, distinct.size // (4 * MAX_WINDOWS))
    first = window_bars - short
    bounds, before = [], []
    for i in range(first, distinct.size - short + 1, step):
        bounds.append(
            (
                int(np.searchsorted(times, distinct[i], side="left")),
                int(np.searchsorted(times, distinct[i + short - 1], side="right")),
            )
        )
        before.append(int(np.searchsorted(times, distinct[i - first], side="left")))
    return bounds, before


def _fit_noise(stats: ReferenceStats, rows: MonitoredRows, window_bars: int, short: int) -> None:
    """Distribution of each statistic over ordinary windows of the reference.

    A window inside the reference is part of what it is compared with; against the
    rest instead, its deviation is larger by 1 / (1 - f) (f = its share of the
    reference), so PSI (quadratic) is divided by (1 - f)^2 and KS by (1 - f).
    """
    bounds = _window_bounds(rows.times, window_bars)
    short_bounds, trailing = _short_windows(rows.times, window_bars, short)
    stats.windows, stats.short_windows = len(bounds), len(short_bounds)
    stats.short_window_bars = short
    stats.window_rows = int(np.median([b - a for a, b in bounds])) if bounds else 0
    stats.short_window_rows = (
        int(np.median([b - a for a, b in short_bounds])) if short_bounds else 0
    )
    joint: dict[str, np.ndarray] = {}
    joint_level: dict[str, np.ndarray] = {}
    for j, name in enumerate(stats.features):
        if stats.n[name] == 0:
            continue
        ref = stats.sorted_values[name].astype(np.float64)
        median = float(np.median(ref))
        mad = float(np.median(np.abs(ref - median)))
        noise: dict[str, float] = {"median": median, "mad": mad}
        # the short scale check needs nearly independent bars: a persistent series'
        # 2 h scale wanders with its level
        method = [stats.methods[name]]
        rho = lag1_autocorrelation(
            [monitored_columns(raw[j : j + 1], method)[0] for raw in rows.raw.values()]
        )
        noise["lag1_autocorrelation"] = rho if np.isfinite(rho) else 1.0
        psis, kss = [], []
        levels = np.full(len(bounds), np.nan)
        tied = float(np.mean(ref == median))  # e.g. a relative return that is 0 for BTC
        for i, (a, b) in enumerate(bounds):
            values = rows.values[j, a:b]
            values = np.sort(values[~np.isnan(values)])
            if values.size < max(2, (b - a) // 4):
                continue
            share = min(values.size / stats.n[name], 0.9)
            props = bin_counts_sorted(values, stats.inner_edges[name]) / values.size
            psis.append(
                np.log(max(psi(stats.proportions[name], props), 1e-12)) - 2 * np.log1p(-share)
            )
            ks = ks_statistic(stats.sorted_values[name], values.astype(np.float32))
            kss.append(np.log(max(ks, 1e-12)) - np.log1p(-share))
            if mad > 0:
                levels[i] = np.log(max(np.median(np.abs(values - median)) / mad, 1e-12))
        if len(psis) >= MIN_WINDOWS:
            noise["psi_center"], noise["psi_spread"] = _robust(psis)
            noise["ks_center"], noise["ks_spread"] = _robust(kss)
        if np.isfinite(levels).sum() >= MIN_WINDOWS and mad > 0 and tied <= SCALE_MAX_TIES:
            noise["level_scale_center"], noise["level_scale_spread"] = _robust(list(levels))
            joint_level[name] = levels
        if (
            mad > 0
            and tied <= SCALE_MAX_TIES
            and abs(noise["lag1_autocorrelation"]) < SCALE_MAX_AUTOCORRELATION
        ):
            column = np.full(len(short_bounds), np.nan)
            for i, ((a, b), before) in enumerate(zip(short_bounds, trailing, strict=True)):
                ratio = recent_scale(rows.values[j, a:b], rows.values[j, before:b], median)
                if ratio is not None:
                    column[i] = np.log(max(ratio, 1e-12))
            if np.isfinite(column).sum() >= MIN_WINDOWS:
                noise["scale_center"], noise["scale_spread"] = _robust(list(column))
                joint[name] = column
        stats.noise[name] = noise
    # the median log scale over the features at once: a volatility shock moves most of
    # them (the median is not diluted by the few it leaves alone, as a mean would be),
    # ordinary noise partly averages out, and it is one test, not one per feature
    for key, columns in (("scale", joint), ("level_scale", joint_level)):
        if not columns:
            continue
        stacked = np.vstack(list(columns.values()))
        means = [float(np.nanmedian(c)) for c in stacked.T if np.isfinite(c).any()]
        if len(means) >= MIN_WINDOWS:
            center, spread = _robust(means)
            stats.joint_scale[key] = {"center": center, "spread": spread, "features": list(columns)}


def save_reference(path: Path | str, stats: ReferenceStats) -> Path:
    """Write the reference as a compressed ``.npz`` atomically (plain arrays, no pickle)."""
    meta = {
        "format": REFERENCE_FORMAT,
        "features": stats.features,
        "bins": stats.bins,
        "rows": stats.rows,
        "n": stats.n,
        "nan_share": stats.nan_share,
        "window_start": stats.window_start,
        "window_end": stats.window_end,
        "methods": stats.methods,
        "window_rows": stats.window_rows,
        "windows": stats.windows,
        "short_window_bars": stats.short_window_bars,
        "short_window_rows": stats.short_window_rows,
        "short_windows": stats.short_windows,
        "noise": stats.noise,
        "joint_scale": stats.joint_scale,
        "longest_repeat": stats.longest_repeat,
        "longest_nan": stats.longest_nan,
        "source": stats.source,
    }
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for i, name in enumerate(stats.features):
        arrays[f"edges_{i}"] = np.asarray(stats.inner_edges[name], dtype=np.float64)
        arrays[f"props_{i}"] = np.asarray(stats.proportions[name], dtype=np.float64)
        arrays[f"sorted_{i}"] = np.asarray(stats.sorted_values[name], dtype=np.float32)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: no '.npz' added
        np.savez_compressed(handle, **arrays)
    return path


def load_reference(path: Path | str) -> ReferenceStats:
    """Read a reference written by `save_reference`; a damaged file is CorruptFileError."""
    path = Path(path)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
            if meta.get("format") != REFERENCE_FORMAT:
                raise ValueError(f"unknown reference format {meta.get('format')!r}")
            features = list(meta["features"])
            return ReferenceStats(
                features=features,
                bins=int(meta["bins"]),
                rows=int(meta["rows"]),
                inner_edges={f: data[f"edges_{i}"] for i, f in enumerate(features)},
                proportions={f: data[f"props_{i}"] for i, f in enumerate(features)},
                sorted_values={f: data[f"sorted_{i}"] for i, f in enumerate(features)},
                n={f: int(meta["n"][f]) for f in features},
                nan_share={f: float(meta["nan_share"][f]) for f in features},
                window_start=meta.get("window_start"),
                window_end=meta.get("window_end"),
                methods={f: str(meta["methods"][f]) for f in features},
                window_rows=int(meta["window_rows"]),
                windows=int(meta["windows"]),
                short_window_bars=int(meta["short_window_bars"]),
                short_window_rows=int(meta["short_window_rows"]),
                short_windows=int(meta["short_windows"]),
                noise={
                    f: {k: float(v) for k, v in values.items()}
                    for f, values in meta["noise"].items()
                },
                joint_scale=dict(meta["joint_scale"]),
                longest_repeat={f: int(meta["longest_repeat"][f]) for f in features},
                longest_nan={f: int(meta["longest_nan"][f]) for f in features},
                source=meta.get("source"),
            )
    except FileNotFoundError:
        raise
    except (BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise CorruptFileError(f"{path}: not a drift reference ({exc})") from exc
