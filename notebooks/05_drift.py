# ---
# jupyter:
#   title: "LeviBot · Drift: the newest window against the newest release's training window"
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Drift: the newest window against the newest release's training window
#
# The newest release is the candidate while a marathon runs (else prod).
#
# Per feature, the compared value is chosen from the data: the level, or its change
# (second change) when the level persists (lag-1 autocorrelation >= 0.6), so slow
# features can be compared at all. PSI and KS of the newest 24 h and the scale of the
# last 2 h are each judged against the feature's own limits: quantiles of the same
# statistic over ordinary windows of the reference, at a Bonferroni share of a 4%
# false-alarm rate per 48 h marathon (the guide's 0.2 / 0.3 PSI are floors). Critical
# needs two features at once, or one dead / missing / stalled feed. The served releases'
# realised log loss (a CUSUM against their test level) and their P(up) distribution
# are checked too. Critical turns the kill-switch on (an audited event). Results are
# kept as history; the marathon replay report shows them over the marathon.

# %% tags=["parameters"]
upstream = ["ingest", "calibrate_and_sweep"]
product = None
registry_dir = "registry"
drift_current_hours = 24.0

# %%
from IPython.display import display

from levibot.drift import current_frames, newest_reference, run_drift_check, save_reference
from levibot.io import write_json_atomic
from levibot.reporting import drift_table, plot_drift
from levibot.settings import task_settings

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    drift_current_hours=drift_current_hours,
)
reference = newest_reference(settings)
save_reference(product["reference"], reference)
result = run_drift_check(settings, reference_path=product["reference"])
report = result.to_dict()
write_json_atomic(product["result"], report)
print(f"overall: {result.status}; critical: {result.critical_features}; {result.reasons}")

# %% [markdown]
# ## Each feature: compared value, effective limits, status

# %%
display(drift_table(report))

# %%
plot_drift(report, reference, current_frames(settings))
