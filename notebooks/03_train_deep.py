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
# # Train the sequence transformer
#
# A small transformer over the last `seq_len` bars of standardised features with heads
# for P(up), the expected return and its aleatoric sigma, trained with BCE + Gaussian
# NLL. Predictions use MC-dropout (`n_samples` in one batched pass). Same releases and
# windows as the LightGBM task; headline metrics are on the **test** window.

# %% tags=["parameters"]
upstream = ["ingest"]
product = None
seq_len = 64
epochs = 10
n_samples = 20

# %%
from IPython.display import display

from levibot.ingest import settings_from_manifest
from levibot.reporting import plot_loss_curves, plot_uncertainty_vs_error, window_table
from levibot.training import prepare_training, train_releases

settings = settings_from_manifest(upstream["ingest"]["manifest"])
context = prepare_training(settings)
display(context.split_table())

# %%
runs = train_releases(
    context, "deep", product["runs"], n_samples=n_samples, seq_len=seq_len, epochs=epochs
)

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
