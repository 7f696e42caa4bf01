"""Probability calibration (isotonic, Platt) and the expected calibration error.

ECE convention (used everywhere): 15 equal-width bins on P(y=1) over [0, 1]; a
probability on an inner edge belongs to the lower bin (``np.searchsorted`` on the
inner edges, as ``sklearn.calibration.calibration_curve`` does); ECE is the
count-weighted mean of |observed frequency - mean predicted probability| over the
non-empty bins.

Calibrators are stored as JSON numbers (no pickles), so they load safely anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

N_BINS = 15
_EPS = 1e-6


def _clean(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length: {y.shape} vs {p.shape}")
    keep = np.isfinite(y) & np.isfinite(p)
    if np.any((p[keep] < 0) | (p[keep] > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return y[keep], p[keep]


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Per-bin count, mean predicted probability and observed frequency of y=1."""
    y, p = _clean(y, p)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)
    count = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "count": count,
                "mean_predicted": np.where(count > 0, sum_p / count, np.nan),
                "observed": np.where(count > 0, sum_y / count, np.nan),
            }
        )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> float:
    """Count-weighted mean gap between confidence and accuracy (see module docstring)."""
    table = reliability_table(y, p, n_bins)
    filled = table[table["count"] > 0]
    if filled.empty:
        return float("nan")
    gaps = (filled["observed"] - filled["mean_predicted"]).abs()
    return float(np.average(gaps, weights=filled["count"]))


@dataclass
class Calibrator:
    """A fitted map from raw p_up to calibrated p_up: 'isotonic', 'platt' or 'none'."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def transform(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if self.method == "none":
            return p
        if self.method == "platt":
            z = logit(np.clip(p, _EPS, 1 - _EPS))
            return expit(self.params["slope"] * z + self.params["intercept"])
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        raise ValueError(f"unknown calibration method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Calibrator:
        try:
            calibrator = cls(method=payload["method"], params=dict(payload.get("params", {})))
            calibrator.transform(np.array([0.5]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid calibrator payload: {exc}") from exc
        return calibrator


def fit_platt(y: np.ndarray, p: np.ndarray) -> Calibrator:
    """Logistic regression on logit(p) (Platt scaling), lightly regularised."""
    y, p = _clean(y, p)
    z = logit(np.clip(p, _EPS, 1 - _EPS)).reshape(-1, 1)
    model = LogisticRegression(C=1e4).fit(z, y.astype(int))
    return Calibrator(
        "platt", {"slope": float(model.coef_[0, 0]), "intercept": float(model.intercept_[0])}
    )


def fit_isotonic(y: np.ndarray, p: np.ndarray) -> Calibrator:
    """Monotone step map, stored as its breakpoints (prediction = linear interpolation)."""
    y, p = _clean(y, p)
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return Calibrator(
        "isotonic", {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()}
    )


FITTERS = {"isotonic": fit_isotonic, "platt": fit_platt}
RANK_PRESERVING = ("platt",)  # strictly increasing maps: a ranking policy keeps its resolution


def choose_calibrator(
    y: np.ndarray,
    p: np.ndarray,
    n_bins: int = N_BINS,
    *,
    methods: tuple[str, ...] = tuple(FITTERS),
) -> tuple[Calibrator, pd.DataFrame]:
    """Fit the `methods` (isotonic and Platt) on the calibration window; keep the lower-ECE.

    The policy's model passes `RANK_PRESERVING`: its thresholds are quantiles of the
    calibrated score, and isotonic regression merges runs of scores into ties (a handful
    of distinct values), which leaves the threshold grid nothing to choose between.

    ECE is measured out-of-fold (two time-ordered halves, each scored by the map fitted
    on the other), because isotonic regression scores a near-zero ECE on the very data
    it was fitted on and would always win an in-sample comparison. The raw probabilities
    compete too: when neither map beats them out-of-fold, no calibrator is applied
    ('none'), since a map that does not help only adds noise. The winner is refitted on
    the whole calibration window. A Platt map with a slope <= 0 would turn the scores
    around (on weak signals the calibration window's labels can point either way), so it
    never competes: the model's own direction is kept.
    """
    y, p = _clean(y, p)
    if len(y) < 20 or len(np.unique(y)) < 2:
        raise ValueError(f"calibration needs >= 20 rows with both classes, got {len(y)}")
    half = len(y) // 2
    folds = [(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]
    rows = []
    for method in methods:
        fit = FITTERS[method]
        scored_p = np.empty_like(p)
        increasing = True
        for fit_part, score_part in folds:
            fold_map = fit(y[fit_part], p[fit_part])
            increasing &= _keeps_direction(fold_map)
            scored_p[score_part] = fold_map.transform(p[score_part])
        ece = expected_calibration_error(y, scored_p, n_bins) if increasing else np.inf
        rows.append({"method": method, "ece_out_of_fold": ece})
    rows.append({"method": "none", "ece_out_of_fold": expected_calibration_error(y, p, n_bins)})
    table = pd.DataFrame(rows).set_index("method")
    best = table["ece_out_of_fold"].idxmin()
    if best in FITTERS:
        fitted = FITTERS[best](y, p)
        if _keeps_direction(fitted):
            return fitted, table
    return Calibrator("none"), table


def _keeps_direction(calibrator: Calibrator) -> bool:
    """False for a Platt map that is flat or decreasing (it would reverse the ranking)."""
    return calibrator.method != "platt" or calibrator.params["slope"] > 0
