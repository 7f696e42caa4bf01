# ---
# jupyter:
#   title: "LeviBot · Calibrate, select the policy and register"
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
# # Calibrate, select the policy and register
#
# Per model: isotonic and Platt fitted on the calibration window (rank-preserving Platt
# only for the policy's LightGBM), the one with lower out-of-fold ECE kept; ECE raw vs
# calibrated reported on the **test** window (15 equal-width bins, count-weighted). The
# models were early-stopped on the tail of their training window, so the calibration
# window is theirs alone. Policy thresholds are quantile levels of the calibrated P(up),
# chosen walk-forward on the calibration window among the configurations that trade at
# least 1.5x the gate's minimum per 48 h (score = Sharpe - 3 MaxDD after fees and
# slippage; Sharpe annualised with 96 x 365 bars a year for 15m bars). The test window is
# used once, afterwards: the policy next to buy-and-hold and flat, the selection-vs-test
# rank correlation, and the gate (fewer than the minimum trades per 48 h: not
# registered). Only then is the release written to the registry: prod on an empty
# registry (bootstrap), else the candidate.

# %% tags=["parameters"]
upstream = ["ingest", "train_lgbm", "train_deep"]
product = None
registry_dir = "registry"
horizon = 3
fee_bps = 10.0
slippage_bps = 5.0

# %%
import pandas as pd
from IPython.display import HTML, display

from levibot.release import calibrate_and_register
from levibot.report_warnings import release_warnings, warning_box
from levibot.reporting import plot_reliability, plot_sweep_heatmap
from levibot.settings import task_settings

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    horizon=horizon,
    fee_bps=fee_bps,
    slippage_bps=slippage_bps,
)
releases = calibrate_and_register(
    settings,
    upstream["train_lgbm"]["runs"],
    upstream["train_deep"]["runs"],
    summary_path=product["summary"],
    reports=[product["nb"]],
)

# %% [markdown]
# ## Calibration on the test window

# %%
display(HTML(warning_box([
    line for r in releases
    for line in release_warnings(r.role, r.calibration_summary(), r.policy_summary())
])))  # fmt: skip
display(pd.DataFrame({r.role: r.calibration_summary() for r in releases}))

# %%
for release in releases:
    display(plot_reliability(release))

# %% [markdown]
# ## The chosen policy: selection (calibration window), test window, baselines
# Generalisation: walk-forward rank correlation of in-sample and next-block scores,
# the selection-vs-test rank correlation over the grid, the probability of backtest
# overfitting (CSCV) and the deflated Sharpe (P(true Sharpe > 0) given the trials).

# %%
display(pd.DataFrame({r.role: r.policy_summary() for r in releases}))

# %% [markdown]
# ## Walk-forward: chosen on the earlier blocks, scored on the next one

# %%
for release in releases:
    display(release.selection.walk_forward.assign(release=release.role).round(3))

# %%
for release in releases:
    display(plot_sweep_heatmap(release))
