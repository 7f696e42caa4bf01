"""The drift statistics: PSI on reference-quantile bins and the two-sample KS statistic."""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-4
DEFAULT_BINS = 10


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
    # last index of each distinct value: neighbours compared for equality, not by their
    # difference (inf - inf is NaN, which would split a run of equal infinities)
    last = np.flatnonzero(cur_sorted[1:] != cur_sorted[:-1])
    ends = np.append(last, m - 1)
    distinct = cur_sorted[ends]
    cdf_cur = (ends + 1) / m
    cdf_cur_before = np.concatenate(([0.0], cdf_cur[:-1]))
    cdf_ref_at = np.searchsorted(ref_sorted, distinct, side="right") / n
    cdf_ref_below = np.searchsorted(ref_sorted, distinct, side="left") / n
    at = np.abs(cdf_cur - cdf_ref_at).max()
    below = np.abs(cdf_ref_below - cdf_cur_before).max()
    return float(max(at, below))
