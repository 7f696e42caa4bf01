"""The drift reference: what a check needs from the training window, fitted once."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zipfile import BadZipFile

import numpy as np
import pandas as pd

from levibot.drift.stats import DEFAULT_BINS, bin_counts_sorted, ks_statistic, psi, psi_bins
from levibot.features import FEATURES
from levibot.io import CorruptFileError, atomic_path

REFERENCE_FORMAT = 1


@dataclass
class ReferenceStats:
    """What a drift check needs from the reference window, per feature.

    `inner_edges[f]` are the PSI bin edges, `proportions[f]` the reference share per
    bin, `sorted_values[f]` the sorted non-NaN values (float32) for KS, `n[f]` their
    count and `nan_share[f]` the share of NaN rows; `rows` is the window's row count.
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
    baseline_psi: dict[str, float] = field(default_factory=dict)
    baseline_ks: dict[str, float] = field(default_factory=dict)


def _sorted_columns(frame: pd.DataFrame, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One row per feature: its values sorted (NaN last), and the non-NaN count per feature."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks feature columns {missing}")
    values = np.empty((len(features), len(frame)))
    for j, name in enumerate(features):  # feature-major, so each sort runs on contiguous memory
        values[j] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    counts = len(frame) - np.isnan(values).sum(axis=1)
    values.sort(axis=1)
    return values, counts


def _index_bounds(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    if isinstance(frame.index, pd.DatetimeIndex) and len(frame.index):
        return frame.index.min().isoformat(), frame.index.max().isoformat()
    return None, None


def fit_reference(
    frame: pd.DataFrame,
    features: Sequence[str] = FEATURES,
    bins: int = DEFAULT_BINS,
    *,
    window_rows: int | None = None,
) -> ReferenceStats:
    """Summarise the reference window (training time, once); NaN values are excluded.

    With `window_rows`, also measures how far ordinary windows of that size drift from
    the whole reference (the max PSI / KS over consecutive slices, in time order): the
    baseline the check's thresholds are raised to, so slow features (EMA-200, volatility
    levels) whose day-to-day distribution always differs from a multi-week reference do
    not read as drift on normal data.
    """
    features = list(features)
    ordered, counts = _sorted_columns(frame, features)
    rows = len(frame)
    stats = ReferenceStats(
        features=features,
        bins=bins,
        rows=rows,
        inner_edges={},
        proportions={},
        sorted_values={},
        n={},
        nan_share={},
    )
    stats.window_start, stats.window_end = _index_bounds(frame)
    for j, name in enumerate(features):
        column = ordered[j, : counts[j]]
        edges = psi_bins(column, bins)
        stats.inner_edges[name] = edges
        stats.proportions[name] = bin_counts_sorted(column, edges) / max(column.size, 1)
        stats.sorted_values[name] = column.astype(np.float32)
        stats.n[name] = int(counts[j])
        stats.nan_share[name] = float(1.0 - counts[j] / rows) if rows else math.nan
    if window_rows:
        _fit_baseline(stats, frame.sort_index(kind="stable"), window_rows)
    return stats


def _fit_baseline(stats: ReferenceStats, frame: pd.DataFrame, window_rows: int) -> None:
    """Max PSI / KS of consecutive `window_rows` slices of the reference, per feature."""
    slices = [
        frame.iloc[i : i + window_rows] for i in range(0, len(frame) - window_rows + 1, window_rows)
    ]
    for name in stats.features:
        psis, kss = [], []
        for part in slices:
            values = part[name].to_numpy(dtype=np.float64, na_value=np.nan)
            values = np.sort(values[~np.isnan(values)])
            if values.size < max(2, window_rows // 4) or stats.n[name] == 0:
                continue
            props = bin_counts_sorted(values, stats.inner_edges[name]) / values.size
            psis.append(psi(stats.proportions[name], props))
            ref = stats.sorted_values[name]
            kss.append(ks_statistic(ref, values.astype(ref.dtype)))
        if psis:
            stats.baseline_psi[name] = float(max(psis))
            stats.baseline_ks[name] = float(max(kss))


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
        "baseline_psi": stats.baseline_psi,
        "baseline_ks": stats.baseline_ks,
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
        with np.load(path, allow_pickle=False) as data:
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
                baseline_psi={k: float(v) for k, v in meta.get("baseline_psi", {}).items()},
                baseline_ks={k: float(v) for k, v in meta.get("baseline_ks", {}).items()},
            )
    except FileNotFoundError:
        raise
    except (BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise CorruptFileError(f"{path}: not a drift reference ({exc})") from exc
