# ---
# jupyter:
#   title: "LeviBot · Train the sequence transformer"
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
# # Train the sequence transformer
#
# A small transformer over the last `seq_len` bars of standardised features with heads
# for P(up), the expected return and its aleatoric sigma, trained with BCE + Gaussian
# NLL. Predictions use MC-dropout (`n_samples` in one batched pass). Same releases and
# windows as the LightGBM task; headline metrics are on the **test** window.

# %% tags=["parameters"]
upstream = ["ingest"]
product = None
registry_dir = "registry"
horizon = 3
holdout_hours = 72
prod_lag_days = 7
deep_seq_len = 64
deep_epochs = 10
deep_n_samples = 20

# %%
from IPython.display import display

from levibot.reporting import plot_loss_curves, plot_uncertainty_vs_error, window_table
from levibot.settings import task_settings
from levibot.training import prepare_training, train_releases

settings = task_settings(
    upstream["ingest"]["manifest"],
    registry_dir=registry_dir,
    horizon=horizon,
    holdout_hours=holdout_hours,
    prod_lag_days=prod_lag_days,
    deep_seq_len=deep_seq_len,
    deep_epochs=deep_epochs,
    deep_n_samples=deep_n_samples,
)
context = prepare_training(settings)
display(context.split_table())

# %%
runs = train_releases(context, "deep", product["runs"])

# %% [markdown]
# ## Metrics (raw MC-mean probabilities) per window

# %%
display(window_table(runs))

# %% [markdown]
# ## Loss curves

# %%
plot_loss_curves(runs)

# %% [markdown]
# ## Is higher uncertainty really less accurate? (test window)
# Rows binned by epistemic variance: Brier score and hit rate per bin.

# %%
plot_uncertainty_vs_error(runs)
