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
# # Train LightGBM
#
# A binary classifier of the direction of the next `horizon` bars, pooled over symbols,
# early-stopped on the calibration window. On an empty registry a prod model is first
# trained on older data (ending `prod_lag_days` earlier), then the candidate. Headline
# metrics are on the **test** window; every table names its window.

# %% tags=["parameters"]
upstream = ["ingest"]
product = None
num_boost_round = 600
early_stopping_rounds = 50

# %%
from IPython.display import display

from levibot.ingest import settings_from_manifest
from levibot.reporting import plot_importance, plot_learning_curves, window_table
from levibot.training import prepare_training, train_releases

settings = settings_from_manifest(upstream["ingest"]["manifest"])
context = prepare_training(settings)
display(context.split_table())

# %%
runs = train_releases(
    context,
    "lgbm",
    product["runs"],
    num_boost_round=num_boost_round,
    early_stopping_rounds=early_stopping_rounds,
)

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
