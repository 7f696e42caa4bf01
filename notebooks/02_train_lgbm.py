# ---
# jupyter:
#   title: "LeviBot · Train LightGBM"
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
# # Train LightGBM
#
# A binary classifier of the direction of the next `horizon` bars, pooled over symbols,
# early-stopped on the calibration window. On an empty registry a prod model is first
# trained on older data (ending `prod_lag_days` earlier), then the candidate. Headline
# metrics are on the **test** window; every table names its window.

# %% tags=["parameters"]
upstream = ["ingest"]
product = None
registry_dir = "registry"
horizon = 3
holdout_hours = 72
prod_lag_days = 7
lgbm_num_boost_round = 600
lgbm_early_stopping_rounds = 50

# %%
from IPython.display import display

from levibot.reporting import plot_importance, plot_learning_curves, window_table
from levibot.settings import task_settings
from levibot.training import prepare_training, train_releases

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    horizon=horizon,
    holdout_hours=holdout_hours,
    prod_lag_days=prod_lag_days,
    lgbm_num_boost_round=lgbm_num_boost_round,
    lgbm_early_stopping_rounds=lgbm_early_stopping_rounds,
)
context = prepare_training(settings)
display(context.split_table())

# %%
runs = train_releases(context, "lgbm", product["runs"])

# %% [markdown]
# ## Metrics (raw probabilities) per window

# %%
display(window_table(runs))

# %% [markdown]
# ## Feature importance (gain) and learning curves

# %%
plot_importance(runs)

# %%
plot_learning_curves(runs)
