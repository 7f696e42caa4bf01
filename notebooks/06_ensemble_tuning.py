# ---
# jupyter:
#   title: "LeviBot · Ensemble tuning (LightGBM vs transformer)"
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
# # Ensemble tuning (LightGBM vs transformer)
#
# Weights that maximise the Sharpe of the combined paper returns over the shadow logs of
# the last `days`, aligned by (symbol, bar time), bounded to [0, 1] and EWMA-smoothed
# against the previous weights (alpha 0.3). Before a marathon there are no shadow logs
# yet: the minimum-data rule keeps the previous (or 0.5 / 0.5) weights and says so. The
# marathon re-runs this hourly on simulated time.

# %% tags=["parameters"]
upstream = ["ingest", "drift"]
product = None
registry_dir = "registry"
tuning_days = 3.0

# %%
import pandas as pd
from IPython.display import display

from levibot.io import write_json_atomic
from levibot.settings import task_settings
from levibot.tuning import run_tuning

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    tuning_days=tuning_days,
)
result = run_tuning(settings)
write_json_atomic(product["result"], result.to_dict())
display(
    pd.Series(
        {
            "weights": result.weights,
            "w_opt": result.w_opt,
            "aligned rows": result.aligned_rows,
            "kept previous": result.kept_previous,
            "reason": result.reason,
        }
    ).to_frame("tuning")
)
if result.sharpe_by_w:
    display(pd.Series(result.sharpe_by_w).rename_axis("w_lgbm").to_frame("Sharpe"))
