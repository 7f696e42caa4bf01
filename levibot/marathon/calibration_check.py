"""The marathon's realised-calibration check: is the candidate's ECE beyond noise?

A 48 h window holds a few hundred scored (symbol, bar) rows whose outcomes are
correlated (labels overlap for `horizon` bars; the symbols move together), so a binned
ECE computed on them is mostly noise: a perfectly calibrated model shows ~0.03-0.06.
Judging the point estimate against 0.05 fails a calibrated model about half the time.

Here the ECE uses equal-mass bins (P(up) lives in a narrow band, where equal-width bins
collapse to two or three) and is compared with its own noise level: the distribution
of the same statistic under perfect calibration, built by a moving-block bootstrap over
bars of the bin-centred residuals y - p (every symbol of a bar moves together, so the
correlation across symbols and over time is kept). The check fails only when the ECE
is both above that null's 95th percentile (miscalibration beyond noise) and above the
acceptable level; a calibrated model then fails at most ~5% of marathons.
`tests/marathon/test_calibration_check.py` measures both error rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from levibot.bootstrap import default_block

MIN_ROWS = 100  # fewer scored rows and the check cannot say anything: inconclusive
ROWS_PER_BIN = 250
MAX_BINS = 10
NULL_LEVEL = 0.97
RESAMPLES = 500


def n_bins_for(rows: int) -> int:
    return int(np.clip(rows // ROWS_PER_BIN, 2, MAX_BINS))


def bin_of(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass bin index of every row (ties kept together by ranking stably)."""
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(p), dtype=int)
    bins[order] = np.minimum((np.arange(len(p)) * n_bins) // max(len(p), 1), n_bins - 1)
    return bins


def binned_ece(residual: np.ndarray, bins: np.ndarray, n_bins: int) -> float:
    """sum_b w_b |mean residual in bin b| (= the ECE when residual = y - p)."""
    count = np.bincount(bins, minlength=n_bins)
    total = np.bincount(bins, weights=residual, minlength=n_bins)
    return float(np.abs(total).sum() / max(count.sum(), 1))


def equal_mass_ece(y: np.ndarray, p: np.ndarray, n_bins: int | None = None) -> float:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    n_bins = n_bins or n_bins_for(len(y))
    return binned_ece(y - p, bin_of(p, n_bins), n_bins)


@dataclass(frozen=True)
class CalibrationCheck:
    rows: int
    bins: int
    ece: float
    noise_level: float  # 95th percentile of the ECE under perfect calibration
    p_value: float
    status: str  # "pass", "marginal", "fail", "inconclusive"
    detail: str

    @property
    def passed(self) -> bool | None:
        return None if self.status == "inconclusive" else self.status != "fail"

    def as_dict(self) -> dict:
        return asdict(self)


def null_eces(
    residual: np.ndarray,
    bins: np.ndarray,
    bar_codes: np.ndarray,
    n_bins: int,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """ECEs of bin-centred residuals resampled in moving blocks of bars."""
    centred = (
        residual
        - (
            np.bincount(bins, weights=residual, minlength=n_bins)
            / np.maximum(np.bincount(bins, minlength=n_bins), 1)
        )[bins]
    )
    n_bars = int(bar_codes.max()) + 1
    # residuals as a (bar x slot) table, slot = the row's position within its bar
    slot = pd.Series(bar_codes).groupby(bar_codes).cumcount().to_numpy()
    table = np.full((n_bars, int(slot.max()) + 1), np.nan)
    table[bar_codes, slot] = centred
    block = max(default_block(n_bars), 2)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    n_blocks = int(np.ceil(n_bars / block))
    for i in range(resamples):
        starts = rng.integers(0, max(n_bars - block, 0) + 1, size=n_blocks)
        source = (starts[:, None] + np.arange(block)).ravel()[:n_bars]
        drawn = table[source[bar_codes], slot]
        drawn = np.where(np.isnan(drawn), 0.0, drawn)  # a slot empty in the drawn bar
        out[i] = binned_ece(drawn, bins, n_bins)
    return out


def calibration_check(
    y: np.ndarray,
    p: np.ndarray,
    bar_times: np.ndarray,
    *,
    target: float,
    acceptable: float,
    seed: int = 0,
) -> CalibrationCheck:
    """Realised ECE against its noise level (see the module docstring)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    keep = np.isfinite(y) & np.isfinite(p)
    y, p, bar_times = y[keep], p[keep], np.asarray(bar_times)[keep]
    rows = len(y)
    if rows < MIN_ROWS:
        return CalibrationCheck(
            rows,
            0,
            float("nan"),
            float("nan"),
            float("nan"),
            "inconclusive",
            f"n/a: {rows} scored bars (< {MIN_ROWS}) cannot show calibration",
        )
    n_bins = n_bins_for(rows)
    bins = bin_of(p, n_bins)
    residual = y - p
    ece = binned_ece(residual, bins, n_bins)
    codes = pd.factorize(pd.Series(bar_times), sort=True)[0]
    null = null_eces(residual, bins, codes, n_bins, seed=seed)
    noise = float(np.quantile(null, NULL_LEVEL))
    p_value = float((1 + np.sum(null >= ece)) / (1 + len(null)))
    beyond_noise = ece > noise
    if beyond_noise and ece > target:
        status = "fail"
    elif ece > target:
        status = "marginal"
    else:
        status = "pass"
    words = {
        "fail": f"above the acceptable {acceptable} and beyond noise",
        "marginal": f"above the target {target} but "
        + ("within noise" if not beyond_noise else f"within the acceptable {acceptable}"),
        "pass": f"within the target {target}",
    }[status]
    detail = (
        f"realised ECE {ece:.3f} on {rows} scored bars ({n_bins} equal-mass bins; a calibrated "
        f"model shows up to {noise:.3f} at this sample size, p = {p_value:.2f}): {words}"
    )
    return CalibrationCheck(rows, n_bins, ece, noise, p_value, status, detail)
