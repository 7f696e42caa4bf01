"""Per-feature data drift of the serving window against the prod model's training window.

Small units in the NannyML style, with every threshold held as data (`Thresholds`):

* `fit_reference` summarises the REFERENCE window once, at training time: per feature
  the PSI bin edges and proportions plus the sorted values for KS. `save_reference` /
  `load_reference` keep it beside the model as a compressed ``.npz`` (no pickle), so a
  drift check only touches the current window.
* `check_drift` compares a CURRENT frame with a reference: PSI and KS per feature, a
  status per feature and the worst of them overall.
* `run_drift_check` does it for the prod model of the registry, writes the report to
  ``<registry_dir>/drift/`` and, on CRITICAL drift, turns the kill switch ON (the rule
  "PSI > 0.3 => kill switch ON, retrain"). It never turns it off: that is an operator's
  decision once a retrained model is in prod.

PSI convention (exactly what `psi_bins` / `bin_proportions` / `psi` compute)
-----------------------------------------------------------------------------
* NaN values are dropped on both sides before anything else; the NaN share of each
  side is reported separately.
* Bins come from the REFERENCE window: the inner edges are
  ``np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))`` (default 10 bins,
  so 9 inner edges; ``np.quantile``'s default linear method; tied quantiles collapse,
  so a feature with heavy ties gets fewer bins). The outer bins are open, to -inf and
  +inf, so every finite value falls in a bin.
* A value ``x`` falls in bin ``np.searchsorted(inner_edges, x, side="right")``:
  bin ``i`` is ``[edge[i-1], edge[i])``, i.e. a value equal to an edge goes to the bin
  on its right. Proportions are bin counts divided by the number of non-NaN values.
* Empty bins: a proportion that is exactly 0 is replaced by ``EPSILON = 1e-4``, on
  both sides (reference and current), and the proportions are NOT renormalised.
* ``PSI = sum_i (cur_i - ref_i) * ln(cur_i / ref_i)`` (natural log), over all bins.

KS is the two-sample Kolmogorov-Smirnov statistic ``sup_x |F_ref(x) - F_cur(x)|`` of
the empirical CDFs, equal to ``scipy.stats.ks_2samp(ref, cur).statistic``. The
reference is stored as float32, and the current values are rounded to float32 for KS
too, so both sides are compared at the same resolution.

Statuses, per feature: ``critical`` when PSI > psi_critical or KS > ks_critical,
else ``warning`` when PSI > psi_warning or KS > ks_warning, else ``ok``;
``no_data`` when either window has no non-NaN value of the feature;
``insufficient_data`` when the current window has fewer than ``min_rows`` non-NaN
values of it. Overall: ``insufficient_data`` when the current window has fewer than
``min_rows`` rows or no feature could be compared (never a silent pass); otherwise the
worst of ok < warning < critical over the compared features, raised to at least
``warning`` when a feature that had reference data is (almost) missing now (a dead feed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import numpy as np
import pandas as pd

from levibot.data.store import FeatureStore
from levibot.features import FEATURES
from levibot.io import CorruptFileError, atomic_path, read_json, write_json_atomic
from levibot.online.audit import AuditLog
from levibot.online.killswitch import KillSwitch
from levibot.registry import load_registry, registry_path
from levibot.settings import Settings
from levibot.timeframe import floor_to_bar, timeframe_delta, to_utc

EPSILON = 1e-4
DEFAULT_BINS = 10
REFERENCE_FORMAT = 1

OK, WARNING, CRITICAL = "ok", "warning", "critical"
NO_DATA, INSUFFICIENT = "no_data", "insufficient_data"
SEVERITY = {OK: 0, WARNING: 1, CRITICAL: 2}
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, INSUFFICIENT: 3}

DRIFT_DIR = "drift"
CRITICAL_OVER_BASELINE = 1.5  # critical = 1.5x the worst ordinary reference window
LATEST_FILE = "latest.json"


class DriftError(ValueError):
    """A drift check cannot run (no prod model, no stored data, a bad reference file)."""


# ------------------------------------------------------------------------ the units


def psi_bins(sorted_values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Unique inner bin edges at the reference's quantiles (float64; NaN-free input)."""
    if bins < 2:
        raise ValueError(f"PSI needs at least 2 bins, got {bins}")
    if sorted_values.size == 0:
        return np.empty(0)
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.unique(np.quantile(np.asarray(sorted_values, dtype=np.float64), quantiles))


def bin_counts_sorted(sorted_values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts per bin of sorted, NaN-free values (same bins as `bin_proportions`).

    ``searchsorted(inner_edges, x, side="right") == i`` exactly when
    ``edge[i-1] <= x < edge[i]``, so the number of values below each edge
    (``side="left"`` on the sorted values) gives the cumulative counts.
    """
    below = np.searchsorted(sorted_values, inner_edges, side="left")
    return np.diff(np.concatenate(([0], below, [sorted_values.size])))


def bin_proportions(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Share of the non-NaN `values` in each bin (`inner_edges.size + 1` bins)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    counts = np.bincount(
        np.searchsorted(inner_edges, values, side="right"), minlength=inner_edges.size + 1
    )
    return counts / max(values.size, 1)


def psi(ref_proportions: np.ndarray, cur_proportions: np.ndarray) -> float:
    """Population stability index; empty bins (exactly 0) count as EPSILON on both sides."""
    ref = np.where(ref_proportions == 0, EPSILON, ref_proportions)
    cur = np.where(cur_proportions == 0, EPSILON, cur_proportions)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_statistic(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """sup |F_ref - F_cur| of two sorted, NaN-free samples (== ks_2samp's statistic).

    Both CDFs are step functions that only change on the union of the samples. Between
    two distinct current values c_(k-1) < c_k, F_cur is constant and F_ref rises, so the
    difference is extreme at c_(k-1) itself or just below c_k: evaluating F_ref at the
    distinct current values from the right (``side="right"``) and from the left
    (``side="left"``) covers every point of the union with two searchsorted calls of the
    current into the reference, O(m log n) instead of sorting the union.
    """
    n, m = ref_sorted.size, cur_sorted.size
    if n == 0 or m == 0:
        return math.nan
    last = np.flatnonzero(np.diff(cur_sorted) != 0)  # last index of each distinct value
    ends = np.append(last, m - 1)
    distinct = cur_sorted[ends]
    cdf_cur = (ends + 1) / m
    cdf_cur_before = np.concatenate(([0.0], cdf_cur[:-1]))
    cdf_ref_at = np.searchsorted(ref_sorted, distinct, side="right") / n
    cdf_ref_below = np.searchsorted(ref_sorted, distinct, side="left") / n
    at = np.abs(cdf_cur - cdf_ref_at).max()
    below = np.abs(cdf_ref_below - cdf_cur_before).max()
    return float(max(at, below))


# ---------------------------------------------------------------------- reference


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


# ------------------------------------------------------------------------ the check


@dataclass(frozen=True)
class Thresholds:
    """Drift thresholds (data, not code); a value strictly above a threshold trips it."""

    psi_warning: float = 0.2
    psi_critical: float = 0.3
    ks_warning: float = 0.15
    ks_critical: float = 0.25
    min_rows: int = 48  # current rows (pooled over symbols) needed to judge at all

    def __post_init__(self) -> None:
        if not 0 <= self.psi_warning <= self.psi_critical:
            raise ValueError("need 0 <= psi_warning <= psi_critical")
        if not 0 <= self.ks_warning <= self.ks_critical <= 1:
            raise ValueError("need 0 <= ks_warning <= ks_critical <= 1")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, got {self.min_rows}")

    def level(
        self, psi_value: float, ks_value: float, *, psi_base: float = 0.0, ks_base: float = 0.0
    ) -> str:
        """Status of one feature. `psi_base` / `ks_base` are the feature's baseline (the
        worst ordinary reference window): warning above max(fixed warning, baseline),
        critical above max(fixed critical, CRITICAL_OVER_BASELINE x baseline)."""
        psi_crit = max(self.psi_critical, CRITICAL_OVER_BASELINE * psi_base)
        ks_crit = min(1.0, max(self.ks_critical, CRITICAL_OVER_BASELINE * ks_base))
        if psi_value > psi_crit or ks_value > ks_crit:
            return CRITICAL
        if psi_value > max(self.psi_warning, psi_base) or ks_value > max(self.ks_warning, ks_base):
            return WARNING
        return OK


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift; psi/ks are None when there was nothing to compare."""

    feature: str
    status: str
    psi: float | None
    ks: float | None
    n_current: int
    n_reference: int
    nan_share_current: float | None
    nan_share_reference: float | None


@dataclass
class DriftResult:
    """A drift check: per-feature results, the overall status and what was compared."""

    status: str
    timestamp: str
    rows: int
    window_start: str | None
    window_end: str | None
    reference_rows: int
    reference_window_start: str | None
    reference_window_end: str | None
    features: dict[str, FeatureDrift]
    thresholds: Thresholds
    reasons: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def critical_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.status == CRITICAL]

    @property
    def warning_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.status == WARNING]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "timestamp": self.timestamp,
            "rows": self.rows,
            "window": {"start": self.window_start, "end": self.window_end},
            "reference": {
                "rows": self.reference_rows,
                "start": self.reference_window_start,
                "end": self.reference_window_end,
            },
            "critical_features": self.critical_features,
            "warning_features": self.warning_features,
            "reasons": list(self.reasons),
            "thresholds": asdict(self.thresholds),
            "features": {name: asdict(f) for name, f in self.features.items()},
            **self.extra,
        }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def check_drift(
    reference: ReferenceStats,
    current_frame: pd.DataFrame,
    thresholds: Thresholds = Thresholds(),
    *,
    timestamp: pd.Timestamp | str | None = None,
) -> DriftResult:
    """PSI and KS of every reference feature in `current_frame`, with statuses."""
    ordered, counts = _sorted_columns(current_frame, reference.features)
    rows = len(current_frame)
    results: dict[str, FeatureDrift] = {}
    lost: list[str] = []
    for j, name in enumerate(reference.features):
        n_ref, n_cur = reference.n[name], int(counts[j])
        psi_value = ks_value = None
        if n_ref == 0 or n_cur == 0:
            status = NO_DATA
        else:
            column = ordered[j, :n_cur]
            cur_props = bin_counts_sorted(column, reference.inner_edges[name]) / n_cur
            psi_value = psi(reference.proportions[name], cur_props)
            # float64 -> float32 is monotone, so the rounded column stays sorted
            ref_sorted = reference.sorted_values[name]
            ks_value = ks_statistic(ref_sorted, column.astype(ref_sorted.dtype))
            status = (
                INSUFFICIENT
                if n_cur < thresholds.min_rows
                else thresholds.level(
                    psi_value,
                    ks_value,
                    psi_base=reference.baseline_psi.get(name, 0.0),
                    ks_base=reference.baseline_ks.get(name, 0.0),
                )
            )
        if n_ref > 0 and n_cur < thresholds.min_rows and rows >= thresholds.min_rows:
            lost.append(name)
        results[name] = FeatureDrift(
            feature=name,
            status=status,
            psi=psi_value,
            ks=ks_value,
            n_current=n_cur,
            n_reference=n_ref,
            nan_share_current=_share(rows - n_cur, rows),
            nan_share_reference=reference.nan_share[name] if reference.rows else None,
        )
    compared = [f.status for f in results.values() if f.status in SEVERITY]
    reasons = []
    if rows < thresholds.min_rows:
        status = INSUFFICIENT
        reasons.append(f"{rows} current rows < min_rows {thresholds.min_rows}")
    elif not compared:
        status = INSUFFICIENT
        reasons.append("no feature has data in both windows")
    else:
        status = max(compared, key=SEVERITY.__getitem__)
        if lost:
            reasons.append(f"features missing in the current window: {', '.join(lost)}")
            if SEVERITY[status] < SEVERITY[WARNING]:
                status = WARNING
    start, end = _index_bounds(current_frame)
    stamp = to_utc(timestamp) if timestamp is not None else pd.Timestamp.now("UTC")
    return DriftResult(
        status=status,
        timestamp=stamp.isoformat(),
        rows=rows,
        window_start=start,
        window_end=end,
        reference_rows=reference.rows,
        reference_window_start=reference.window_start,
        reference_window_end=reference.window_end,
        features=results,
        thresholds=thresholds,
        reasons=reasons,
    )


def format_table(result: DriftResult) -> str:
    """A plain-text table of the per-feature results and the overall status."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"{'feature':<16} {'psi':>8} {'ks':>7} {'n':>8} {'nan%':>6}  status"]
    for f in result.features.values():
        nan = "-" if f.nan_share_current is None else f"{100 * f.nan_share_current:.0f}"
        lines.append(
            f"{f.feature:<16} {num(f.psi):>8} {num(f.ks):>7} {f.n_current:>8} {nan:>6}  {f.status}"
        )
    lines.append(
        f"overall: {result.status.upper()} ({result.rows} rows, "
        f"{result.window_start} .. {result.window_end})"
    )
    lines.extend(f"  {reason}" for reason in result.reasons)
    return "\n".join(lines)


# ------------------------------------------------------------------ the scheduled job


def drift_dir(settings: Settings) -> Path:
    return Path(settings.registry_dir) / DRIFT_DIR


def _read_frames(store: FeatureStore, symbols: Sequence[str]) -> dict[str, pd.DataFrame]:
    frames = {}
    for symbol in symbols:
        frame = store.read(symbol)
        if frame is None or frame.empty:
            raise DriftError(
                f"no features stored for {symbol} at {store.timeframe} in {store.root}"
            )
        frames[symbol] = frame
    return frames


def _pooled(
    frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Rows of every symbol with open time in [start, end), stacked (index kept)."""
    parts = [frame.loc[(frame.index >= start) & (frame.index < end)] for frame in frames.values()]
    return pd.concat(parts).sort_index(kind="stable")


def current_window(
    settings: Settings, *, hours: float = 24.0, now: pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """The pooled rows a check with these arguments compares (for reports)."""
    store = FeatureStore(settings.data_dir / "store", settings.timeframe)
    frames = _read_frames(store, settings.symbols)
    end = (
        floor_to_bar(now, settings.timeframe)
        if now is not None
        else max(f.index.max() for f in frames.values()) + store.bar_length
    )
    return _pooled(frames, end - pd.Timedelta(hours=hours), end)


def prod_reference(
    settings: Settings, *, current_hours: float = 24.0, registry_file: Path | str | None = None
) -> ReferenceStats:
    """The prod model's training window as a drift reference, with its ordinary-window
    baseline measured on windows as long as the checks' (`current_hours`)."""
    reg_file = Path(registry_file) if registry_file is not None else registry_path(settings)
    prod = load_registry(reg_file, missing_ok=True).prod
    if prod is None:
        raise DriftError(f"{reg_file}: no prod model, so no reference window")
    frames = _read_frames(FeatureStore(settings.data_dir / "store", prod.timeframe), prod.symbols)
    train = _pooled(
        frames, to_utc(prod.data_window.train_start), to_utc(prod.data_window.train_end)
    )
    bars = int(pd.Timedelta(hours=current_hours) / timeframe_delta(prod.timeframe))
    return fit_reference(train, window_rows=len(prod.symbols) * bars)


def run_drift_check(
    settings: Settings,
    *,
    now: pd.Timestamp | str | None = None,
    current_hours: float = 24.0,
    reference_path: Path | str | None = None,
    thresholds: Thresholds = Thresholds(),
    actor: str = "drift-check",
    registry_file: Path | str | None = None,
) -> DriftResult:
    """Check the newest `current_hours` of the store against the prod training window.

    The reference is `reference_path` (a stored ``.npz``) when given, else fitted now from
    the store rows of the prod entry's symbols in [train_start, train_end). The current
    window is the bars opened in [end - current_hours, end), pooled over the symbols,
    where end is the bar boundary at or before `now` (default: just after the newest
    stored bar). Writes ``<registry_dir>/drift/<timestamp>.json`` (named after `now`, else
    the wall clock, so replaying a time overwrites its own report) and ``latest.json``;
    on CRITICAL, turns the kill switch on (before the report is written) and audits it.
    """
    if current_hours <= 0:
        raise DriftError(f"current_hours must be positive, got {current_hours}")
    reg_file = Path(registry_file) if registry_file is not None else registry_path(settings)
    prod = load_registry(reg_file, missing_ok=True).prod
    if prod is None and reference_path is None:
        raise DriftError(f"{reg_file}: no prod model, so no reference window (or pass one)")
    timeframe = prod.timeframe if prod is not None else settings.timeframe
    symbols = list(prod.symbols) if prod is not None else list(settings.symbols)
    frames = _read_frames(FeatureStore(settings.data_dir / "store", timeframe), symbols)

    if reference_path is not None:
        try:
            reference = load_reference(reference_path)
        except FileNotFoundError as exc:
            raise DriftError(f"{reference_path}: reference file not found") from exc
        source = {"reference_file": str(reference_path)}
    else:
        assert prod is not None
        reference = prod_reference(settings, current_hours=current_hours, registry_file=reg_file)
        source = {"reference_model": prod.id}

    if now is not None:
        end = floor_to_bar(now, timeframe)
        stamp = to_utc(now)
    else:
        end = max(frame.index.max() for frame in frames.values()) + timeframe_delta(timeframe)
        stamp = pd.Timestamp.now("UTC")
    start = end - pd.Timedelta(hours=current_hours)
    current = _pooled(frames, start, end)

    result = check_drift(reference, current, thresholds, timestamp=stamp)
    result.window_start, result.window_end = start.isoformat(), end.isoformat()
    result.extra = {
        **source,
        "model_id": prod.id if prod is not None else None,
        "symbols": symbols,
        "timeframe": timeframe,
        "current_hours": current_hours,
    }
    folder = drift_dir(settings)
    report = folder / f"{to_utc(stamp):%Y%m%dT%H%M%S}.json"
    if result.status == CRITICAL:
        result.extra["kill_switch"] = _trip_kill_switch(settings, result, actor, report)
    payload = result.to_dict()
    write_json_atomic(report, payload)
    write_json_atomic(folder / LATEST_FILE, payload)
    return result


def _trip_kill_switch(settings: Settings, result: DriftResult, actor: str, report: Path) -> str:
    """Turn the kill switch on (unless it already is) and audit it; returns what happened."""
    serving = settings.data_dir / "serving"
    at = pd.Timestamp(result.timestamp)  # the check's time: simulated in a replay

    def clock() -> pd.Timestamp:
        return at

    switch = KillSwitch(serving / "kill_switch.json", clock=clock)
    names = result.critical_features
    worst = {
        name: {"psi": result.features[name].psi, "ks": result.features[name].ks} for name in names
    }
    was_on = switch.is_on()
    if not was_on:
        reason = (
            f"critical drift in {', '.join(names)} "
            f"(PSI > {result.thresholds.psi_critical} or KS > {result.thresholds.ks_critical}); "
            "retrain"
        )
        switch.set(True, actor=actor, reason=reason)
    AuditLog(serving / "audit.jsonl", clock=clock).record(
        actor,
        "drift_kill_switch_on",
        features=names,
        drift=worst,
        window={"start": result.window_start, "end": result.window_end},
        report=report.name,
        already_on=was_on,
    )
    return "already_on" if was_on else "turned_on"


def drift_history(settings: Settings) -> list[dict[str, Any]]:
    """Every stored drift report, oldest first (``latest.json`` excluded)."""
    folder = drift_dir(settings)
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.glob("*.json") if p.name != LATEST_FILE)
    return [read_json(p) for p in paths]


__all__ = [
    "CRITICAL",
    "EPSILON",
    "EXIT_CODES",
    "INSUFFICIENT",
    "NO_DATA",
    "OK",
    "WARNING",
    "DriftError",
    "DriftResult",
    "FeatureDrift",
    "ReferenceStats",
    "Thresholds",
    "bin_counts_sorted",
    "bin_proportions",
    "check_drift",
    "drift_history",
    "fit_reference",
    "format_table",
    "ks_statistic",
    "load_reference",
    "psi",
    "psi_bins",
    "run_drift_check",
    "save_reference",
]
