"""Drift of the serving window against the newest release's training window (the
candidate's during a marathon, else prod's: `reference_release`), with stated
error rates: feature distributions, dead feeds, and the served releases' loss and P(up).

* `fit_reference` summarises the REFERENCE window once, at training time: per feature
  what is compared (`monitoring`: the level, or its change where the level persists),
  the PSI bin edges and proportions, the sorted values for KS, the noise of each
  statistic over ordinary windows of the reference, and the longest runs a live feed
  shows. `save_reference` / `load_reference` keep it as a compressed ``.npz`` (no pickle).
* `check_drift` compares a CURRENT window (one frame per symbol) with it: per feature
  PSI, KS and two scale ratios against its own limits (`noise`, `DriftThresholds`),
  the dead-feed rules (`dead_feed`), a status per feature and overall.
* `run_drift_check` does it for the prod model of the registry, adds the served
  releases' loss CUSUM (`performance`) and prediction drift (`predictions`), writes
  the report through `levibot.state.drift_log` and, on CRITICAL, turns the kill switch
  ON. It never turns it off: that is an operator's decision.
* `benchmark` measures how often it fires (`bench/bench_drift_detection.py`).

PSI convention (`stats`): NaN and +-inf dropped on both sides; bins from the
reference's deciles (``np.quantile``, tied edges collapse), outer bins open; a value on
an edge goes to the bin on its right; a proportion of exactly 0 counts as
``EPSILON = 1e-4`` on both sides, not renormalised; PSI = sum (cur - ref) ln(cur / ref).
KS is ``scipy.stats.ks_2samp``'s statistic, both sides compared at float32.

Statuses, per feature: ``ok`` / ``warning`` / ``critical``; ``no_data`` (nothing in the
reference), ``insufficient_data`` (too few current values), ``missing_feature`` (the
column is gone: critical overall). Overall: also ``reference_unreadable`` (the job) and
``insufficient_data`` (too few rows), never a silent pass.
"""

from levibot.drift.check import (
    EXIT_CODES,
    INSUFFICIENT,
    MISSING_FEATURE,
    NO_DATA,
    REFERENCE_UNREADABLE,
    SEVERITY,
    DriftResult,
    FeatureDrift,
    check_drift,
    format_table,
)
from levibot.drift.job import (
    DriftError,
    current_frames,
    current_window,
    newest_reference,
    pooled,
    reference_release,
    release_reference,
    run_drift_check,
    window_bars,
)
from levibot.drift.monitoring import CHANGE, LEVEL, MONITORED_FEATURES, PERSISTENT
from levibot.drift.reference import (
    REFERENCE_FORMAT,
    ReferenceStats,
    fit_reference,
    load_reference,
    save_reference,
)
from levibot.drift.stats import (
    DEFAULT_BINS,
    EPSILON,
    bin_counts_sorted,
    bin_proportions,
    ks_statistic,
    psi,
    psi_bins,
)
from levibot.thresholds import CRITICAL, OK, WARNING, DriftThresholds

__all__ = [
    "CHANGE",
    "CRITICAL",
    "DEFAULT_BINS",
    "EPSILON",
    "EXIT_CODES",
    "INSUFFICIENT",
    "LEVEL",
    "MISSING_FEATURE",
    "MONITORED_FEATURES",
    "NO_DATA",
    "OK",
    "PERSISTENT",
    "REFERENCE_FORMAT",
    "REFERENCE_UNREADABLE",
    "SEVERITY",
    "WARNING",
    "DriftError",
    "DriftResult",
    "DriftThresholds",
    "FeatureDrift",
    "ReferenceStats",
    "bin_counts_sorted",
    "bin_proportions",
    "check_drift",
    "current_frames",
    "current_window",
    "fit_reference",
    "format_table",
    "ks_statistic",
    "load_reference",
    "newest_reference",
    "pooled",
    "psi",
    "psi_bins",
    "reference_release",
    "release_reference",
    "run_drift_check",
    "save_reference",
    "window_bars",
]
