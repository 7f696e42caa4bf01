# ---
# jupyter:
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
# # Drift: the newest window against the prod model's training window
#
# Per feature: PSI (bins from the reference window's quantiles, epsilon 1e-4 for empty
# bins) and the two-sample KS statistic. Status ok / warning (PSI > 0.2 or KS > 0.15) /
# critical (PSI > 0.3 or KS > 0.25), each threshold raised to the feature's own baseline
# (the worst ordinary window of the same length inside the reference; critical at 1.5x
# it), so slow features do not read as drift on normal data. Critical drift turns the
# kill-switch on (an audited event naming the features). Results are kept as history.

# %% tags=["parameters"]
upstream = ["ingest", "calibrate_and_sweep"]
product = None
registry_dir = "registry"
drift_current_hours = 24.0

# %%
import pandas as pd
from IPython.display import display

from levibot.drift import current_window, prod_reference, run_drift_check, save_reference
from levibot.io import write_json_atomic
from levibot.reporting import plot_drift
from levibot.settings import task_settings

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    drift_current_hours=drift_current_hours,
)
reference = prod_reference(settings)
save_reference(product["reference"], reference)
result = run_drift_check(settings, reference_path=product["reference"])
report = result.to_dict()
write_json_atomic(product["result"], report)
print(f"overall: {result.status}; critical: {result.critical_features}; {result.reasons}")

# %%
display(pd.DataFrame(report["features"]).T[["status", "psi", "ks", "n_current"]])

# %%
plot_drift(report, reference, current_window(settings))
