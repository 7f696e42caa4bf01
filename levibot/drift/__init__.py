"""Per-feature data drift of the serving window against the prod model's training window.

Small units in the NannyML style, with every threshold held as data (`Thresholds`):

* `fit_reference` summarises the REFERENCE window once, at training time: per feature
  the PSI bin edges and proportions plus the sorted values for KS. `save_reference` /
  `load_reference` keep it beside the model as a compressed ``.npz`` (no pickle), so a
  drift check only touches the current window.
* `check_drift` compares a CURRENT frame with a reference: PSI and KS per feature, a
  status per feature and the worst of them overall.
* `run_drift_check` does it for the prod model of the registry, writes the report
  through `levibot.state.drift_log` and, on CRITICAL drift, turns the kill switch ON
  (the rule "PSI > 0.3 => kill switch ON, retrain"). It never turns it off: that is an
  operator's decision once a retrained model is in prod. Its thresholds are the
  `drift` part of the one threshold model (`levibot.thresholds`), read from the canary
  policy file.

Modules: `stats` (PSI, KS, bins), `reference` (fit / save / load), `check` (statuses of
one comparison), `job` (the scheduled check on the store and the registry).

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
    pooled,
    prod_reference,
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
    "pooled",
    "prod_reference",
    "psi",
    "psi_bins",
    "release_reference",
    "run_drift_check",
    "save_reference",
    "window_bars",
]
